"""The fault-injection suite, CI size: a seeded burst over two tenants (SIG creates, updates,
deletes; applications that succeed, fail or are killed) while `kill -9` hits a random service,
a master or worker container, Redis and etcd; then the platform must converge by itself to what
the workload implies. `python bench/faults.py` runs a larger one and prints its figures.

Replay a failure with SPAAS_CHAOS_SEED=<seed printed in the failure>."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from spaas.stack import Stack
from tests.chaos import Chaos, Plan, supervised_stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A stack of its own, started as an operator does (supervised): this test kills its parts.
    with supervised_stack(tmp_path_factory.mktemp("chaos") / "state") as stack:
        yield stack


def test_platform_converges_after_random_kills(chaos_stack: Stack) -> None:
    seed = int(os.environ.get("SPAAS_CHAOS_SEED") or time.time_ns() % 1_000_000)
    chaos = Chaos(chaos_stack, Plan(seed=seed, apps=12, sig_ops=4, faults=6))
    try:
        report = chaos.run()
    except Exception as exc:
        raise AssertionError(f"chaos run failed (replay with SPAAS_CHAOS_SEED={seed}): {exc}") from exc
    print(report.summary())
    if report.problems:
        print(chaos.diagnose())
    assert report.problems == [], f"seed {seed}: {report.summary()}\n" + "\n".join(report.problems)
