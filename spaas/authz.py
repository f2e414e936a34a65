"""Who may do what: the permission table and the pure decisions the API makes with it.

Every API endpoint names one action of `PERMISSIONS`; the API's single `before_request` hook
authenticates the caller, collects its roles in the addressed tenant and asks `decide()`.

    scope          who passes
    PUBLIC         everyone, no token
    AUTHENTICATED  any valid token
    CLUSTER        cluster admins (403 for everyone else)
    TENANT         cluster admins, and members of the tenant holding one of the rule's roles;
                   a caller with no role at all in the tenant gets NOT_FOUND (the tenant's
                   existence is not revealed), a member lacking the role FORBIDDEN.

Application ownership is data, not route: `may_touch_app()` lets members act on their own
applications and tenant admins on all of them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from spaas.model import Role

CONSUMER_ADMIN = Role.CONSUMER_ADMIN.value
SIG_CONFIGURE = Role.SIG_CONFIGURE.value
USER = Role.USER.value
ALL_TENANT_ROLES = frozenset({CONSUMER_ADMIN, SIG_CONFIGURE, USER})
# Who may upload files and run applications: every member (sig_configure includes using the SIGs).
APP_ROLES = ALL_TENANT_ROLES
# Who sees and kills every application of the tenant, not only their own.
APP_ADMIN_ROLES = frozenset({CONSUMER_ADMIN})
SIG_ADMIN_ROLES = frozenset({CONSUMER_ADMIN, SIG_CONFIGURE})
MEMBER_ADMIN_ROLES = frozenset({CONSUMER_ADMIN})


class Scope(str, enum.Enum):
    PUBLIC = "public"
    AUTHENTICATED = "authenticated"
    CLUSTER = "cluster"
    TENANT = "tenant"


class Decision(str, enum.Enum):
    ALLOW = "allow"
    UNAUTHENTICATED = "unauthenticated"  # 401
    NOT_FOUND = "not_found"  # 404: not a member of the tenant
    FORBIDDEN = "forbidden"  # 403: a member, without the needed role


@dataclass(frozen=True)
class Rule:
    scope: Scope
    # Tenant roles that may (TENANT scope); cluster admins always may.
    roles: frozenset[str] = frozenset()


PERMISSIONS: dict[str, Rule] = {
    "health.read": Rule(Scope.PUBLIC),
    "metrics.read": Rule(Scope.PUBLIC),
    "openapi.read": Rule(Scope.PUBLIC),
    "login.create": Rule(Scope.PUBLIC),
    "login.delete": Rule(Scope.AUTHENTICATED),
    "token.create": Rule(Scope.AUTHENTICATED),
    "token.list": Rule(Scope.AUTHENTICATED),
    "token.delete": Rule(Scope.AUTHENTICATED),
    "tenant.list": Rule(Scope.AUTHENTICATED),  # filtered to the caller's tenants
    "tenant.create": Rule(Scope.CLUSTER),
    "audit.read": Rule(Scope.CLUSTER),
    "tenant.read": Rule(Scope.TENANT, ALL_TENANT_ROLES),
    "tenant.delete": Rule(Scope.TENANT),  # cluster admins only, but 404 to outsiders
    "tenant.update": Rule(Scope.TENANT),  # the quota: cluster admins only, 404 to outsiders
    "member.list": Rule(Scope.TENANT, MEMBER_ADMIN_ROLES),
    "member.put": Rule(Scope.TENANT, MEMBER_ADMIN_ROLES),
    "member.delete": Rule(Scope.TENANT, MEMBER_ADMIN_ROLES),
    "sig.list": Rule(Scope.TENANT, ALL_TENANT_ROLES),
    "sig.read": Rule(Scope.TENANT, ALL_TENANT_ROLES),
    "sig.build_log": Rule(Scope.TENANT, ALL_TENANT_ROLES),
    "sig.scaling": Rule(Scope.TENANT, ALL_TENANT_ROLES),
    "sig.create": Rule(Scope.TENANT, SIG_ADMIN_ROLES),
    "sig.update": Rule(Scope.TENANT, SIG_ADMIN_ROLES),
    "sig.delete": Rule(Scope.TENANT, SIG_ADMIN_ROLES),
    "file.upload": Rule(Scope.TENANT, APP_ROLES),
    "file.list": Rule(Scope.TENANT, APP_ROLES),
    "file.delete": Rule(Scope.TENANT, APP_ROLES),  # uploads are shared by the SIG's users, as upload overwrites
    "app.submit": Rule(Scope.TENANT, APP_ROLES),
    "app.list": Rule(Scope.TENANT, APP_ROLES),  # filtered to the caller's own unless app admin
    "app.read": Rule(Scope.TENANT, APP_ROLES),
    "app.log": Rule(Scope.TENANT, APP_ROLES),
    "app.kill": Rule(Scope.TENANT, APP_ROLES),
    "livy.version": Rule(Scope.TENANT, APP_ROLES),
    "statement.run": Rule(Scope.TENANT, APP_ROLES),  # in the caller's own sessions unless app admin
    "statement.cancel": Rule(Scope.TENANT, APP_ROLES),
    "integration.create": Rule(Scope.TENANT, MEMBER_ADMIN_ROLES),
    "integration.list": Rule(Scope.TENANT, MEMBER_ADMIN_ROLES),
    "integration.read": Rule(Scope.TENANT, MEMBER_ADMIN_ROLES),
    "integration.delete": Rule(Scope.TENANT, MEMBER_ADMIN_ROLES),
    "notebook.list": Rule(Scope.TENANT, APP_ROLES),  # filtered to the caller's own unless app admin
    "notebook.stop": Rule(Scope.TENANT, APP_ROLES),  # the caller's own unless app admin
    # The console's pages (/platform): what they show and change goes through the actions above.
    "console.page": Rule(Scope.AUTHENTICATED),
    "console.tenant": Rule(Scope.TENANT, ALL_TENANT_ROLES),
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `kind`: "bootstrap" (the admin token), "session" (login) or "api" (personal token)."""

    name: str
    groups: frozenset[str] = frozenset()
    cluster_admin: bool = False
    kind: str = "session"
    token_id: str = ""


def fold(name: str) -> str:
    """The one form of a user or group name: trimmed and case-folded, as LDAP compares names
    (caseIgnoreMatch). It is the principal's name, the rate-limit key and what grants and
    settings are matched with."""
    return name.strip().casefold()


def is_cluster_admin(name: str, groups: Iterable[str], *, admin_users: Iterable[str],
                     admin_groups: Iterable[str]) -> bool:
    """Cluster admins are named in settings (`SPAAS_CLUSTER_ADMIN_USERS` / `_GROUPS`), in any case."""
    return fold(name) in {fold(u) for u in admin_users} or bool(
        {fold(g) for g in groups} & {fold(g) for g in admin_groups})


def roles_in_tenant(members: Mapping[tuple[str, str], Iterable[str]], principal: Principal) -> frozenset[str]:
    """The union of the roles granted to the principal itself and to each of its groups.

    `members` maps ("user" | "group", name) to granted roles; names match in their `fold()` form.
    """
    folded: dict[tuple[str, str], set[str]] = {}
    for (kind, name), granted in members.items():
        folded.setdefault((kind, fold(name)), set()).update(granted)
    roles: set[str] = set(folded.get(("user", fold(principal.name)), ()))
    for group in principal.groups:
        roles.update(folded.get(("group", fold(group)), ()))
    return frozenset(roles & ALL_TENANT_ROLES)


def decide(action: str, principal: Principal | None, tenant_roles: frozenset[str] = frozenset()) -> Decision:
    """Whether `principal`, holding `tenant_roles` in the addressed tenant, may perform `action`."""
    rule = PERMISSIONS[action]
    if rule.scope is Scope.PUBLIC:
        return Decision.ALLOW
    if principal is None:
        return Decision.UNAUTHENTICATED
    if principal.cluster_admin or rule.scope is Scope.AUTHENTICATED:
        return Decision.ALLOW
    if rule.scope is Scope.CLUSTER:
        return Decision.FORBIDDEN
    if not tenant_roles:
        return Decision.NOT_FOUND
    return Decision.ALLOW if tenant_roles & rule.roles else Decision.FORBIDDEN


def sees_all_apps(principal: Principal, tenant_roles: frozenset[str]) -> bool:
    return principal.cluster_admin or bool(tenant_roles & APP_ADMIN_ROLES)


def may_touch_app(principal: Principal, tenant_roles: frozenset[str], submitter: str | None) -> bool:
    """Members act on their own applications; tenant admins and cluster admins on all."""
    return sees_all_apps(principal, tenant_roles) or (submitter is not None and fold(submitter) == fold(principal.name))
