"""The scaling policy, pure: from demand, workers and limits to a new worker set and a reason.

    decide(demand, pending_cores, workers, policy, room, last_change_at, now) -> Decision

Rules (the seed's policy, made faster and safe for busy work):
  * never below `min_workers` (brought back at once, no rate limit);
  * scale out when the cores wanted need more workers than exist: at most `allocation_unit`
    workers per `interval_s`, up to `max_workers` and what the tenant quota leaves;
  * scale in only a worker that has run no executor for `idle_timeout_s`, one per `interval_s`,
    never below what the demand still needs; a busy worker is never chosen;
  * starting workers count as capacity, so a scale-out is not repeated while they boot
    (no overshoot); demand that is steady changes nothing (no flapping).
A decision capped by `max_workers` or the quota says so (`capped_by`), so the SIG status can
tell users why their work waits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from spaas.demand import Demand

DEMAND_FRESH_S = 30.0


@dataclass(frozen=True)
class Policy:
    min_workers: int = 1
    max_workers: int = 10
    allocation_unit: int = 1
    interval_s: int = 15
    idle_timeout_s: int = 120
    cores_per_worker: int = 2
    memory_per_worker_mb: int = 2048


@dataclass(frozen=True)
class Room:
    """What the tenant quota still allows beyond everything that runs now."""

    containers: int = 10**9
    cores: int = 10**9
    memory_mb: int = 10**12

    def workers(self, policy: Policy) -> int:
        return max(0, min(self.containers, self.cores // max(1, policy.cores_per_worker),
                          self.memory_mb // max(1, policy.memory_per_worker_mb)))


@dataclass(frozen=True)
class Worker:
    index: int
    ready: bool = False
    busy: bool = False
    idle_since: float | None = None


@dataclass(frozen=True)
class Decision:
    members: tuple[int, ...]
    action: str  # scale_out | scale_in | hold | steady
    reason: str
    wanted_cores: int = 0
    needed: int = 0
    capped_by: str | None = None

    @property
    def changed(self) -> bool:
        return self.action in ("scale_out", "scale_in")


def _add(members: list[int], count: int) -> tuple[int, ...]:
    out, i = list(members), 0
    while count > 0:
        if i not in out:
            out.append(i)
            count -= 1
        i += 1
    return tuple(sorted(out))


def decide(demand: Demand | None, pending_cores: int, workers: list[Worker], policy: Policy, room: Room,
           last_change_at: float, now: float) -> Decision:
    members = sorted(w.index for w in workers)
    n = len(members)
    fresh = demand is not None and now - demand.reported_at <= DEMAND_FRESH_S
    wanted = (demand.cores_wanted if fresh and demand else 0) + pending_cores
    needed = math.ceil(wanted / max(1, policy.cores_per_worker))
    base: dict[str, Any] = {"wanted_cores": wanted, "needed": needed}

    if n < policy.min_workers:
        return Decision(_add(members, policy.min_workers - n), "scale_out",
                        f"below min_workers ({n} < {policy.min_workers})", **base)

    if needed > n:
        by_max = policy.max_workers
        by_quota = n + room.workers(policy)
        allowed = min(needed, by_max, by_quota)
        capped_by = None
        if needed > by_max and by_max <= by_quota:
            capped_by = "max_workers"
        elif needed > by_quota:
            capped_by = "quota"
        cap_text = {"max_workers": f"max_workers ({by_max})",
                    "quota": f"the tenant quota (room for {by_quota - n} more)"}.get(capped_by or "", "")
        if allowed <= n:
            return Decision(tuple(members), "hold",
                            f"{wanted} cores wanted need {needed} workers; capped by {cap_text} at {n}",
                            capped_by=capped_by, **base)
        if now - last_change_at < policy.interval_s:
            return Decision(tuple(members), "hold",
                            f"{wanted} cores wanted need {needed} workers; next step after interval_s "
                            f"({policy.interval_s}s)", capped_by=capped_by, **base)
        step = min(policy.allocation_unit, allowed - n)
        reason = f"{wanted} cores wanted need {needed} workers: adding {step}"
        if capped_by:
            reason += f" (capped by {cap_text})"
        return Decision(_add(members, step), "scale_out", reason, capped_by=capped_by, **base)

    floor = max(policy.min_workers, needed)
    if fresh and n > floor:
        idle = [w for w in workers if w.ready and not w.busy and w.idle_since is not None
                and now - w.idle_since >= policy.idle_timeout_s]
        if not idle:
            return Decision(tuple(members), "hold", f"{n - floor} workers more than needed; waiting until idle for "
                                                    f"{policy.idle_timeout_s}s", **base)
        if now - last_change_at < policy.interval_s:
            return Decision(tuple(members), "hold", f"next scale-in step after interval_s ({policy.interval_s}s)",
                            **base)
        victim = max(idle, key=lambda w: w.index)
        assert victim.idle_since is not None
        return Decision(tuple(i for i in members if i != victim.index), "scale_in",
                        f"worker {victim.index} idle for {now - victim.idle_since:.0f}s "
                        f"(>= idle_timeout_s {policy.idle_timeout_s}); {wanted} cores wanted need {needed}", **base)

    return Decision(tuple(members), "steady", f"{wanted} cores wanted; {n} workers suffice", **base)
