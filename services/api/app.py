"""The API's application factory: `create_app(settings, ...)` wires collaborators and blueprints."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from spaas import auth
from spaas.bus import Bus, RedisBus
from spaas.errors import Unauthorized
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.logstream import LogStreams, RedisLogStreams
from spaas.settings import ApiSettings
from spaas.storage import SigStorage
from spaas.store import Store

from services.api import errors
from services.api.deps import Deps, deps
from services.api.routes import applications, sigs, tenants

log = logging.getLogger(__name__)

REQUESTS = Counter("spaas_api_requests_total", "API requests", ["method", "status"])
PUBLIC = {"/api/v1/healthz", "/metrics"}


def create_app(settings: ApiSettings, *, store: Store | None = None, bus: Bus | None = None,
               logs: LogStreams | None = None) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    store = store or EtcdStore(settings.etcd_url, timeout_s=settings.call_timeout_s)
    keys = Keys(settings.etcd_prefix)
    d = Deps(settings=settings, store=store, bus=bus or RedisBus(settings.redis_url, timeout_s=settings.call_timeout_s),
             logs=logs or RedisLogStreams(settings.redis_url, timeout_s=settings.call_timeout_s), keys=keys,
             storage=SigStorage(settings.storage_dir))
    d.token_hash = auth.ensure_bootstrap_token(store, keys, settings.token_path, preset=settings.admin_token)
    app.extensions["spaas"] = d

    errors.register(app)

    @app.before_request
    def authenticate() -> None:
        if request.path in PUBLIC:
            return
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token or not auth.matches(token.strip(), deps().token_hash):
            raise Unauthorized("a valid bearer token is required")
        g.principal = "admin"

    @app.after_request
    def count(resp: Response) -> Response:
        REQUESTS.labels(request.method, str(resp.status_code)).inc()
        return resp

    @app.get("/api/v1/healthz")
    def healthz() -> tuple[dict[str, Any], int]:
        ok = deps().store.health()
        return {"status": "ok" if ok else "unhealthy", "etcd": ok}, 200 if ok else 503

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)

    for bp in (tenants.bp, sigs.bp, applications.bp):
        app.register_blueprint(bp, url_prefix="/api/v1")
    return app
