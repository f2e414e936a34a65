"""The LDAP adapter against a real slapd: binds, groups of both kinds, and that every caller
mistake is the same `Unauthorized` while directory trouble is `TemporaryError`."""

from __future__ import annotations

import pytest

from spaas.auth import Identity
from spaas.errors import TemporaryError, Unauthorized
from spaas.ldap import LdapAuthenticator, LdapConfig
from spaas.stack import free_port

from tests.ldap_fixture import Ldap


@pytest.fixture
def authn(ldap_server: Ldap) -> LdapAuthenticator:
    return LdapAuthenticator(LdapConfig(url=ldap_server.url, base_dn=ldap_server.base_dn, timeout_s=3.0))


@pytest.mark.parametrize(("user", "groups"), [
    ("alice", {"acme-admins"}),  # cleartext userPassword, groupOfNames
    ("bob", {"acme-devs"}),  # {SSHA} userPassword, posixGroup
    ("dave", {"beta-users"}),
    ("erin", set()),
])
def test_login_returns_the_user_and_its_groups(authn: LdapAuthenticator, ldap_server: Ldap, user: str,
                                               groups: set[str]) -> None:
    assert authn.authenticate(user, ldap_server.passwords[user]) == Identity(user, frozenset(groups))


@pytest.mark.parametrize(("user", "password"), [
    ("alice", "wrong"),
    ("alice", ""),  # an empty password would be an LDAP "unauthenticated bind" that succeeds
    ("nobody", "whatever"),
    ("", "x"),
    ("*", "alice-pw-1"),  # filter injection: escaped, matches no uid
    ("alice)(uid=*", "alice-pw-1"),
    ("alice", "bob-pw-2"),
])
def test_bad_credentials_are_all_the_same_unauthorized(authn: LdapAuthenticator, user: str, password: str) -> None:
    with pytest.raises(Unauthorized) as exc:
        authn.authenticate(user, password)
    assert exc.value.message == "invalid credentials"


def test_search_with_a_bind_dn(ldap_server: Ldap) -> None:
    authn = LdapAuthenticator(LdapConfig(url=ldap_server.url, base_dn=ldap_server.base_dn,
                                         bind_dn=ldap_server.root_dn, bind_password=ldap_server.root_pw))
    assert authn.authenticate("carol", ldap_server.passwords["carol"]).groups == {"acme-devs"}


def test_a_wrong_search_account_is_a_temporary_error_not_the_callers_fault(ldap_server: Ldap) -> None:
    authn = LdapAuthenticator(LdapConfig(url=ldap_server.url, base_dn=ldap_server.base_dn,
                                         bind_dn=ldap_server.root_dn, bind_password="nope"))
    with pytest.raises(TemporaryError):
        authn.authenticate("alice", ldap_server.passwords["alice"])


def test_custom_user_filter(ldap_server: Ldap) -> None:
    authn = LdapAuthenticator(LdapConfig(url=ldap_server.url, base_dn=ldap_server.base_dn,
                                         user_filter="(&(objectClass=inetOrgPerson)(cn={username}))"))
    assert authn.authenticate("alice", ldap_server.passwords["alice"]).name == "alice"


def test_unreachable_server_is_a_temporary_error_within_the_timeout() -> None:
    authn = LdapAuthenticator(LdapConfig(url=f"ldap://127.0.0.1:{free_port()}", base_dn="dc=x", timeout_s=1.0))
    with pytest.raises(TemporaryError) as exc:
        authn.authenticate("alice", "pw")
    assert "unavailable" in exc.value.message
