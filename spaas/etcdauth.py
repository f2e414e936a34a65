"""etcd's own RBAC for spaas: the platform runs as etcd's `root`; each SIG's containers get a
user of their own that reaches only that SIG's keys.

    role/user  <prefix>.sig.<tenant>.<sig>        e.g. spaas.sig.acme.etl (prefix "/spaas")
    READ       {p}/sigs/{t}/{s}/spec              the agent reads the SIG's Spark conf
    READ       {p}/secrets/{t}/{s}                the SIG's Spark secret
    READWRITE  {p}/hosts/{t}/{s}/*                its host records (put with a lease, list, revoke)
    READWRITE  {p}/apps/{t}/{s}/*                 app specs and kill keys (read), app state (write)

Nothing else: not another SIG's keys, not its own route records `{p}/routes/{t}/{s}/*` (the
proxy trusts those because only the scaler writes them), not tenants, members, auth tokens, builds, and no range
over `{p}/` (etcd checks that a whole range is inside one permission). Lease grant and keepalive
need no permission in etcd; revoking a lease needs write access to its keys, which the agent has.

A SIG user's password is an HMAC of the SIG's identity keyed by a platform secret (the root
password), so the scaler can re-derive it on every start and nothing has to be stored where
another SIG could read it. `enable_auth` turns authentication on in a fresh etcd (idempotent);
`SigCredentials` is what the scaler uses to give a SIG's containers their user.

Deciding is pure (`sig_permissions`, `sig_user`, `sig_password`); the rest are thin calls to the
JSON gateway's `/v3/auth/*` through `EtcdStore.call`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass

from spaas.errors import Conflict, NotFound
from spaas.etcd import EtcdForbidden, EtcdStore, prefix_end
from spaas.keys import Keys

log = logging.getLogger(__name__)

ROOT = "root"
READ = "READ"
READWRITE = "READWRITE"


@dataclass(frozen=True, order=True)
class Permission:
    """`kind` READ or READWRITE on `key`, or on every key starting with it when `prefix`."""

    kind: str
    key: str
    prefix: bool = False

    def range_end(self) -> str:
        """The gateway's base64 `range_end` ("" for a single key)."""
        return prefix_end(self.key) if self.prefix else ""


def sig_permissions(keys: Keys, tenant: str, sig: str) -> tuple[Permission, ...]:
    """What one SIG's containers (the agent and the code it runs) may touch. Pure."""
    return (
        Permission(READ, keys.sig_spec(tenant, sig)),
        Permission(READ, keys.secret(tenant, sig)),
        Permission(READWRITE, keys.hosts(tenant, sig), prefix=True),
        Permission(READWRITE, keys.apps(tenant, sig), prefix=True),
    )


def sig_user(keys: Keys, tenant: str, sig: str) -> str:
    """Deterministic user (and role) name of a SIG; the key prefix keeps platforms sharing one etcd apart."""
    platform = keys.prefix.strip("/").replace("/", ".") or "spaas"
    return f"{platform}.sig.{tenant}.{sig}"


def sig_password(secret: str, keys: Keys, tenant: str, sig: str) -> str:
    """The SIG user's password: HMAC-SHA256 of its identity keyed by a platform secret. Pure."""
    message = f"spaas-etcd-sig\0{keys.prefix}\0{tenant}\0{sig}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode() if text else ""


def _perm_body(perm: Permission) -> dict[str, str]:
    body = {"permType": perm.kind, "key": _b64(perm.key)}
    if perm.prefix:
        body["range_end"] = perm.range_end()
    return body


def _granted(store: EtcdStore, role: str) -> dict[tuple[str, str], str]:
    """(key, range_end) -> kind of what `role` holds now (etcd omits READ, the enum's zero)."""
    data = store.call("/v3/auth/role/get", {"role": role})
    return {(_unb64(p.get("key", "")), p.get("range_end", "")): p.get("permType", READ)
            for p in data.get("perm") or []}


# -- bootstrap ---------------------------------------------------------------------------------
def enable_auth(url: str, root_password: str, *, timeout_s: float = 5.0) -> bool:
    """Turn etcd's authentication on with `root` / `root_password`; True if this call enabled it.

    Idempotent: when auth is already on it only checks that the password is root's
    (`EtcdForbidden` if not). Safe to race: a second enabler finds the user and auth there."""
    if not root_password:
        raise EtcdForbidden("enabling etcd authentication needs a root password (SPAAS_ETCD_PASSWORD)")
    store = EtcdStore(url, timeout_s=timeout_s, user=ROOT, password=root_password)
    if store.authenticate():
        return False  # etcd gave root a token: auth is on already, and the password is right
    try:
        store.call("/v3/auth/user/add", {"name": ROOT, "password": root_password})
    except Conflict:
        store.call("/v3/auth/user/changepw", {"name": ROOT, "password": root_password})
    store.call("/v3/auth/user/grant", {"user": ROOT, "role": ROOT})
    try:
        store.call("/v3/auth/enable", {})
    except EtcdForbidden:
        # Someone else enabled it between our calls; logging in proves the password is root's.
        if not store.authenticate():
            raise
        return False
    log.info("etcd authentication enabled at %s (user root)", url)
    return True


# -- SIG users ---------------------------------------------------------------------------------
def ensure_sig_user(store: EtcdStore, keys: Keys, tenant: str, sig: str, password: str) -> str:
    """Create or repair the SIG's role and user (`store` must be root); returns the user name.

    Only what differs is written: a password change invalidates the user's tokens, so the
    password is set only when logging in with it fails."""
    name = sig_user(keys, tenant, sig)
    try:
        store.call("/v3/auth/role/add", {"name": name})
    except Conflict:
        pass
    want = {(p.key, p.range_end()): p.kind for p in sig_permissions(keys, tenant, sig)}
    have = _granted(store, name)
    for (key, range_end), kind in have.items():
        if want.get((key, range_end)) != kind:
            body = {"role": name, "key": _b64(key)}
            if range_end:
                body["range_end"] = range_end
            store.call("/v3/auth/role/revoke", body)
    for perm in sig_permissions(keys, tenant, sig):
        if have.get((perm.key, perm.range_end())) != perm.kind:
            store.call("/v3/auth/role/grant", {"name": name, "perm": _perm_body(perm)})
    try:
        store.call("/v3/auth/user/add", {"name": name, "password": password})
    except Conflict:
        if not _password_works(store, name, password):
            store.call("/v3/auth/user/changepw", {"name": name, "password": password})
    roles = store.call("/v3/auth/user/get", {"name": name}).get("roles") or []
    if name not in roles:
        store.call("/v3/auth/user/grant", {"user": name, "role": name})
    return name


def _password_works(store: EtcdStore, name: str, password: str) -> bool:
    try:
        return store.as_user(name, password).authenticate()
    except EtcdForbidden:
        return False


def delete_sig_user(store: EtcdStore, keys: Keys, tenant: str, sig: str) -> None:
    """Remove the SIG's user and role (`store` must be root); gone already is fine."""
    name = sig_user(keys, tenant, sig)
    for path, body in (("/v3/auth/user/delete", {"name": name}), ("/v3/auth/role/delete", {"role": name})):
        try:
            store.call(path, body)
        except NotFound:
            pass


class SigCredentials:
    """The scaler's view: the environment that gives a SIG's containers their own etcd user."""

    def __init__(self, store: EtcdStore, keys: Keys, *, secret: str) -> None:
        self._store = store
        self._keys = keys
        self._secret = secret

    def env(self, tenant: str, sig: str) -> dict[str, str]:
        """Ensure the SIG's user exists with its permissions; its `SPAAS_ETCD_*` variables."""
        password = sig_password(self._secret, self._keys, tenant, sig)
        user = ensure_sig_user(self._store, self._keys, tenant, sig, password)
        return {"SPAAS_ETCD_USER": user, "SPAAS_ETCD_PASSWORD": password}

    def forget(self, tenant: str, sig: str) -> None:
        delete_sig_user(self._store, self._keys, tenant, sig)
        log.info("sig %s/%s: etcd user %s removed", tenant, sig, sig_user(self._keys, tenant, sig))
