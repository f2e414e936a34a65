"""The scaling policy as a decision table (services/scaler/policy.py)."""

from __future__ import annotations

import pytest

from services.scaler.policy import Decision, Policy, Room, Worker, decide
from spaas.demand import Demand, WorkerLoad

NOW = 10_000.0
SEED = Policy()  # the seed chart's defaults: 1..10 workers, 1 per step, 15 s interval, 120 s idle


def busy(i: int) -> Worker:
    return Worker(index=i, ready=True, busy=True, idle_since=None)


def idle(i: int, for_s: float) -> Worker:
    return Worker(index=i, ready=True, busy=False, idle_since=NOW - for_s)


def starting(i: int) -> Worker:
    return Worker(index=i, ready=False)


def demand(cores: int, *, age_s: float = 0.0) -> Demand:
    return Demand(cores_wanted=cores, reported_at=NOW - age_s, workers={"w": WorkerLoad()})


ANY_ROOM = Room()


def run(d: Demand | None, workers: list[Worker], *, policy: Policy = SEED, room: Room = ANY_ROOM,
        pending: int = 0, last_change_ago: float = 1e6) -> Decision:
    return decide(d, pending, workers, policy, room, NOW - last_change_ago, NOW)


def test_seed_defaults() -> None:
    assert (SEED.min_workers, SEED.max_workers, SEED.allocation_unit, SEED.interval_s, SEED.idle_timeout_s) == (
        1, 10, 1, 15, 120)
    assert (SEED.cores_per_worker, SEED.memory_per_worker_mb) == (2, 2048)


# (case, demand cores, pending cores, workers, policy, room, last change ago, members, action, capped_by)
TABLE = [
    ("below min starts at once", None, 0, [], SEED, Room(), 0, (0,), "scale_out", None),
    ("below min fills gaps first", None, 0, [busy(1)], Policy(min_workers=2), Room(), 0, (0, 1), "scale_out", None),
    ("demand fits: steady", 2, 0, [busy(0)], SEED, Room(), 1e6, (0,), "steady", None),
    ("no demand at min: steady", 0, 0, [idle(0, 999)], SEED, Room(), 1e6, (0,), "steady", None),
    ("seed: one worker per step", 8, 0, [busy(0)], SEED, Room(), 1e6, (0, 1), "scale_out", None),
    ("allocation unit 3", 8, 0, [busy(0)], Policy(allocation_unit=3), Room(), 1e6, (0, 1, 2, 3), "scale_out", None),
    ("step never overshoots need", 4, 0, [busy(0)], Policy(allocation_unit=5), Room(), 1e6, (0, 1), "scale_out", None),
    ("rate limited within interval", 8, 0, [busy(0)], SEED, Room(), 5, (0,), "hold", None),
    ("pending API demand alone scales", 0, 6, [busy(0)], Policy(allocation_unit=5), Room(), 1e6, (0, 1, 2),
     "scale_out", None),
    ("starting workers count: no overshoot", 4, 0, [busy(0), starting(1)], SEED, Room(), 1e6, (0, 1), "steady", None),
    ("capped by max_workers", 20, 0, [busy(0), busy(1)], Policy(max_workers=2), Room(), 1e6, (0, 1), "hold",
     "max_workers"),
    ("partly capped by max_workers", 20, 0, [busy(0)], Policy(max_workers=3, allocation_unit=5), Room(), 1e6,
     (0, 1, 2), "scale_out", "max_workers"),
    ("capped by quota containers", 20, 0, [busy(0)], SEED, Room(containers=0), 1e6, (0,), "hold", "quota"),
    ("capped by quota cores", 20, 0, [busy(0)], Policy(allocation_unit=5), Room(cores=4), 1e6, (0, 1, 2),
     "scale_out", "quota"),
    ("capped by quota memory", 20, 0, [busy(0)], SEED, Room(memory_mb=1000), 1e6, (0,), "hold", "quota"),
    ("idle long enough: scale in highest idle", 2, 0, [busy(0), idle(1, 200), idle(2, 300)], SEED, Room(), 1e6,
     (0, 1), "scale_in", None),
    ("idle not long enough: hold", 2, 0, [busy(0), idle(1, 60)], SEED, Room(), 1e6, (0, 1), "hold", None),
    ("busy extra worker is never removed", 0, 0, [idle(0, 999), busy(1)], SEED, Room(), 1e6, (1,), "scale_in", None),
    ("never below min_workers", 0, 0, [idle(0, 999), idle(1, 999)], Policy(min_workers=2), Room(), 1e6, (0, 1),
     "steady", None),
    ("never below what demand needs", 4, 0, [busy(0), idle(1, 999)], SEED, Room(), 1e6, (0, 1), "steady", None),
    ("scale in rate limited", 0, 0, [busy(0), idle(1, 999)], SEED, Room(), 3, (0, 1), "hold", None),
]


@pytest.mark.parametrize(("case", "cores", "pending", "workers", "policy", "room", "ago", "members", "action", "capped"),
                         TABLE, ids=[row[0] for row in TABLE])
def test_decision_table(case: str, cores: int | None, pending: int, workers: list[Worker], policy: Policy,
                        room: Room, ago: float, members: tuple[int, ...], action: str, capped: str | None) -> None:
    d = run(None if cores is None else demand(cores), workers, policy=policy, room=room, pending=pending,
            last_change_ago=ago)
    assert (d.members, d.action, d.capped_by) == (members, action, capped), d.reason
    assert d.reason


def test_stale_demand_is_not_trusted_for_scale_in() -> None:
    d = run(demand(0, age_s=120), [busy(0), idle(1, 999)])
    assert d.action == "steady" and d.members == (0, 1)


def test_stale_demand_is_ignored_for_scale_out() -> None:
    d = run(demand(40, age_s=120), [busy(0)])
    assert d.action == "steady"


def test_unknown_demand_never_removes_workers() -> None:
    d = run(None, [idle(0, 999), idle(1, 999)])
    assert d.members == (0, 1)


def test_steady_load_over_many_intervals_does_not_oscillate() -> None:
    """Replay a constant demand through the policy with the clock advancing: one climb, then flat."""
    policy = Policy(allocation_unit=1, interval_s=2, idle_timeout_s=10, cores_per_worker=1)
    members: tuple[int, ...] = (0,)
    last = 0.0
    history = []
    for step in range(60):
        now = 1000.0 + step
        workers = [Worker(index=i, ready=True, busy=True) for i in members]
        d = decide(Demand(cores_wanted=3, reported_at=now), 0, workers, policy, Room(), last, now)
        if d.changed:
            last = now
        members = d.members
        history.append(len(members))
    assert history[-1] == 3
    assert history == sorted(history), "the count went down under a steady load"
    assert len(set(history[10:])) == 1, "the count kept moving after it reached the demand"


def test_reason_names_the_cap_and_the_numbers() -> None:
    d = run(demand(20), [busy(0), busy(1)], policy=Policy(max_workers=2))
    assert "max_workers (2)" in d.reason and "20 cores" in d.reason and "10 workers" in d.reason
