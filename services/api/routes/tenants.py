"""`/api/v1/tenants`: create, list, read, delete tenants."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint

from spaas.errors import Conflict
from spaas.model import Quota, TenantSpec, dump
from spaas.records import BadRecord, TenantRecord, read_tenants

from services.api.guard import action, current_principal, member_tenants
from services.api.routes import integrations
from services.api.deps import deps, json_body
from services.api.records import cas_update, get_tenant, tenant_record, tenant_usage, tenant_usages, tenant_view

bp = Blueprint("tenants", __name__)


@bp.post("/tenants")
@action("tenant.create")
def create_tenant() -> tuple[dict[str, Any], int]:
    d = deps()
    spec = TenantSpec.model_validate(json_body())
    record = TenantRecord(name=spec.name, quota=spec.quota, created_at=time.time())
    try:
        d.store.create(d.keys.tenant(spec.name), record.to_value())
    except Conflict:
        raise Conflict(f"tenant {spec.name!r} already exists", field="name") from None
    return tenant_view(record), 201


@bp.get("/tenants")
@action("tenant.list")
def list_tenants() -> dict[str, Any]:
    d = deps()
    principal = current_principal()
    visible = None if principal.cluster_admin else member_tenants(d, principal)
    # Valid tenants, and (for cluster admins) unreadable ones with the reason, so they can fix them.
    listing = read_tenants(d.store, d.keys)
    usages = tenant_usages(d.store, d.keys)
    empty = {"containers": 0, "cores": 0, "memory_mb": 0, "gpus": 0}
    views = [dict(tenant_view(r), usage=usages.get(r.name, empty)) for r in listing
             if visible is None or r.name in visible]
    if visible is None:
        views += [tenant_view(b) for b in listing.bad if b.key.count("/") == d.keys.tenant("x").count("/")]
    return {"tenants": sorted(views, key=lambda v: str(v["name"]))}


@bp.get("/tenants/<tenant>")
@action("tenant.read")
def read_tenant(tenant: str) -> dict[str, Any]:
    d = deps()
    return dict(tenant_view(tenant_record(get_tenant(d.store, d.keys, tenant))), usage=tenant_usage(d.store, d.keys, tenant))


@bp.put("/tenants/<tenant>/quota")
@action("tenant.update")
def update_quota(tenant: str) -> dict[str, Any]:
    d = deps()
    entry = get_tenant(d.store, d.keys, tenant)
    quota = dump(Quota.model_validate(json_body()))
    if isinstance(tenant_record(entry), BadRecord):
        raise Conflict("the record of this tenant is invalid; a cluster admin must recreate it", field="tenant")

    def apply(value: dict[str, Any]) -> dict[str, Any]:
        value.update(quota=quota, updated_at=time.time())
        return value

    # A lower quota stops new growth; running SIGs are not shrunk (the scaler caps at the quota).
    entry = cas_update(d.store, entry.key, apply)
    return dict(tenant_view(tenant_record(entry)), usage=tenant_usage(d.store, d.keys, tenant))


@bp.delete("/tenants/<tenant>")
@action("tenant.delete")
def delete_tenant(tenant: str) -> tuple[dict[str, Any], int]:
    d = deps()
    entry = get_tenant(d.store, d.keys, tenant)
    if d.store.list(d.keys.sigs(tenant)):
        raise Conflict(f"tenant {tenant!r} still has SIGs; delete them first", field="tenant")
    if not d.store.delete(entry.key, mod_revision=entry.mod_revision):
        raise Conflict(f"tenant {tenant!r} changed meanwhile; try again", field="tenant")
    # A tenant created again under this name starts with no members and no integrations.
    d.store.delete_prefix(d.keys.members(tenant))
    integrations.forget_all(tenant)
    return {"name": tenant, "deleted": True}, 200
