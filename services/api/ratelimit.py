"""Failed-login counters in Redis, shared by every API replica.

Each failure increments a counter per user name and one per client address; the first increment
starts the window (`EXPIRE`). While a counter is at its limit, logins for that name or from that
address are refused with 429 and `Retry-After` = the counter's remaining lifetime, before any
password is checked. A success clears the user-name counter (not the address's). The user-name
key is the name's one normalised form (`spaas.authz.fold`), so " Alice" and "ALICE" share it.
"""

from __future__ import annotations

from typing import Protocol

import redis

from spaas.authz import fold
from spaas.errors import TemporaryError


class LoginLimiter(Protocol):
    def blocked_for(self, username: str, address: str) -> int:
        """Seconds until a login may be tried again; 0 if it may now."""
        ...

    def failed(self, username: str, address: str) -> None: ...

    def succeeded(self, username: str) -> None: ...


class RedisLoginLimiter:
    def __init__(self, redis_url: str, *, prefix: str, max_per_user: int, max_per_addr: int, window_s: int,
                 timeout_s: float = 5.0) -> None:
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._prefix = prefix
        self._max_user = max_per_user
        self._max_addr = max_per_addr
        self._window = window_s

    def _user_key(self, username: str) -> str:
        return f"{self._prefix}user:{fold(username)}"

    def _addr_key(self, address: str) -> str:
        return f"{self._prefix}addr:{address}"

    def blocked_for(self, username: str, address: str) -> int:
        try:
            pipe = self._redis.pipeline()
            for key in (self._user_key(username), self._addr_key(address)):
                pipe.get(key)
                pipe.ttl(key)
            user_n, user_ttl, addr_n, addr_ttl = pipe.execute()
        except redis.RedisError as exc:
            raise TemporaryError(f"login rate limiter unavailable: {exc.__class__.__name__}") from None
        wait = 0
        if user_n is not None and int(user_n) >= self._max_user:
            wait = max(wait, int(user_ttl) if int(user_ttl) > 0 else self._window)
        if addr_n is not None and int(addr_n) >= self._max_addr:
            wait = max(wait, int(addr_ttl) if int(addr_ttl) > 0 else self._window)
        return wait

    def failed(self, username: str, address: str) -> None:
        try:
            pipe = self._redis.pipeline()
            for key in (self._user_key(username), self._addr_key(address)):
                pipe.incr(key)
                pipe.expire(key, self._window, nx=True)
            pipe.execute()
        except redis.RedisError as exc:
            raise TemporaryError(f"login rate limiter unavailable: {exc.__class__.__name__}") from None

    def succeeded(self, username: str) -> None:
        try:
            self._redis.delete(self._user_key(username))
        except redis.RedisError as exc:
            raise TemporaryError(f"login rate limiter unavailable: {exc.__class__.__name__}") from None
