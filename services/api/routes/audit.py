"""`GET /api/v1/audit?tenant=&limit=`: the audit log, newest first, for cluster admins."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from spaas.errors import Invalid

from services.api.deps import deps
from services.api.guard import action
from services.api.routes.sigs import _int_arg

bp = Blueprint("audit", __name__)


@bp.get("/audit")
@action("audit.read")
def read_audit() -> dict[str, Any]:
    tenant = request.args.get("tenant") or None
    if tenant is not None and len(tenant) > 64:
        raise Invalid("tenant is at most 64 characters", field="tenant")
    limit = _int_arg("limit", 100, lo=1, hi=1000)
    return {"entries": deps().audit.query(tenant=tenant, limit=limit)}
