"""Log streams in Redis: build output that the API serves while a build still runs.

A stream is a Redis list of lines with a TTL. Redis holds nothing that cannot be rebuilt: a
lost build log is a nuisance, not lost state (the build record in etcd keeps the outcome and
the error).
"""

from __future__ import annotations

from typing import Protocol

import redis

from spaas.errors import TemporaryError

TTL_S = 14 * 24 * 3600
MAX_LINE = 4000


class LogStreams(Protocol):
    def append(self, stream: str, *lines: str) -> None: ...

    def read(self, stream: str, start: int = 0, count: int = 1000) -> tuple[list[str], int]:
        """Lines `start..start+count` and the total number of lines."""
        ...


class RedisLogStreams:
    def __init__(self, redis_url: str, *, timeout_s: float = 5.0, prefix: str = "spaas:log:") -> None:
        self._redis = redis.Redis.from_url(
            redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
        )
        self._prefix = prefix

    def append(self, stream: str, *lines: str) -> None:
        if not lines:
            return
        key = self._prefix + stream
        try:
            pipe = self._redis.pipeline()
            pipe.rpush(key, *(line[:MAX_LINE] for line in lines))
            pipe.expire(key, TTL_S)
            pipe.execute()
        except redis.RedisError as exc:
            raise TemporaryError(f"cannot append to log {stream}: {exc}") from None

    def read(self, stream: str, start: int = 0, count: int = 1000) -> tuple[list[str], int]:
        key = self._prefix + stream
        try:
            pipe = self._redis.pipeline()
            pipe.lrange(key, start, start + count - 1 if count > 0 else start - 1)
            pipe.llen(key)
            lines, total = pipe.execute()
        except redis.RedisError as exc:
            raise TemporaryError(f"cannot read log {stream}: {exc}") from None
        return list(lines), int(total)

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False


def sig_build_stream(tenant: str, sig: str, generation: int) -> str:
    """Lines about one SIG generation's build (cache hit, join, outcome)."""
    return f"build:sig:{tenant}/{sig}/{generation}"


def key_build_stream(build_key: str) -> str:
    """The output of the one build of a build key, shared by every SIG that uses it."""
    return f"build:key:{build_key}"
