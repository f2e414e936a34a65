"""Authentication, authorization and auditing of every request, in one place.

Each view declares its action with `@action("sig.create")` (the names of `spaas.authz.PERMISSIONS`).
`install(app)` adds one `before_request` hook that resolves the bearer token to a `Principal`,
reads the caller's roles in the addressed tenant and applies `authz.decide()`, and one
`after_request` hook that writes an audit record for every mutating request. A view without a
declared action is refused (fail closed); a test checks that every route has one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote

from flask import Flask, Response, current_app, g, request

from spaas import authz, principals
from spaas.audit import AuditRecord
from spaas.authz import Decision, Principal
from spaas.errors import NotFound, SpaasError, Unauthorized
from spaas.records import read_members

from services.api.deps import Deps, deps
from services.api.errors import Forbidden

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
BOOTSTRAP_NAME = principals.BOOTSTRAP_NAME


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


def resolve_principal(d: Deps, token: str | None) -> Principal | None:
    return principals.principal_for(token, bootstrap_hash=d.token_hash, lookup=d.tokens.lookup,
                                    admin_users=d.settings.cluster_admin_users,
                                    admin_groups=d.settings.cluster_admin_groups)


def tenant_members(d: Deps, tenant: str) -> dict[tuple[str, str], list[str]]:
    """("user" | "group", name) -> roles granted in the tenant."""
    prefix = d.keys.members(tenant)
    members: dict[tuple[str, str], list[str]] = {}
    for rest, grant in read_members(d.store, prefix):  # a malformed grant grants nothing
        kind, _, quoted = rest.partition("/")
        members[(kind, unquote(quoted))] = [r.value for r in grant.roles]
    return members


def roles_in(d: Deps, principal: Principal, tenant: str) -> frozenset[str]:
    return authz.roles_in_tenant(tenant_members(d, tenant), principal)


def member_tenants(d: Deps, principal: Principal) -> set[str]:
    """The tenants in which the principal holds any role (one range read over all grants)."""
    prefix = d.keys.prefix + "/members/"
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


def current_principal() -> Principal:
    principal = g.get("principal")
    assert isinstance(principal, Principal), "guard did not run"
    return principal


def current_roles() -> frozenset[str]:
    return frozenset(g.get("tenant_roles", frozenset()))


def _authorize() -> None:
    d = deps()
    name = action_of(current_app, request.endpoint)
    token = bearer_token()
    if name is None:
        # No such route (404/405 follow) or a view without a declared action: callers must
        # still authenticate first, so unknown paths reveal nothing to anonymous callers.
        if resolve_principal(d, token) is None:
            raise Unauthorized("a valid bearer token is required")
        if request.endpoint is not None:
            log.error("endpoint %s declares no action; refusing", request.endpoint)
            raise Forbidden("this endpoint is not open to anyone")
        return
    rule = authz.PERMISSIONS[name]
    if rule.scope is authz.Scope.PUBLIC:
        return
    principal = resolve_principal(d, token)
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
        raise Unauthorized("a valid bearer token is required")
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
