"""The LDAP adapter of the `Authenticator` port (`spaas.auth.Authenticator`): the only module that imports ldap3.

A login is: search the user under the base DN with the user filter (as the configured bind DN,
or anonymously), bind as the found DN with the given password, then search the user's groups
(`groupOfNames` by member DN, `posixGroup` by memberUid, by default). Every value put into a
filter is escaped (RFC 4515), an empty password is refused before any bind (an LDAP "unauthenticated
bind" would otherwise succeed), and every failure that is the caller's fault is the same
`Unauthorized("invalid credentials")`. Directory trouble is `TemporaryError`. ldap3 exceptions
never leave this module.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field

import ldap3
from ldap3.core import exceptions as ldap_exc
from ldap3.utils.conv import escape_filter_chars

from spaas.auth import Identity
from spaas.errors import TemporaryError, Unauthorized

log = logging.getLogger(__name__)

INVALID = "invalid credentials"


@dataclass(frozen=True)
class LdapConfig:
    url: str
    base_dn: str
    user_filter: str = "(uid={username})"
    group_filter: str = ("(|(&(objectClass=groupOfNames)(member={user_dn}))"
                         "(&(objectClass=posixGroup)(memberUid={username})))")
    group_name_attr: str = "cn"
    bind_dn: str = ""
    bind_password: str = field(default="", repr=False)
    start_tls: bool = False
    ca_file: str = ""
    timeout_s: float = 5.0


class LdapAuthenticator:
    def __init__(self, config: LdapConfig) -> None:
        self._config = config
        tls = None
        if config.start_tls or config.url.lower().startswith("ldaps://"):
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=config.ca_file or None)
        self._server = ldap3.Server(config.url, connect_timeout=config.timeout_s, tls=tls, get_info=ldap3.NONE)

    def _connection(self, user: str | None, password: str | None) -> ldap3.Connection:
        # ldap3 packs receive_timeout into a socket option: whole seconds only.
        conn = ldap3.Connection(self._server, user=user, password=password,
                                receive_timeout=max(1, round(self._config.timeout_s)),
                                auto_bind=ldap3.AUTO_BIND_NONE, raise_exceptions=False, read_only=True)
        conn.open()
        if self._config.start_tls and not self._config.url.lower().startswith("ldaps://"):
            if not conn.start_tls():
                raise TemporaryError(f"LDAP StartTLS with {self._config.url} failed")
        return conn

    def _search_connection(self) -> ldap3.Connection:
        conn = self._connection(self._config.bind_dn or None, self._config.bind_password or None)
        if not conn.bind():
            result = conn.result or {}
            conn.unbind()
            # The service account is ours, not the caller's: its failure is not "invalid credentials".
            raise TemporaryError(f"LDAP bind as the search account failed: {result.get('description')}")
        return conn

    def authenticate(self, username: str, password: str) -> Identity:
        if not username or not password:
            raise Unauthorized(INVALID)
        try:
            return self._authenticate(username, password)
        except ldap_exc.LDAPException as exc:
            log.warning("LDAP %s unavailable: %s", self._config.url, exc.__class__.__name__)
            raise TemporaryError(f"the LDAP server {self._config.url} is unavailable ({exc.__class__.__name__})") from None

    def _authenticate(self, username: str, password: str) -> Identity:
        cfg = self._config
        search = self._search_connection()
        try:
            user_filter = cfg.user_filter.replace("{username}", escape_filter_chars(username))
            search.search(cfg.base_dn, user_filter, search_scope=ldap3.SUBTREE, attributes=[], size_limit=2,
                          time_limit=int(cfg.timeout_s) or 1)
            entries = [e for e in search.response or [] if e.get("type") == "searchResEntry"]
            if len(entries) != 1:
                if len(entries) > 1:
                    log.warning("LDAP: the user filter matches more than one entry; refusing the login")
                raise Unauthorized(INVALID)
            user_dn = str(entries[0]["dn"])
            user = self._connection(user_dn, password)
            try:
                if not user.bind():
                    raise Unauthorized(INVALID)
            finally:
                user.unbind()
            group_filter = (cfg.group_filter.replace("{user_dn}", escape_filter_chars(user_dn))
                            .replace("{username}", escape_filter_chars(username)))
            search.search(cfg.base_dn, group_filter, search_scope=ldap3.SUBTREE,
                          attributes=[cfg.group_name_attr], time_limit=int(cfg.timeout_s) or 1)
            groups = set()
            for entry in search.response or []:
                if entry.get("type") != "searchResEntry":
                    continue
                value = (entry.get("attributes") or {}).get(cfg.group_name_attr)
                for name in value if isinstance(value, list) else [value]:
                    if name:
                        groups.add(str(name))
            return Identity(name=username, groups=frozenset(groups))
        finally:
            search.unbind()
