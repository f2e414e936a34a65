"""The registry's HTTP API: host -> IP/ports lookups, `/healthz` and `/metrics`.

    GET /healthz                         200 {"status": "ok"} | 503
    GET /metrics                         Prometheus text format
    GET /hosts/<tenant>/<sig>            200 {"tenant", "sig", "hosts": [record, ...]} | 404
    GET /hosts/<tenant>/<sig>/<host>     200 record | 404
    GET /resolve/<host>.<sig>.<tenant>   200 {"ip", "ports"} | 404

A record is what the host's agent stored, plus `"host"` (taken from the key). Every error is
JSON, `{"error": {"code", "message", "field"}}`: 400 for an invalid name, 404 for nothing there,
503 while etcd is unreachable.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from werkzeug.exceptions import HTTPException

from spaas.errors import BadRequest, NotFound, SpaasError, http_status, retry_after
from spaas.keys import Keys
from spaas.model import dns_safe
from spaas.store import Entry, Store

from services.etcd_registry.sweep import split_host_key

log = logging.getLogger(__name__)

# Host names are container names, "<tenant>-<sig>-<role>-<index>": longer than a tenant or SIG
# name may be (NAME_RE allows 24 characters), so they are checked as DNS-1123 labels (<= 63).
HOST_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

LOOKUPS = Counter("spaas_registry_lookups", "Host lookups answered by the registry", ["result"])

Body = tuple[Response, int]


# -- errors --------------------------------------------------------------------------
def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def _error(status: int, code: str, message: str, field: str | None = None) -> Body:
    return jsonify(error_body(code, message, field)), status


def _register_errors(app: Flask) -> None:
    @app.errorhandler(SpaasError)
    def spaas_error(exc: SpaasError) -> Body:
        status = http_status(exc)  # the one table (spaas/errors.py): a bad name is a BadRequest, 400
        LOOKUPS.labels(result={400: "invalid", 404: "not_found", 503: "unavailable"}.get(status, "error")).inc()
        if status == 503:
            log.warning("lookup failed: %s", exc.message)
        response, status = _error(status, exc.code, exc.message, exc.field)
        after = retry_after(exc)
        if after is not None:
            response.headers["Retry-After"] = after
        return response, status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Body:
        code = "NotFound" if exc.code == 404 else (exc.name or "Error").replace(" ", "")
        return _error(exc.code or 500, code, exc.description or exc.name or "error")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Body:
        log.exception("unexpected error")
        return _error(500, "Internal", f"internal error: {exc.__class__.__name__}")


# -- lookups -------------------------------------------------------------------------
def check_name(value: str, field: str) -> None:
    if not dns_safe(value):
        raise BadRequest(f"invalid {field} name {value!r}: lowercase letters, digits and '-', at most 24", field=field)


def check_host(value: str) -> None:
    if not HOST_RE.fullmatch(value):
        raise BadRequest(f"invalid host name {value!r}: lowercase letters, digits and '-', at most 63", field="host")


def record(entry: Entry, host: str) -> dict[str, Any]:
    """What we serve for one entry: the stored record, with the host name from its key."""
    return dict(entry.value, host=host)


def sig_hosts(store: Store, keys: Keys, tenant: str, sig: str) -> list[dict[str, Any]]:
    """The host records of one SIG, sorted by host (deeper, malformed keys are skipped)."""
    found = []
    for entry in store.list(keys.hosts(tenant, sig)):
        parsed = split_host_key(entry.key, keys)
        if parsed is not None and parsed[:2] == (tenant, sig):
            found.append(record(entry, parsed[2]))
    return sorted(found, key=lambda rec: str(rec["host"]))


def one_host(store: Store, keys: Keys, tenant: str, sig: str, host: str) -> dict[str, Any]:
    entry = store.get(keys.host(tenant, sig, host))
    if entry is None:
        raise NotFound(f"no host {host} registered in SIG {tenant}/{sig}", field="host")
    return record(entry, host)


def split_dns_name(name: str) -> tuple[str, str, str]:
    """`host.sig.tenant` -> ("tenant", "sig", "host"), validated."""
    parts = name.split(".")
    if len(parts) != 3:
        raise BadRequest(f"invalid name {name!r}: expected <host>.<sig>.<tenant>", field="name")
    host, sig, tenant = parts
    check_name(tenant, "tenant")
    check_name(sig, "sig")
    check_host(host)
    return tenant, sig, host


def _register_routes(app: Flask, store: Store, keys: Keys) -> None:
    @app.get("/healthz")
    def healthz() -> Body:
        if store.health():
            return jsonify({"status": "ok"}), 200
        return jsonify({"status": "unhealthy"}), 503

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/hosts/<tenant>/<sig>")
    def get_sig_hosts(tenant: str, sig: str) -> Body:
        check_name(tenant, "tenant")
        check_name(sig, "sig")
        hosts = sig_hosts(store, keys, tenant, sig)
        if not hosts:
            raise NotFound(f"no hosts registered in SIG {tenant}/{sig}", field="sig")
        LOOKUPS.labels(result="found").inc()
        return jsonify({"tenant": tenant, "sig": sig, "hosts": hosts}), 200

    @app.get("/hosts/<tenant>/<sig>/<host>")
    def get_host(tenant: str, sig: str, host: str) -> Body:
        check_name(tenant, "tenant")
        check_name(sig, "sig")
        check_host(host)
        found = one_host(store, keys, tenant, sig, host)
        LOOKUPS.labels(result="found").inc()
        return jsonify(found), 200

    @app.get("/resolve/<name>")
    def resolve(name: str) -> Body:
        tenant, sig, host = split_dns_name(name)
        found = one_host(store, keys, tenant, sig, host)
        LOOKUPS.labels(result="found").inc()
        return jsonify({"ip": found.get("ip"), "ports": found.get("ports", {})}), 200


def create_app(store: Store, keys: Keys) -> Flask:
    """The application factory: routes over `store`, keys laid out by `keys`."""
    app = Flask("spaas.etcd_registry")
    _register_errors(app)
    _register_routes(app, store, keys)
    return app
