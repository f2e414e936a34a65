"""The warm pool's pure decision: refill, claim, spec mismatch, never a second tenant, cap."""

from __future__ import annotations

import pytest

from services.scaler.pool import Candidate, Shape, Skeleton, daemon_keys, pool_plan

V = "3.5.9"
SHAPE = Shape(V)


def sk(id: str, *, ready: bool = True, claimed: tuple[str, str] | None = None, at: float = 0.0,
       shape: Shape = SHAPE) -> Skeleton:
    return Skeleton(id=id, shape=shape, ready=ready, claimed_by=claimed, created_at=at)


def sig(tenant: str = "a", name: str = "s", **kw: object) -> Candidate:
    base: dict[str, object] = dict(spark_version=V, cpu=2, memory_mb=2048, gpu=0, min_workers=1, spark_conf={},
                                   fresh=True, has_containers=False)
    base.update(kw)
    return Candidate(tenant, name, **base)  # type: ignore[arg-type]


@pytest.mark.parametrize("skeletons, size, refill, stop", [
    ([], 1, [SHAPE], []),                                   # empty pool: start one
    ([sk("p1", ready=False)], 2, [], []),                   # one starting: wait for it (one at a time)
    ([sk("p1")], 2, [SHAPE], []),                           # one ready of two: start the next
    ([sk("p1")], 1, [], []),                                # full
    ([sk("p1", at=1), sk("p2", at=2)], 1, [], ["p2"]),      # cap: the pool shrank; the newest goes
    ([sk("p1"), sk("p2", claimed=("a", "s"))], 1, [], []),  # a claimed one is the SIG's: neither counted nor stopped
    ([sk("p1"), sk("p2", ready=False)], 0, [], ["p1", "p2"]),  # size 0: the pool is off
    ([sk("old", shape=Shape("3.4.4"))], 1, [SHAPE], ["old"]),  # no built layer of 3.4.4 any more
])
def test_refill_and_cap(skeletons: list[Skeleton], size: int, refill: list[Shape], stop: list[str]) -> None:
    plan = pool_plan(skeletons, [], {V}, size=size)
    assert plan.refill == refill
    assert sorted(plan.stop) == stop
    assert plan.claims == []


def test_a_fresh_matching_sig_claims_a_ready_skeleton_and_the_pool_refills() -> None:
    plan = pool_plan([sk("p1")], [sig()], {V}, size=1)
    assert plan.claims == [("p1", "a", "s")]
    assert plan.refill == [SHAPE]
    assert plan.stop == []


def test_a_starting_skeleton_is_not_claimed() -> None:
    plan = pool_plan([sk("p1", ready=False)], [sig()], {V}, size=1)
    assert plan.claims == []


@pytest.mark.parametrize("change", [
    dict(spark_version="3.4.4"), dict(cpu=4), dict(memory_mb=4096), dict(gpu=1), dict(min_workers=2),
    dict(min_workers=0), dict(spark_conf={"spark.worker.cleanup.enabled": "true"}),
    dict(spark_conf={"spark.ui.retainedJobs": "5"}), dict(spark_conf={"spark.shuffle.service.enabled": "true"}),
    dict(fresh=False), dict(has_containers=True),
])
def test_spec_mismatch_starts_cold(change: dict[str, object]) -> None:
    plan = pool_plan([sk("p1")], [sig(**change)], {V}, size=1)
    assert plan.claims == []


def test_driver_level_conf_may_claim() -> None:
    conf = {"spark.sql.shuffle.partitions": "8", "spark.executor.memory": "1g"}
    assert daemon_keys(conf) == []
    assert pool_plan([sk("p1")], [sig(spark_conf=conf)], {V}, size=1).claims == [("p1", "a", "s")]


def test_never_a_second_tenant() -> None:
    # p1 is a's (claim record); b must not get it, even while a's adoption is in flight.
    plan = pool_plan([sk("p1", claimed=("a", "s"))], [sig("b", "s")], {V}, size=1)
    assert plan.claims == []
    # Two SIGs, one skeleton: one claim only; the other starts cold (or waits for the refill).
    plan = pool_plan([sk("p1")], [sig("a", "s"), sig("b", "s")], {V}, size=1)
    assert plan.claims == [("p1", "a", "s")]


def test_a_sig_with_a_claim_claims_no_second_skeleton() -> None:
    plan = pool_plan([sk("p1", claimed=("a", "s")), sk("p2")], [sig("a", "s")], {V}, size=1)
    assert plan.claims == []


def test_oldest_ready_skeleton_first() -> None:
    plan = pool_plan([sk("p2", at=2), sk("p1", at=1)], [sig()], {V}, size=2)
    assert plan.claims == [("p1", "a", "s")]
