"""`/api/v1/tenants/{t}/members`: roles granted to users and LDAP groups in a tenant.

A grant replaces the roles of that user or group (`PUT`), `DELETE` removes it. A caller's roles
in a tenant are the union of its own grant and its groups' grants (`spaas.authz`).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import unquote

from flask import Blueprint

from spaas.authz import fold
from spaas.errors import Invalid, NotFound
from spaas.model import PRINCIPAL_RE, MemberRoles
from spaas.records import read_members

from services.api.deps import deps, json_body
from services.api.guard import action, current_principal
from services.api.records import get_tenant

log = logging.getLogger(__name__)
bp = Blueprint("members", __name__)
NAME = re.compile(PRINCIPAL_RE)


def _name(name: str) -> str:
    """The grant's name in its one form (`authz.fold`: trimmed, case-folded), as logins are."""
    name = fold(name)
    if not NAME.match(name):
        raise Invalid("user and group names are 1-128 letters, digits, '.', '_', '@' or '-'", field="name")
    return name


@bp.get("/tenants/<tenant>/members")
@action("member.list")
def list_members(tenant: str) -> dict[str, Any]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    prefix = d.keys.members(tenant)
    out = []
    for rest, grant in read_members(d.store, prefix):
        kind, _, quoted = rest.partition("/")
        out.append({"kind": kind, "name": unquote(quoted), "roles": [r.value for r in grant.roles]})
    return {"members": sorted(out, key=lambda m: (m["kind"], m["name"]))}


@bp.put("/tenants/<tenant>/members/<any(user, group):kind>/<name>")
@action("member.put")
def put_member(tenant: str, kind: str, name: str) -> dict[str, Any]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    name = _name(name)
    grant = MemberRoles.model_validate(json_body())
    roles = [r.value for r in grant.roles]
    d.store.put(d.keys.member(tenant, kind, name), {"roles": roles, "granted_by": current_principal().name,
                                                    "updated_at": time.time()})
    log.info("tenant %s: %s %s granted %s by %s", tenant, kind, name, roles, current_principal().name)
    return {"kind": kind, "name": name, "roles": roles}


@bp.delete("/tenants/<tenant>/members/<any(user, group):kind>/<name>")
@action("member.delete")
def delete_member(tenant: str, kind: str, name: str) -> dict[str, Any]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    name = _name(name)
    if not d.store.delete(d.keys.member(tenant, kind, name)):
        raise NotFound(f"{kind} {name!r} is not a member of tenant {tenant!r}", field="name")
    log.info("tenant %s: %s %s removed by %s", tenant, kind, name, current_principal().name)
    return {"kind": kind, "name": name, "deleted": True}
