"""Bearer tokens: generation, hashing, the bootstrap admin token, login and personal API tokens.

Only hashes are stored (etcd `{p}/auth/bootstrap`, `{p}/auth/tokens/{sha256}`); the plaintext of
the bootstrap token is shown once, written to a 0600 file whose path the README names; login and
API tokens are shown once in the response that creates them. Token records live on an etcd lease
that outlives their `expires_at` a little, so expired tokens also disappear from etcd.

The `Authenticator` port (user name + password -> `Identity`) is implemented by
`spaas.ldap.LdapAuthenticator`; `NoDirectory` is what runs when no LDAP server is configured.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from spaas.errors import Conflict, Unauthorized
from spaas.keys import Keys
from spaas.store import Store

log = logging.getLogger(__name__)


def new_token() -> str:
    return "spaas_" + secrets.token_urlsafe(32)


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: the proxy hands it to the page, the console checks it on every change."""
    return hashlib.sha256(b"spaas-csrf\0" + session_token.encode()).hexdigest()[:40]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def matches(token: str, token_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), token_hash)


def _write_secret_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    os.chmod(path, 0o600)


def ensure_bootstrap_token(store: Store, keys: Keys, token_file: Path, *, preset: str = "") -> str:
    """Make sure a bootstrap admin token exists; returns its hash.

    `preset` (from settings) wins and replaces the stored hash. Otherwise the first API replica
    to start creates one (put-if-absent, so replicas cannot race) and writes it to `token_file`.
    """
    key = keys.bootstrap_token()
    if preset:
        digest = hash_token(preset)
        store.put(key, {"hash": digest})
        _write_secret_file(token_file, preset)
        return digest
    current = store.get(key)
    if current is not None:
        if not token_file.exists():
            log.warning("admin token file %s is missing; the stored token still works", token_file)
        return str(current.value["hash"])
    token = new_token()
    try:
        store.create(key, {"hash": hash_token(token)})
    except Conflict:
        entry = store.get(key)
        assert entry is not None
        return str(entry.value["hash"])
    _write_secret_file(token_file, token)
    log.info("generated the bootstrap admin token; written to %s", token_file)
    return hash_token(token)


# -- the Authenticator port ------------------------------------------------------------------

@dataclass(frozen=True)
class Identity:
    """Who a directory says the caller is: the login name and the names of its groups."""

    name: str
    groups: frozenset[str] = frozenset()


class Authenticator(Protocol):
    def authenticate(self, username: str, password: str) -> Identity:
        """The identity behind valid credentials; `Unauthorized` (no hint why) otherwise,
        `TemporaryError` if the directory cannot be reached."""
        ...


class NoDirectory:
    """No LDAP server configured: only the bootstrap admin token works."""

    def authenticate(self, username: str, password: str) -> Identity:
        raise Unauthorized("invalid credentials")


# -- login sessions and personal API tokens ------------------------------------------------------

LEASE_SLACK_S = 60


@dataclass(frozen=True)
class IssuedToken:
    token: str = field(repr=False)
    id: str
    expires_at: float


@dataclass(frozen=True)
class TokenRecord:
    id: str
    kind: str  # "session" | "api"
    user: str
    groups: frozenset[str]
    name: str
    created_at: float
    expires_at: float
    token_hash: str = field(repr=False)


class Tokens:
    """Issues, looks up and revokes login (`session`) and personal (`api`) tokens in the store."""

    def __init__(self, store: Store, keys: Keys, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._keys = keys
        self._clock = clock

    def issue(self, identity: Identity, *, kind: str, ttl_s: int, name: str = "") -> IssuedToken:
        token = new_token()
        digest = hash_token(token)
        now = self._clock()
        token_id = secrets.token_hex(8)
        record = {"id": token_id, "kind": kind, "user": identity.name, "groups": sorted(identity.groups),
                  "name": name, "created_at": now, "expires_at": now + ttl_s}
        lease = self._store.grant_lease(int(ttl_s) + LEASE_SLACK_S)
        self._store.put(self._keys.token(digest), record, lease=lease)
        if kind == "api":
            self._store.put(self._keys.user_token(identity.name, token_id), dict(record, hash=digest), lease=lease)
        log.info("issued %s token %s for %s", kind, token_id, identity.name)
        return IssuedToken(token=token, id=token_id, expires_at=now + ttl_s)

    def lookup(self, token: str) -> TokenRecord | None:
        """The record of a live token; None for unknown, revoked or expired ones."""
        digest = hash_token(token)
        entry = self._store.get(self._keys.token(digest))
        if entry is None:
            return None
        v = entry.value
        if float(v.get("expires_at", 0)) <= self._clock():
            return None
        return TokenRecord(id=str(v["id"]), kind=str(v["kind"]), user=str(v["user"]),
                           groups=frozenset(v.get("groups", ())), name=str(v.get("name", "")),
                           created_at=float(v["created_at"]), expires_at=float(v["expires_at"]), token_hash=digest)

    def revoke(self, record: TokenRecord) -> None:
        self._store.delete(self._keys.token(record.token_hash))
        if record.kind == "api":
            self._store.delete(self._keys.user_token(record.user, record.id))
        log.info("revoked %s token %s of %s", record.kind, record.id, record.user)

    def api_tokens(self, user: str) -> list[dict[str, Any]]:
        """The user's live personal tokens, without secrets or hashes, oldest first."""
        now = self._clock()
        out = []
        for entry in self._store.list(self._keys.user_tokens(user)):
            v = entry.value
            if float(v.get("expires_at", 0)) > now:
                out.append({k: v.get(k) for k in ("id", "name", "created_at", "expires_at")})
        return sorted(out, key=lambda t: (t["created_at"], t["id"]))

    def revoke_api_token(self, user: str, token_id: str) -> bool:
        """False if the user has no such token (someone else's id is "no such token" too)."""
        entry = self._store.get(self._keys.user_token(user, token_id))
        if entry is None:
            return False
        self._store.delete(self._keys.token(str(entry.value["hash"])))
        self._store.delete(entry.key)
        log.info("revoked api token %s of %s", token_id, user)
        return True
