"""Who is calling: credentials from headers, and an in-memory cache token hash -> principal.

Accepted: `Authorization: Bearer <token>`, `Authorization: Basic user:token`, the session cookie
`spaas_session` (set by `/platform/session`, see session.py) and, in forward mode,
`Proxy-Authorization: Basic user:token`. With Basic the user must be the token's owner
(`admin` for the bootstrap token), else the credentials count as wrong.

A cookie-authenticated request that changes something (POST, PUT, PATCH, DELETE) must carry
`X-CSRF-Token` equal to `csrf_token(session token)`, which `/platform/session` returns and also
puts in the readable cookie `spaas_csrf`; another site can neither read it nor compute it.

Token lookups hit etcd only on a cache miss (in a worker thread); answers are kept `ttl_s`
(unknown tokens 1 s), so a revoked token stops working within `ttl_s`.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from spaas import auth
from spaas.auth import TokenRecord
from spaas.authz import Principal
from spaas.principals import basic_credentials, principal_for

from services.proxy.rewrite import SESSION_COOKIE

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NEGATIVE_TTL_S = 1.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Credentials:
    token: str
    via: str  # "bearer" | "basic" | "cookie" | "proxy"
    user: str = ""  # the Basic user name, checked against the token's owner


def cookie_value(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


def credentials(authorization: str, cookie: str, proxy_authorization: str, *, forward: bool) -> Credentials | None:
    """The credentials a request presents; forward mode uses only Proxy-Authorization."""
    if forward:
        basic = basic_credentials(proxy_authorization) if proxy_authorization else None
        return Credentials(basic[1], "proxy", basic[0]) if basic else None
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return Credentials(value.strip(), "bearer")
        basic = basic_credentials(authorization)
        return Credentials(basic[1], "basic", basic[0]) if basic else None
    if cookie:
        token = cookie_value(cookie, SESSION_COOKIE)
        if token:
            return Credentials(token, "cookie")
    return None


csrf_token = auth.csrf_token  # one definition: the console (services/api/console) checks the same value


def csrf_ok(method: str, creds: Credentials | None, header: str) -> bool:
    """Cookie-authenticated mutating requests need the session's CSRF token."""
    if creds is None or creds.via != "cookie" or method not in MUTATING:
        return True
    return bool(header) and hmac.compare_digest(header, csrf_token(creds.token))


class AuthCache:
    def __init__(self, lookup: Callable[[str], TokenRecord | None], *, ttl_s: float,
                 admin_users: tuple[str, ...] = (), admin_groups: tuple[str, ...] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lookup = lookup
        self._ttl = ttl_s
        self._admin_users = admin_users
        self._admin_groups = admin_groups
        self._clock = clock
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._inflight: dict[str, asyncio.Future[Principal | None]] = {}
        self.misses = 0

    def cached(self, token: str) -> tuple[bool, Principal | None]:
        """(hit, principal) without any I/O."""
        entry = self._entries.get(auth.hash_token(token))
        if entry is not None and entry[0] > self._clock():
            return True, entry[1]
        return False, None

    def _resolve_sync(self, token: str, bootstrap_hash: str) -> Principal | None:
        return principal_for(token, bootstrap_hash=bootstrap_hash, lookup=self._lookup,
                             admin_users=self._admin_users, admin_groups=self._admin_groups)

    async def resolve(self, token: str, bootstrap_hash: str) -> Principal | None:
        digest = auth.hash_token(token)
        entry = self._entries.get(digest)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        pending = self._inflight.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Principal | None] = loop.create_future()
        self._inflight[digest] = fut
        self.misses += 1
        try:
            principal = await loop.run_in_executor(None, self._resolve_sync, token, bootstrap_hash)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: joiners re-raise it
            raise
        finally:
            self._inflight.pop(digest, None)
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = (self._clock() + (self._ttl if principal else NEGATIVE_TTL_S), principal)
        fut.set_result(principal)
        return principal

    def forget(self, token: str) -> None:
        self._entries.pop(auth.hash_token(token), None)


def check_basic_user(creds: Credentials, principal: Principal | None) -> Principal | None:
    """Basic credentials name the token's owner; a mismatch is as good as a wrong token."""
    if principal is None or creds.via not in ("basic", "proxy"):
        return principal
    return principal if creds.user == principal.name else None
