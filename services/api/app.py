"""The API's application factory: `create_app(settings, ...)` wires collaborators and blueprints."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from spaas import auth
from spaas.audit import AuditLog
from spaas.auth import Authenticator, NoDirectory, Tokens
from spaas.bus import Bus, RedisBus
from spaas.cache import CachedStore
from spaas.demand import DemandStore, RedisDemandStore
from spaas.etcd import EtcdStore
from spaas.forwarded import ForwardedFor, TrustedProxies
from spaas.integration_redis import IntegrationRedis
from spaas.keys import Keys
from spaas.logstream import LogStreams, RedisLogStreams
from spaas.settings import ApiSettings
from spaas.storage import SigStorage
from spaas.store import Store

from services.api import errors, guard, inputcheck, openapi
from services.api.deps import Deps, deps
from services.api.guard import action
from services.api.ratelimit import LoginLimiter, RedisLoginLimiter
from services.api.console import bp as console_bp
from services.api.routes import applications, audit, integrations, livy, login, members, notebooks, scaling, sigs, tenants

log = logging.getLogger(__name__)

REQUESTS = Counter("spaas_api_requests_total", "API requests", ["method", "status"])


class ApiFlask(Flask):
    """Flask, with `ensure_sync` answered once per function: Flask asks it of every hook and view
    on every request (`inspect.iscoroutinefunction`), a measurable share of a cached read."""

    _sync: dict[Callable[..., Any], Callable[..., Any]]

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        sync = getattr(self, "_sync", None)
        if sync is None:
            sync = self._sync = {}
        found = sync.get(func)
        if found is None:
            found = sync[func] = super().ensure_sync(func)
        return found


def make_authenticator(settings: ApiSettings) -> Authenticator:
    """LDAP when `SPAAS_LDAP_URL` is set; otherwise only the bootstrap admin token works."""
    if not settings.ldap_url:
        return NoDirectory()
    from spaas.ldap import LdapAuthenticator, LdapConfig

    return LdapAuthenticator(LdapConfig(
        url=settings.ldap_url, base_dn=settings.ldap_base_dn, user_filter=settings.ldap_user_filter,
        group_filter=settings.ldap_group_filter, group_name_attr=settings.ldap_group_name_attr,
        bind_dn=settings.ldap_bind_dn, bind_password=settings.ldap_bind_password,
        start_tls=settings.ldap_start_tls, ca_file=settings.ldap_ca_file, timeout_s=settings.ldap_timeout_s))


def create_app(settings: ApiSettings, *, store: Store | None = None, bus: Bus | None = None,
               logs: LogStreams | None = None, demand: DemandStore | None = None,
               authenticator: Authenticator | None = None, limiter: LoginLimiter | None = None) -> Flask:
    app = ApiFlask(__name__, static_folder=None)  # no /static route: everything served is in the permission table
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    store = store or EtcdStore.from_settings(settings)
    keys = Keys(settings.etcd_prefix)
    if settings.read_cache and isinstance(store, EtcdStore):
        # What every request reads, served from memory; writes wait until their cache shows them.
        store = CachedStore(store, (keys.tokens(), keys.all_members(), keys.tenants(), keys.all_sigs(),
                                    keys.all_apps(), keys.all_user_tokens())).start(wait_s=settings.call_timeout_s)
    d = Deps(settings=settings, store=store, bus=bus or RedisBus(settings.redis_url, timeout_s=settings.call_timeout_s),
             logs=logs or RedisLogStreams(settings.redis_url, timeout_s=settings.call_timeout_s), keys=keys,
             storage=SigStorage(settings.storage_dir),
             demand=demand or RedisDemandStore(settings.redis_url, timeout_s=settings.call_timeout_s),
             tokens=Tokens(store, keys), authenticator=authenticator or make_authenticator(settings),
             limiter=limiter or RedisLoginLimiter(
                 settings.redis_url, prefix=f"spaas:login-failures{settings.etcd_prefix}:",
                 max_per_user=settings.login_max_failures, max_per_addr=settings.login_max_failures_per_addr,
                 window_s=settings.login_window_s, timeout_s=settings.call_timeout_s),
             audit=AuditLog(store, keys, retention_days=settings.audit_retention_days),
             integrations=IntegrationRedis(settings.redis_url, platform_prefix=settings.etcd_prefix,
                                           request_queue=settings.integration_queue,
                                           timeout_s=settings.call_timeout_s))
    if settings.token_path.resolve().is_relative_to(settings.storage_dir.resolve()):
        raise SystemExit(f"the admin token file {settings.token_path} must not be inside SIG storage "
                         f"({settings.storage_dir}), which SIG containers can read")
    d.token_hash = auth.ensure_bootstrap_token(store, keys, settings.token_path, preset=settings.admin_token)
    app.extensions["spaas"] = d

    errors.register(app)
    inputcheck.install(app)  # before the guard: nothing reads a control character
    guard.install(app)

    counters: dict[tuple[str, int], Any] = {}  # the counter's children, looked up once per (method, status)

    @app.after_request
    def count(resp: Response) -> Response:
        ident = (request.method, resp.status_code)
        child = counters.get(ident)
        if child is None:
            child = counters[ident] = REQUESTS.labels(ident[0], str(ident[1]))
        child.inc()
        return resp

    @app.get("/api/v1/healthz")
    @action("health.read")
    def healthz() -> tuple[dict[str, Any], int]:
        ok = deps().store.health()
        return {"status": "ok" if ok else "unhealthy", "etcd": ok}, 200 if ok else 503

    @app.get("/metrics")
    @action("metrics.read")
    def metrics() -> Response:
        return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)

    for bp in (tenants.bp, sigs.bp, applications.bp, scaling.bp, login.bp, members.bp, audit.bp, openapi.bp,
               notebooks.bp, livy.bp, integrations.bp):
        app.register_blueprint(bp, url_prefix="/api/v1")
    app.register_blueprint(console_bp, url_prefix="/platform")
    # The client's address behind services/proxy (spaas/forwarded.py): only a trusted peer's X-Forwarded-For.
    app.wsgi_app = ForwardedFor(app.wsgi_app, TrustedProxies(settings.trusted_proxies))  # type: ignore[method-assign]
    return app
