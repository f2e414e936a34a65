"""The warm pool's decision (pure): which new SIG claims which pre-started skeleton, which
skeletons to start to refill the pool, which to stop.

A skeleton is a pooled Spark master with `workers` workers registered to it, started from a
built Spark layer of one version with the platform's default container shape and no tenant:

    starting --(master + workers registered)--> ready --(claim record put)--> claimed
         \\                                        |                            (a SIG's, forever)
          `----------------- stopped <-------------'  (version no longer built, pool shrunk)

A claimed skeleton never returns to the pool, so no tenant's state (secret, work dirs, the
daemons' memory) can ever reach another tenant. The loop (services/scaler/warmpool.py) acts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Spark conf keys the master and worker daemons read: a SIG that sets one needs daemons started
# with its conf, so it starts cold (a pooled skeleton's daemons run the platform's conf only).
DAEMON_PREFIXES = (
    "spark.master.", "spark.worker.", "spark.deploy.", "spark.ui.", "spark.authenticate", "spark.network.",
    "spark.rpc.", "spark.ssl.", "spark.shuffle.service.", "spark.decommission.", "spark.local.dir",
    "spark.daemon.", "spark.history.", "spark.io.encryption.", "spark.metrics.",
)


@dataclass(frozen=True)
class Shape:
    """What a skeleton is made of; a SIG claims one only when its spec asks for exactly this."""

    spark_version: str
    cpu: int = 2
    memory_mb: int = 2048
    workers: int = 1


@dataclass(frozen=True)
class Skeleton:
    id: str
    shape: Shape
    ready: bool = False
    # (tenant, sig) of its claim record, once there is one; never cleared.
    claimed_by: tuple[str, str] | None = None
    created_at: float = 0.0


@dataclass(frozen=True)
class Candidate:
    """A SIG as the pool sees it."""

    tenant: str
    sig: str
    spark_version: str
    cpu: int
    memory_mb: int
    gpu: int
    min_workers: int
    spark_conf: Mapping[str, str] = field(default_factory=dict)
    # Built for its current generation, never deployed (observed_generation 0), not deleting.
    fresh: bool = False
    # Any container of it runs already (then it is started the ordinary way).
    has_containers: bool = False


@dataclass(frozen=True)
class PoolPlan:
    claims: list[tuple[str, str, str]] = field(default_factory=list)  # (skeleton, tenant, sig)
    refill: list[Shape] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)  # unclaimed skeletons that go
    reasons: list[str] = field(default_factory=list)


def daemon_keys(conf: Mapping[str, str]) -> list[str]:
    return sorted(k for k in conf if k.startswith(DAEMON_PREFIXES))


def fits(sig: Candidate, shape: Shape) -> bool:
    return (sig.spark_version == shape.spark_version and sig.cpu == shape.cpu and sig.memory_mb == shape.memory_mb
            and sig.gpu == 0 and sig.min_workers == shape.workers and not daemon_keys(sig.spark_conf))


def pool_plan(skeletons: list[Skeleton], sigs: list[Candidate], versions: set[str], *, size: int,
              workers: int = 1, cpu: int = 2, memory_mb: int = 2048) -> PoolPlan:
    """`versions`: Spark versions with a built layer (refill targets); `size`: ready-or-starting
    unclaimed skeletons wanted per version (0: the pool is off: every unclaimed one goes)."""
    plan = PoolPlan()
    unclaimed = [s for s in skeletons if s.claimed_by is None]
    if size <= 0:
        plan.stop.extend(sorted(s.id for s in unclaimed))
        return plan
    claimed_sigs = {s.claimed_by for s in skeletons if s.claimed_by is not None}
    available = sorted((s for s in unclaimed if s.ready), key=lambda s: (s.created_at, s.id))
    taken: set[str] = set()
    for sig in sorted(sigs, key=lambda c: (c.tenant, c.sig)):
        if not sig.fresh or sig.has_containers or (sig.tenant, sig.sig) in claimed_sigs:
            continue
        skeleton = next((s for s in available if s.id not in taken and fits(sig, s.shape)), None)
        if skeleton is None:
            continue
        taken.add(skeleton.id)
        plan.claims.append((skeleton.id, sig.tenant, sig.sig))
        plan.reasons.append(f"{sig.tenant}/{sig.sig} claims skeleton {skeleton.id}")
    left = [s for s in unclaimed if s.id not in taken]
    wanted = {Shape(v, cpu, memory_mb, workers) for v in versions}
    for shape in sorted(wanted, key=lambda s: s.spark_version):
        mine = sorted((s for s in left if s.shape == shape), key=lambda s: (s.created_at, s.id))
        extra = mine[size:]
        plan.stop.extend(s.id for s in extra)
        kept = mine[:size]
        # One skeleton of a version starts at a time (a refill never swamps a busy machine).
        if len(kept) < size and all(s.ready for s in kept):
            plan.refill.append(shape)
            plan.reasons.append(f"refill {shape.spark_version}: {len(kept)} of {size} pooled")
    for s in left:
        if s.shape not in wanted:
            plan.stop.append(s.id)
            plan.reasons.append(f"skeleton {s.id}: no built layer of its shape is wanted; stopping")
    return plan
