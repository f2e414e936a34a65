"""Demand-driven scaling on the Docker runtime (the compose stack): worker containers grow for a
demanding application and the idle ones are decommissioned and removed afterwards."""

from __future__ import annotations

import pytest

from tests.docker.conftest import Compose
from tests.e2e.test_scaling import WAIT_FOR_ALL, WIDE_JOB

pytestmark = pytest.mark.docker


def worker_containers(compose: Compose, tenant: str, sig: str) -> list[str]:
    return sorted(c["Names"] for c in compose.containers(tenant=tenant, sig=sig, role="worker")
                  if c["State"] == "running")


def test_workers_grow_with_demand_and_shrink_when_idle_on_docker(compose: Compose) -> None:
    api = compose.api
    compose.ready_sig(
        "gamma", "elastic", resources={"cpu": 1, "memory_mb": 1024, "max_cpu": 1, "max_memory_mb": 2048},
        scaling={"min_workers": 1, "max_workers": 3, "allocation_unit": 2, "interval_s": 2, "idle_timeout_s": 8})
    assert len(worker_containers(compose, "gamma", "elastic")) == 1

    job = api.upload("gamma", "elastic", "wide.py", WIDE_JOB)
    app_id = api.submit("gamma", "elastic", file=job, numExecutors=3, executorCores=1, executorMemory="512m",
                        conf=WAIT_FOR_ALL)
    api.wait("3 worker containers", lambda: len(worker_containers(compose, "gamma", "elastic")) == 3, 120, 1)
    app = api.wait_app("gamma", "elastic", app_id, timeout_s=240)
    assert app["state"] == "FINISHED", app
    results = [line for line in api.log("gamma", "elastic", app_id) if "RESULT" in line]
    assert results == ["RESULT executors=3 total=45150"], results

    api.wait("back to one worker", lambda: len(worker_containers(compose, "gamma", "elastic")) == 1, 90, 1)
    decisions = api.ok("GET", "/tenants/gamma/sigs/elastic/scaling")["decisions"]
    actions = [d["action"] for d in reversed(decisions) if d["action"] in ("scale_out", "scale_in")]
    assert actions[0] == "scale_out" and actions[-1] == "scale_in", actions
    api.ok("DELETE", "/tenants/gamma/sigs/elastic", 202)
    api.wait_gone("gamma", "elastic", timeout_s=180)
    assert worker_containers(compose, "gamma", "elastic") == []
