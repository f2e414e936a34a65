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
import secrets
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from spaas import safefs
from spaas.authz import fold
from spaas.errors import Conflict, Invalid, Unauthorized
from spaas.keys import Keys
from spaas.memo import EntryMemo
from spaas.records import UserTokenRecord, decode, get_record, read_user_tokens
from spaas.store import Entry, Store

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
    """0600, through a temporary file renamed into place: a link planted at `path` is replaced, not written through."""
    safefs.write_atomic(path.parent, path.name, (text + "\n").encode(), mode=0o600)


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


# -- login names ----------------------------------------------------------------------------------

def normalize_login(name: str, *, field: str = "username") -> str:
    """A login name in its one form (`authz.fold`: trimmed, case-folded as LDAP compares it);
    `Invalid` for control characters or a name that is only blanks."""
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise Invalid("the login name contains control characters", field=field)
    folded = fold(name)
    if not folded:
        raise Invalid("the login name is empty", field=field)
    return folded


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
# How many tokens deep a token may be minted from tokens (login -> API token -> API token ...).
MAX_TOKEN_DEPTH = 4


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
    # Hashes of the tokens this one was minted with, nearest last: it dies with any of them.
    ancestors: tuple[str, ...] = field(default=(), repr=False)


class Tokens:
    """Issues, looks up and revokes login (`session`) and personal (`api`) tokens in the store."""

    def __init__(self, store: Store, keys: Keys, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._keys = keys
        self._clock = clock
        # Verified token records by hash, beside the entry each was read from (see `_record`).
        self._verified: EntryMemo[TokenRecord | None] = EntryMemo(max_items=100_000)

    def issue(self, identity: Identity, *, kind: str, ttl_s: int, name: str = "",
              parent: TokenRecord | None = None) -> IssuedToken:
        """A new token. Minted with `parent` (another live token), it expires no later than the
        parent and dies with it (revoking the parent revokes it; `lookup` checks its ancestors)."""
        token = new_token()
        digest = hash_token(token)
        now = self._clock()
        token_id = secrets.token_hex(8)
        expires_at = now + ttl_s
        ancestors: list[str] = []
        if parent is not None:
            ancestors = [*parent.ancestors, parent.token_hash]
            if len(ancestors) > MAX_TOKEN_DEPTH:
                raise Invalid(f"a token can be minted at most {MAX_TOKEN_DEPTH} tokens deep; "
                              f"mint this one while logged in", field="Authorization")
            expires_at = min(expires_at, parent.expires_at)
        user = fold(identity.name)
        record = {"id": token_id, "kind": kind, "user": user, "groups": sorted({fold(g) for g in identity.groups}),
                  "name": name, "created_at": now, "expires_at": expires_at, "ancestors": ancestors}
        lease = self._store.grant_lease(max(1, int(expires_at - now)) + LEASE_SLACK_S)
        self._store.put(self._keys.token(digest), record, lease=lease)
        if kind == "api":
            self._store.put(self._keys.user_token(user, token_id), dict(record, hash=digest), lease=lease)
        log.info("issued %s token %s for %s%s", kind, token_id, user, f" (child of {parent.id})" if parent else "")
        return IssuedToken(token=token, id=token_id, expires_at=expires_at)

    def _record(self, digest: str) -> TokenRecord | None:
        """The live record of a token hash. The record derived from a stored entry is kept while
        the entry is the same (`spaas.memo`): the store is read on every call, so a revoked token
        is gone as soon as the store shows the delete, and the expiry is checked on every call."""
        entry = self._store.get(self._keys.token(digest))
        if entry is None:
            return None
        record = self._verified.get(digest, (entry,), lambda entries: self._from_entry(digest, entries[0]))
        if record is None or record.expires_at <= self._clock():
            return None  # expired, or a malformed record (which authenticates nobody)
        return record

    @staticmethod
    def _from_entry(digest: str, entry: Entry) -> TokenRecord | None:
        v = decode(UserTokenRecord, entry)
        if not isinstance(v, UserTokenRecord):
            return None
        return TokenRecord(id=v.id, kind=v.kind, user=v.user, groups=frozenset(v.groups), name=v.name,
                           created_at=v.created_at, expires_at=v.expires_at, token_hash=digest,
                           ancestors=tuple(v.ancestors))

    def lookup(self, token: str) -> TokenRecord | None:
        """The record of a live token; None for unknown, revoked or expired ones, and for tokens
        whose parent (or its parent...) is no longer live."""
        record = self._record(hash_token(token))
        if record is None:
            return None
        for ancestor in record.ancestors:
            if self._record(ancestor) is None:
                return None
        return record

    def _revoke_children(self, record: TokenRecord) -> None:
        """Tokens minted with `record` (always API tokens of the same user) go with it."""
        for child in read_user_tokens(self._store, self._keys.user_tokens(record.user)):
            if record.token_hash in child.ancestors:
                if child.hash:
                    self._store.delete(self._keys.token(child.hash))
                self._store.delete(self._keys.user_token(record.user, child.id))
                log.info("revoked api token %s of %s with its parent %s", child.id, record.user, record.id)

    def revoke(self, record: TokenRecord) -> None:
        self._store.delete(self._keys.token(record.token_hash))
        if record.kind == "api":
            self._store.delete(self._keys.user_token(record.user, record.id))
        log.info("revoked %s token %s of %s", record.kind, record.id, record.user)
        self._revoke_children(record)

    def api_tokens(self, user: str) -> list[dict[str, Any]]:
        """The user's live personal tokens, without secrets or hashes, oldest first."""
        now = self._clock()
        out = []
        for v in read_user_tokens(self._store, self._keys.user_tokens(user)):
            if v.expires_at > now:
                out.append({"id": v.id, "name": v.name, "created_at": v.created_at, "expires_at": v.expires_at})
        return sorted(out, key=lambda t: (t["created_at"], t["id"]))

    def revoke_api_token(self, user: str, token_id: str) -> bool:
        """False if the user has no such token (someone else's id is "no such token" too)."""
        record = get_record(self._store, self._keys.user_token(user, token_id), UserTokenRecord)
        if record is None:
            return False
        if isinstance(record, UserTokenRecord) and record.hash:
            self._store.delete(self._keys.token(record.hash))
        self._store.delete(self._keys.user_token(user, token_id))  # a malformed one goes too
        log.info("revoked api token %s of %s", token_id, user)
        if isinstance(record, UserTokenRecord) and record.hash:
            self._revoke_children(TokenRecord(id=token_id, kind="api", user=user, groups=frozenset(), name="",
                                              created_at=0.0, expires_at=0.0, token_hash=record.hash))
        return True
