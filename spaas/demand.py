"""Demand of a SIG and the scaling decision log: short-lived data in Redis.

The master's agent reports what its Spark master sees (a `Demand`, with a TTL so a dead agent's
report fades); the scaler appends every decision to a capped list that the API serves. Neither
is system-of-record: losing them delays scaling by one report, nothing more.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, cast

import redis

from spaas.errors import TemporaryError

DEMAND_TTL_S = 60
DECISIONS_KEPT = 200


@dataclass(frozen=True)
class WorkerLoad:
    """One worker as the Spark master sees it."""

    cores: int = 0
    cores_used: int = 0
    executors: int = 0
    state: str = "ALIVE"
    # Since when it has run no executor (None while busy).
    idle_since: float | None = None


@dataclass(frozen=True)
class Demand:
    """Cores the SIG's applications want versus what they were granted."""

    cores_wanted: int = 0
    cores_granted: int = 0
    waiting_apps: int = 0
    running_apps: int = 0
    driver_backlog: int = 0
    workers: dict[str, WorkerLoad] = field(default_factory=dict)
    reported_at: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Demand:
        data = json.loads(text)
        workers = {k: WorkerLoad(**v) for k, v in data.pop("workers", {}).items()}
        return cls(workers=workers, **data)

    def signature(self) -> tuple[Any, ...]:
        """What changes count as 'demand changed' (not timestamps)."""
        return (self.cores_wanted, self.cores_granted, self.waiting_apps, self.running_apps, self.driver_backlog,
                tuple(sorted((k, w.cores_used > 0, w.state) for k, w in self.workers.items())))


class DemandStore(Protocol):
    def report(self, tenant: str, sig: str, demand: Demand) -> None: ...

    def latest(self, tenant: str, sig: str) -> Demand | None: ...

    def record_decision(self, tenant: str, sig: str, decision: dict[str, Any]) -> None: ...

    def decisions(self, tenant: str, sig: str, limit: int = 50) -> list[dict[str, Any]]: ...

    def forget(self, tenant: str, sig: str) -> None: ...


class RedisDemandStore:
    def __init__(self, redis_url: str, *, timeout_s: float = 5.0, prefix: str = "spaas:") -> None:
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                           decode_responses=True)
        self._prefix = prefix

    def _demand_key(self, tenant: str, sig: str) -> str:
        return f"{self._prefix}demand:{tenant}/{sig}"

    def _decisions_key(self, tenant: str, sig: str) -> str:
        return f"{self._prefix}decisions:{tenant}/{sig}"

    def report(self, tenant: str, sig: str, demand: Demand) -> None:
        try:
            self._redis.set(self._demand_key(tenant, sig), demand.to_json(), ex=DEMAND_TTL_S)
        except redis.RedisError as exc:
            raise TemporaryError(f"cannot report demand of {tenant}/{sig}: {exc}") from None

    def latest(self, tenant: str, sig: str) -> Demand | None:
        try:
            raw = cast("str | None", self._redis.get(self._demand_key(tenant, sig)))
        except redis.RedisError as exc:
            raise TemporaryError(f"cannot read demand of {tenant}/{sig}: {exc}") from None
        if not raw:
            return None
        try:
            return Demand.from_json(raw)
        except (ValueError, TypeError):
            return None

    def latest_many(self, sigs: list[tuple[str, str]]) -> dict[tuple[str, str], Demand | None]:
        """`latest` of many SIGs in one round trip per 500 (the scaler's pass reads every SIG's)."""
        out: dict[tuple[str, str], Demand | None] = {}
        for i in range(0, len(sigs), 500):
            chunk = sigs[i:i + 500]
            try:
                raws = cast("list[str | None]", self._redis.mget([self._demand_key(t, s) for t, s in chunk]))
            except redis.RedisError as exc:
                raise TemporaryError(f"cannot read demand: {exc}") from None
            for ident, raw in zip(chunk, raws):
                try:
                    out[ident] = Demand.from_json(raw) if raw else None
                except (ValueError, TypeError):
                    out[ident] = None
        return out

    def record_decision(self, tenant: str, sig: str, decision: dict[str, Any]) -> None:
        key = self._decisions_key(tenant, sig)
        try:
            pipe = self._redis.pipeline()
            pipe.lpush(key, json.dumps(dict(decision, time=decision.get("time", time.time())), sort_keys=True))
            pipe.ltrim(key, 0, DECISIONS_KEPT - 1)
            pipe.execute()
        except redis.RedisError as exc:
            raise TemporaryError(f"cannot record a decision of {tenant}/{sig}: {exc}") from None

    def decisions(self, tenant: str, sig: str, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first."""
        try:
            raw = cast("list[str]", self._redis.lrange(self._decisions_key(tenant, sig), 0, max(0, limit - 1)))
        except redis.RedisError as exc:
            raise TemporaryError(f"cannot read decisions of {tenant}/{sig}: {exc}") from None
        out = []
        for item in raw:
            try:
                out.append(json.loads(item))
            except ValueError:
                continue
        return out

    def forget(self, tenant: str, sig: str) -> None:
        try:
            self._redis.delete(self._demand_key(tenant, sig), self._decisions_key(tenant, sig))
        except redis.RedisError:
            pass
