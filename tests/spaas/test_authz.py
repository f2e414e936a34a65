"""The permission table and its pure decisions (`spaas.authz`), as tables."""

from __future__ import annotations

import pytest

from spaas.authz import (PERMISSIONS, Decision, Principal, Scope, decide, is_cluster_admin, may_touch_app,
                         roles_in_tenant)

ADMIN = Principal("ops", cluster_admin=True)
ALICE = Principal("alice", groups=frozenset({"acme-admins"}))
NOBODY: frozenset[str] = frozenset()


@pytest.mark.parametrize(("action", "roles", "expected"), [
    ("sig.create", {"consumer_admin"}, Decision.ALLOW),
    ("sig.create", {"sig_configure"}, Decision.ALLOW),
    ("sig.create", {"user"}, Decision.FORBIDDEN),
    ("sig.create", NOBODY, Decision.NOT_FOUND),
    ("sig.read", {"user"}, Decision.ALLOW),
    ("member.put", {"sig_configure", "user"}, Decision.FORBIDDEN),
    ("member.put", {"consumer_admin"}, Decision.ALLOW),
    ("tenant.delete", {"consumer_admin"}, Decision.FORBIDDEN),
    ("tenant.delete", NOBODY, Decision.NOT_FOUND),
    ("tenant.create", {"consumer_admin"}, Decision.FORBIDDEN),
    ("audit.read", {"consumer_admin"}, Decision.FORBIDDEN),
    ("app.submit", {"user"}, Decision.ALLOW),
    ("token.create", NOBODY, Decision.ALLOW),
    ("tenant.list", NOBODY, Decision.ALLOW),
])
def test_member_decisions(action: str, roles: set[str], expected: Decision) -> None:
    assert decide(action, ALICE, frozenset(roles)) is expected


@pytest.mark.parametrize("action", sorted(PERMISSIONS))
def test_cluster_admin_may_do_everything_and_anonymous_only_public(action: str) -> None:
    assert decide(action, ADMIN) is Decision.ALLOW
    public = PERMISSIONS[action].scope is Scope.PUBLIC
    assert decide(action, None) is (Decision.ALLOW if public else Decision.UNAUTHENTICATED)


def test_roles_are_the_union_of_user_and_group_grants() -> None:
    members = {("user", "alice"): ["user"], ("group", "acme-admins"): ["consumer_admin"],
               ("group", "other"): ["sig_configure"], ("user", "bob"): ["sig_configure"]}
    assert roles_in_tenant(members, ALICE) == {"user", "consumer_admin"}
    assert roles_in_tenant({("user", "alice"): ["cluster_admin"]}, ALICE) == NOBODY  # not grantable per tenant


@pytest.mark.parametrize(("principal", "roles", "submitter", "ok"), [
    (Principal("bob"), {"user"}, "bob", True),
    (Principal("bob"), {"user"}, "carol", False),
    (Principal("bob"), {"sig_configure"}, "carol", False),
    (Principal("bob"), {"consumer_admin"}, "carol", True),
    (ADMIN, NOBODY, "carol", True),
    (Principal("bob"), {"user"}, None, False),
])
def test_application_ownership(principal: Principal, roles: set[str], submitter: str | None, ok: bool) -> None:
    assert may_touch_app(principal, frozenset(roles), submitter) is ok


def test_cluster_admins_from_settings() -> None:
    assert is_cluster_admin("ops", [], admin_users=["ops"], admin_groups=[])
    assert is_cluster_admin("x", ["platform-ops"], admin_users=[], admin_groups=["platform-ops"])
    assert not is_cluster_admin("x", ["devs"], admin_users=["ops"], admin_groups=["platform-ops"])
