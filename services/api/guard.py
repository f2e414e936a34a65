"""Authentication, authorization and auditing of every request, in one place.

Each view declares its action with `@action("sig.create")` (the names of `spaas.authz.PERMISSIONS`).
`install(app)` adds one `before_request` hook that resolves the caller (bearer token; HTTP Basic
with an LDAP password or an owned token, for Livy clients; the `spaas_session` cookie) to a `Principal`,
reads the caller's roles in the addressed tenant and applies `authz.decide()`, and one
`after_request` hook that writes an audit record for every mutating request. A view without a
declared action is refused (fail closed); a test checks that every route has one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote

from flask import Flask, Response, current_app, g, request

from spaas import auth, authz, principals
from spaas.audit import AuditRecord
from spaas.authz import Decision, Principal
from spaas.errors import NotFound, SpaasError, Unauthorized
from spaas.records import read_members

from services.api.deps import Deps, deps
from services.api.errors import BadRequest, Forbidden

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
BOOTSTRAP_NAME = principals.BOOTSTRAP_NAME
SESSION_COOKIE = "spaas_session"  # the cookie services/proxy sets (POST /platform/session)


def action(name: str) -> Callable[[F], F]:
    """Declare the permission-table action a view performs."""
    if name not in authz.PERMISSIONS:
        raise ValueError(f"unknown action {name!r}")

    def mark(view: F) -> F:
        view._spaas_action = name  # type: ignore[attr-defined]
        return view

    return mark


def action_of(app: Flask, endpoint: str | None) -> str | None:
    view = app.view_functions.get(endpoint or "")
    return getattr(view, "_spaas_action", None) if view is not None else None


def bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def basic_credentials() -> tuple[str, str] | None:
    """`Authorization: Basic base64(user:password)`, as Livy clients send it."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep and user and password else None


# Successful LDAP Basic logins, kept briefly so a polling client does not bind on every request.
_BASIC_CACHE: dict[str, tuple[Principal, float]] = {}
BASIC_CACHE_S = 60.0


def _principal_of(d: Deps, identity: auth.Identity) -> Principal:
    admin = authz.is_cluster_admin(identity.name, identity.groups, admin_users=d.settings.cluster_admin_users,
                                   admin_groups=d.settings.cluster_admin_groups)
    return Principal(identity.name, groups=identity.groups, cluster_admin=admin, kind="basic")


def resolve_basic(d: Deps, user: str, password: str) -> Principal | None:
    """User name + a spaas token (the user must own it; `admin` for the bootstrap token), or user
    name + LDAP password. Failed LDAP attempts count against the login limiter."""
    by_token = resolve_principal(d, password)
    if by_token is not None:
        return by_token if by_token.name == user else None
    digest = hashlib.sha256(f"{user}\0{password}".encode()).hexdigest()
    cached = _BASIC_CACHE.get(digest)
    if cached and cached[1] > time.monotonic():
        return cached[0]
    address = request.remote_addr or "unknown"
    if d.limiter.blocked_for(user, address):
        return None
    try:
        identity = d.authenticator.authenticate(user, password)
    except Unauthorized:
        d.limiter.failed(user, address)
        return None
    d.limiter.succeeded(user)
    principal = _principal_of(d, identity)
    if len(_BASIC_CACHE) > 1000:
        _BASIC_CACHE.clear()
    _BASIC_CACHE[digest] = (principal, time.monotonic() + BASIC_CACHE_S)
    return principal


def authenticate(d: Deps) -> Principal | None:
    """The caller, from a bearer token, HTTP Basic, or the `spaas_session` cookie (a login token).

    A cookie is what a browser sends on its own, so a mutating request authenticated by it must
    carry `X-Requested-By` (Livy's CSRF rule); a page on another origin cannot add that header."""
    token = bearer_token()
    if token:
        return resolve_principal(d, token)
    basic = basic_credentials()
    if basic:
        return resolve_basic(d, *basic)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and not request.headers.get("Authorization"):
        principal = resolve_principal(d, cookie)
        if principal is not None and request.method in MUTATING and not request.headers.get("X-Requested-By"):
            raise BadRequest("Missing Required Header for CSRF protection: requests authenticated by a cookie "
                             "must send X-Requested-By", field="X-Requested-By")
        return principal
    return None


def resolve_principal(d: Deps, token: str | None) -> Principal | None:
    return principals.principal_for(token, bootstrap_hash=d.token_hash, lookup=d.tokens.lookup,
                                    admin_users=d.settings.cluster_admin_users,
                                    admin_groups=d.settings.cluster_admin_groups)


def roles_in(d: Deps, principal: Principal, tenant: str) -> frozenset[str]:
    prefix = d.keys.members(tenant)
    # Kept while the tenant's grant entries are the same ones (a changed grant shows at once).
    return d.roles.get((tenant, principal.name, principal.groups), d.store.list(prefix),
                       lambda entries: authz.roles_in_tenant(principals.members_from_entries(entries, prefix), principal))


def member_tenants(d: Deps, principal: Principal) -> set[str]:
    """The tenants in which the principal holds any role (one range read over all grants)."""
    prefix = d.keys.all_members()
    found: set[str] = set()
    for key_rest, grant in read_members(d.store, prefix):
        tenant, _, rest = key_rest.partition("/")
        kind, _, quoted = rest.partition("/")
        name = unquote(quoted)
        if (kind == "user" and authz.fold(name) == authz.fold(principal.name)) or (
                kind == "group" and authz.fold(name) in {authz.fold(g) for g in principal.groups}):
            if grant.roles:
                found.add(tenant)
    return found


UNAUTHENTICATED = "a valid bearer token is required (or HTTP Basic: user name and password or token)"


def current_principal() -> Principal:
    principal = g.get("principal")
    assert isinstance(principal, Principal), "guard did not run"
    return principal


def current_roles() -> frozenset[str]:
    return frozenset(g.get("tenant_roles", frozenset()))


def _authorize() -> None:
    d = deps()
    name = action_of(current_app, request.endpoint)
    if name is None:
        # No such route (404/405 follow) or a view without a declared action: callers must
        # still authenticate first, so unknown paths reveal nothing to anonymous callers.
        if authenticate(d) is None:
            raise Unauthorized(UNAUTHENTICATED)
        if request.endpoint is not None:
            log.error("endpoint %s declares no action; refusing", request.endpoint)
            raise Forbidden("this endpoint is not open to anyone")
        return
    rule = authz.PERMISSIONS[name]
    if rule.scope is authz.Scope.PUBLIC:
        return
    principal = authenticate(d)
    g.principal = principal
    roles: frozenset[str] = frozenset()
    tenant = (request.view_args or {}).get("tenant")
    if principal is not None and rule.scope is authz.Scope.TENANT and not principal.cluster_admin:
        roles = roles_in(d, principal, str(tenant))
    g.tenant_roles = roles
    decision = authz.decide(name, principal, roles)
    if decision is Decision.ALLOW:
        return
    if decision is Decision.UNAUTHENTICATED:
        raise Unauthorized(UNAUTHENTICATED)
    if decision is Decision.NOT_FOUND:
        # Word for word what a missing tenant answers, so a foreign tenant's existence is not revealed.
        raise NotFound(f"tenant {tenant!r} not found", field="tenant")
    raise Forbidden(f"{name} needs one of the roles {', '.join(sorted(rule.roles)) or 'cluster_admin'} "
                    f"in tenant {tenant!r}" if rule.scope is authz.Scope.TENANT else f"{name} needs cluster_admin")


def _audit(resp: Response) -> Response:
    if request.method not in MUTATING:
        return resp
    d = deps()
    principal = g.get("principal")
    who = principal.name if isinstance(principal, Principal) else (g.get("login_name") or "anonymous")
    view_args = request.view_args or {}
    rec = AuditRecord(principal=str(who), action=action_of(current_app, request.endpoint) or "unknown",
                      method=request.method, resource=request.path[:512], status=resp.status_code,
                      client=request.remote_addr or "", time=time.time(),
                      tenant=str(view_args["tenant"]) if "tenant" in view_args else None)
    try:
        d.audit.record(rec)
    except SpaasError as exc:
        log.error("audit record for %s %s by %s not written: %s", rec.method, rec.resource, rec.principal, exc.message)
    return resp


def install(app: Flask) -> None:
    app.before_request(_authorize)
    app.after_request(_audit)
