"""Demand-driven scaling on the embedded stack with real Spark: grow for a demanding
application, stop at caps with a reason, never remove a busy worker, no flapping."""

from __future__ import annotations

import time

import pytest
import requests

from spaas.runtimes.process import ProcessRuntime
from spaas.stack import Stack

from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e

SPARK = "3.5.9"
# One core per worker, so an application that wants 3 cores needs 3 workers.
SMALL = {"cpu": 1, "memory_mb": 1024, "max_cpu": 1, "max_memory_mb": 1024}

WIDE_JOB = """
import time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
sc = spark.sparkContext
# Executors registered with the scheduler (the block managers may lag behind).
executors = sc._jsc.sc().getExecutorIds().size()
total = sc.parallelize(range(300), 3).map(lambda x: x + 1).sum()
time.sleep(float(__import__("sys").argv[1]) if len(__import__("sys").argv) > 1 else 0)
print(f"RESULT executors={executors} total={total}")
spark.stop()
"""

# Two quick tasks and one long one; dynamic allocation releases the idle executors.
HOLD_JOB = """
import time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
sc = spark.sparkContext
def work(i):
    time.sleep(70 if i == 0 else 1)
    return i
# One write (print's separate arguments are separate writes the JVM's log lines can come between).
print(f"RESULT {sorted(sc.parallelize(range(3), 3).map(work).collect())}")
spark.stop()
"""

WAIT_FOR_ALL = {"spark.scheduler.minRegisteredResourcesRatio": "1.0",
                "spark.scheduler.maxRegisteredResourcesWaitingTime": "120s"}


def decisions(api: Api, tenant: str, sig: str) -> list[dict]:
    return list(reversed(api.ok("GET", f"/tenants/{tenant}/sigs/{sig}/scaling?limit=200")["decisions"]))


def workers_of(platform: Stack, tenant: str, sig: str) -> dict[str, float]:
    """Running worker containers and when each started."""
    return {c.name: c.started_at for c in ProcessRuntime(platform.state_dir).list()
            if c.tenant == tenant and c.sig == sig and c.role == "worker"}


def make_sig(api: Api, tenant: str, name: str, **scaling: int) -> None:
    policy = {"min_workers": 1, "max_workers": 3, "allocation_unit": 2, "interval_s": 2, "idle_timeout_s": 8, **scaling}
    api.ok("POST", f"/tenants/{tenant}/sigs", 202,
           json={"name": name, "spark_version": SPARK, "resources": SMALL, "scaling": policy})
    api.wait_phase(tenant, name, "READY")


def test_grows_for_a_demanding_application_and_shrinks_back_when_idle(api: Api, platform: Stack, tenant: str) -> None:
    make_sig(api, tenant, "grow")
    job = api.upload(tenant, "grow", "wide.py", WIDE_JOB)
    app_id = api.submit(tenant, "grow", file=job, numExecutors=3, executorCores=1, executorMemory="512m",
                        conf=WAIT_FOR_ALL)
    api.wait("3 ready workers", lambda: api.sig(tenant, "grow")["status"]["workers"]["ready"] == 3, 120, 0.5)
    app = api.wait_app(tenant, "grow", app_id, timeout_s=180)
    assert app["state"] == "FINISHED", app
    results = [line for line in api.log(tenant, "grow", app_id) if "RESULT" in line]
    assert results == ["RESULT executors=3 total=45150"], results

    api.wait("back to min_workers", lambda: len(workers_of(platform, tenant, "grow")) == 1, 60, 1)
    status = api.sig(tenant, "grow")["status"]
    assert status["workers"]["desired"] == 1
    log = decisions(api, tenant, "grow")
    assert [d["action"] for d in log if d["action"] != "hold"][:1] == ["scale_out"]
    assert max(d["to"] for d in log) == 3
    assert log[-1]["action"] == "scale_in" and log[-1]["to"] == 1
    assert all(d["reason"] for d in log)
    metrics = requests.get(f"http://127.0.0.1:{platform.health_ports['scaler']}/metrics", timeout=5).text
    assert f'spaas_sig_workers_desired{{sig="grow",tenant="{tenant}"}} 1.0' in metrics
    assert f'spaas_sig_demand_cores{{sig="grow",tenant="{tenant}"}}' in metrics
    api.ok("DELETE", f"/tenants/{tenant}/sigs/grow", 202)
    api.wait_gone(tenant, "grow")


def test_caps_stop_growth_and_say_why(api: Api, tenant: str) -> None:
    api.ok("POST", "/tenants", 201, json={"name": f"{tenant}q", "quota": {"max_containers": 3, "cores": 40,
                                                                          "memory_mb": 61440, "gpus": 0}})
    quota_tenant = f"{tenant}q"
    make_sig(api, quota_tenant, "capq", max_workers=10)
    make_sig(api, tenant, "capm", max_workers=2)
    for t, sig in ((quota_tenant, "capq"), (tenant, "capm")):
        job = api.upload(t, sig, "wide.py", WIDE_JOB)
        api.submit(t, sig, file=job, numExecutors=4, executorCores=1, executorMemory="512m", args=["20"])
    for t, sig, reason, capped in ((quota_tenant, "capq", "QuotaExceeded", "quota"),
                                   (tenant, "capm", "MaxWorkersReached", "max_workers")):
        status = api.wait(f"{sig} capped", lambda t=t, sig=sig, reason=reason: (s := api.sig(t, sig)["status"])["reason"] == reason and s,
                            90, 0.5)
        assert status["workers"]["desired"] == 2
        assert "work is waiting" in status["message"]
        log = decisions(api, t, sig)
        assert any(d["capped_by"] == capped and d["to"] == 2 for d in log), log
    # A steady, capped load over several intervals: the count holds (no oscillation).
    samples = []
    for _ in range(8):
        samples += [api.sig(t, s)["status"]["workers"]["desired"] for t, s in ((quota_tenant, "capq"), (tenant, "capm"))]
        time.sleep(1)
    assert set(samples) == {2}, samples
    for t, sig in ((quota_tenant, "capq"), (tenant, "capm")):
        api.ok("DELETE", f"/tenants/{t}/sigs/{sig}", 202)
    for t, sig in ((quota_tenant, "capq"), (tenant, "capm")):
        api.wait_gone(t, sig)


def test_busy_worker_is_never_removed_and_steady_load_does_not_flap(api: Api, platform: Stack, tenant: str) -> None:
    make_sig(api, tenant, "hold", idle_timeout_s=5)
    job = api.upload(tenant, "hold", "hold.py", HOLD_JOB)
    conf = {"spark.dynamicAllocation.enabled": "true", "spark.dynamicAllocation.shuffleTracking.enabled": "true",
            "spark.dynamicAllocation.executorIdleTimeout": "2s", "spark.dynamicAllocation.minExecutors": "0",
            "spark.dynamicAllocation.initialExecutors": "3", "spark.executor.cores": "1",
            "spark.executor.memory": "512m"}
    app_id = api.submit(tenant, "hold", file=job, conf=conf)
    api.wait("3 workers", lambda: len(workers_of(platform, tenant, "hold")) == 3, 120, 0.5)
    api.wait_app(tenant, "hold", app_id, {"RUNNING"}, 60)
    started = workers_of(platform, tenant, "hold")
    # The two quick executors go idle and are released; their workers go after idle_timeout_s.
    api.wait("scale in to the busy worker", lambda: len(workers_of(platform, tenant, "hold")) == 1, 60, 0.5)
    survivor, = workers_of(platform, tenant, "hold").items()
    assert started[survivor[0]] == survivor[1], "the busy worker was restarted"
    app = api.wait_app(tenant, "hold", app_id, timeout_s=120)
    assert app["state"] == "FINISHED", app
    assert any("RESULT [0, 1, 2]" in line for line in api.log(tenant, "hold", app_id))
    log = decisions(api, tenant, "hold")
    changes = [(d["action"], d["from"], d["to"]) for d in log if d["action"] in ("scale_out", "scale_in")]
    # Up once (1 -> 3, in allocation units), down twice, never up again: no flapping.
    ups = [c for c in changes if c[0] == "scale_out"]
    downs = [c for c in changes if c[0] == "scale_in"]
    assert ups and max(c[2] for c in ups) == 3
    assert len(downs) == 2 and changes.index(downs[0]) > changes.index(ups[-1]), changes
    api.ok("DELETE", f"/tenants/{tenant}/sigs/hold", 202)
    api.wait_gone(tenant, "hold")
