"""`/api/v1/tenants/{t}/sigs/{s}/notebooks`: the SIG's per-user Jupyter servers (spaas/notebooks.py).

Listing shows what the scaler reports in the SIG's status (state, URL) with the proxy's demand
record (requested_at, last_activity); never a token. Stopping deletes the user's demand record:
the scaler stops the container on its next pass (an event wakes it now), and the user's next
visit starts a new server. Tenant and cluster admins see and stop every server; other members
list only their own, and stopping someone else's answers 403 (as for another member's application).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint

from spaas import authz, messages
from spaas import notebooks as nb
from spaas.errors import NotFound, TemporaryError

from services.api.deps import deps
from services.api.errors import Forbidden
from services.api.guard import action, current_principal, current_roles
from services.api.records import get_sig, get_tenant

log = logging.getLogger(__name__)
bp = Blueprint("notebooks", __name__)


def _servers(tenant: str, sig: str) -> list[dict[str, Any]]:
    d = deps()
    rec = get_sig(d.store, d.keys, tenant, sig)
    status = rec.status.to_value() if rec.status else {}
    reported = {s.get("user"): s for s in ((status.get("notebooks") or {}).get("servers") or []) if isinstance(s, dict)}
    demand = {}
    prefix = d.keys.all_notebooks()
    for entry in d.store.list(d.keys.notebooks(tenant, sig)):
        ident = nb.user_of_key(entry.key, prefix)
        if ident is not None and isinstance(entry.value, dict):
            demand[nb.fold(ident[2])] = entry.value
    out = []
    for user in sorted({u for u in set(reported) | set(demand) if isinstance(u, str)}):
        if not isinstance(user, str):
            continue
        server, record = reported.get(user) or {}, demand.get(user) or {}
        out.append({"user": user, "state": server.get("state") or "requested",
                    "container": nb.container_name(tenant, sig, user), "url": nb.base_url(tenant, sig, user),
                    "requested_at": record.get("requested_at"), "last_activity": nb.last_seen(record) or None})
    return out


def _visible(user: str) -> bool:
    return authz.may_touch_app(current_principal(), current_roles(), user)


@bp.get("/tenants/<tenant>/sigs/<sig>/notebooks")
@action("notebook.list")
def list_notebooks(tenant: str, sig: str) -> dict[str, Any]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    return {"notebooks": [s for s in _servers(tenant, sig) if _visible(s["user"])]}


@bp.delete("/tenants/<tenant>/sigs/<sig>/notebooks/<user>")
@action("notebook.stop")
def stop_notebook(tenant: str, sig: str, user: str) -> dict[str, Any]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    user = nb.fold(user)
    found = next((s for s in _servers(tenant, sig) if s["user"] == user), None)
    if found is None:
        raise NotFound(f"no notebook server of {user!r} on SIG {sig!r}", field="user")
    if not _visible(user):
        # As for another member's application: a tenant member, but not an admin of it.
        raise Forbidden(f"only {user!r} and the tenant's admins may stop this notebook server", field="user")
    d.store.delete(d.keys.notebook(tenant, sig, user))
    log.info("sig %s/%s: notebook server of %s stop requested", tenant, sig, user)
    try:
        d.bus.publish(messages.SigChanged(tenant=tenant, sig=sig, generation=0))
    except TemporaryError as exc:
        log.warning("sig %s/%s: notebook stop not announced (%s); the scaler's resync picks it up", tenant, sig, exc)
    return dict(found, state="stopping")
