"""`GET /api/v1/tenants/{t}/sigs/{s}/scaling`: the SIG's policy, workers, demand and decisions."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint

from services.api.guard import action
from services.api.deps import deps
from services.api.records import get_sig, get_tenant
from services.api.routes.sigs import _int_arg, view_of

bp = Blueprint("scaling", __name__)


@bp.get("/tenants/<tenant>/sigs/<sig>/scaling")
@action("sig.scaling")
def scaling(tenant: str, sig: str) -> dict[str, Any]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    view = view_of(tenant, sig, get_sig(d.store, d.keys, tenant, sig))
    limit = _int_arg("limit", 50, lo=1, hi=200)
    demand = d.demand.latest(tenant, sig)
    return {
        "policy": view["spec"]["scaling"],
        "workers": view["status"]["workers"],
        "phase": view["status"]["phase"],
        "reason": view["status"]["reason"],
        "message": view["status"]["message"],
        "demand": asdict(demand) if demand else None,
        "decisions": d.demand.decisions(tenant, sig, limit),
    }
