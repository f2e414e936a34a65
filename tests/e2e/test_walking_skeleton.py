"""End to end on the embedded stack: a tenant's SIG is built, deployed with a real Spark
master and worker, runs batch applications, survives failures and is deleted cleanly."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest
import requests

from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.runtimes.process import ProcessRuntime
from spaas.stack import Stack

from tests.e2e.conftest import JOB, Api

pytestmark = pytest.mark.e2e

SPARK3 = "3.5.9"
SPARK4 = "4.1.4"


def master_workers(api: Api, ui_url: str) -> list[dict]:
    """ALIVE workers on the master's UI, reached as a user does: through the proxy, with a token."""
    resp = api.raw.get(ui_url.rstrip("/") + "/json/", timeout=5)
    assert resp.status_code == 200, f"{ui_url}: {resp.status_code} {resp.text[:200]}"
    return [w for w in resp.json()["workers"] if w["state"] == "ALIVE"]


def registry_hosts(platform: Stack, tenant: str, sig: str) -> list[dict]:
    resp = requests.get(f"http://127.0.0.1:{platform.registry_port}/hosts/{tenant}/{sig}", timeout=5)
    return resp.json()["hosts"] if resp.ok else []


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_sig_becomes_ready_and_finishes_a_batch_application(api: Api, platform: Stack, tenant: str) -> None:
    api.create_sig(tenant, {"name": "etl", "spark_version": SPARK3})
    sig = api.wait_phase(tenant, "etl", "READY")
    status = sig["status"]
    assert status["workers"] == {"desired": 1, "ready": 1}
    assert status["master_url"].startswith("spark://127.0.0.1:")
    assert len(master_workers(api, status["ui_url"])) == 1
    hosts = registry_hosts(platform, tenant, "etl")
    assert sorted(h["role"] for h in hosts) == ["master", "worker"]

    path = api.upload(tenant, "etl", "job.py", JOB)
    app_id = api.submit(tenant, "etl", file=path, args=["a", "b"], name="sum")
    app = api.wait_app(tenant, "etl", app_id)
    assert app["state"] == "FINISHED", app
    assert app["exit_code"] == 0
    assert app["spark_app_id"].startswith("app-")
    log = api.log(tenant, "etl", app_id)
    assert any(f"RESULT total=1001000 spark.version={SPARK3} args=['a', 'b']" in line for line in log), log[-20:]

    # A conf-only change: a new generation, the same build (no pip), containers restarted with it.
    new_spec = dict(sig["spec"], spark_conf={"spark.sql.shuffle.partitions": "7"})
    changed = api.update_sig(tenant, "etl", new_spec)
    assert changed["generation"] == 2
    updated = api.wait("generation 2 READY", lambda: (s := api.sig(tenant, "etl"))["status"]["phase"] == "READY"
                       and s["status"]["observed_generation"] == 2 and s, 300, 0.5)
    assert updated["status"]["build_key"] == status["build_key"]
    assert updated["status"]["build"]["cache_hit"] is True
    assert updated["status"]["master_url"] != status["master_url"], "the master was not restarted"
    conf_job = api.upload(tenant, "etl", "conf.py", JOB.replace(
        'print(f"RESULT', 'print("PARTITIONS", spark.conf.get("spark.sql.shuffle.partitions"))\nprint(f"RESULT'))
    app = api.wait_app(tenant, "etl", api.submit(tenant, "etl", file=conf_job))
    assert app["state"] == "FINISHED"
    assert "PARTITIONS 7" in api.log(tenant, "etl", app["id"])
    assert api.ok("PUT", f"/tenants/{tenant}/sigs/etl", 200, json=new_spec)["generation"] == 2


def test_two_spark_versions_run_side_by_side(api: Api, tenant: str) -> None:
    api.create_sig(tenant, {"name": "old", "spark_version": SPARK3})
    api.create_sig(tenant, {"name": "new", "spark_version": SPARK4})
    for sig in ("old", "new"):
        api.wait_phase(tenant, sig, "READY")
    apps = {sig: api.submit(tenant, sig, file=api.upload(tenant, sig, "job.py", JOB)) for sig in ("old", "new")}
    for sig, version in (("old", SPARK3), ("new", SPARK4)):
        app = api.wait_app(tenant, sig, apps[sig])
        assert app["state"] == "FINISHED", app
        assert any(f"spark.version={version}" in line for line in api.log(tenant, sig, apps[sig]))
    for sig in ("old", "new"):
        api.delete_sig(tenant, sig)
    for sig in ("old", "new"):
        api.wait_gone(tenant, sig)


def test_identical_spec_reuses_the_build(api: Api, tenant: str) -> None:
    spec = {"spark_version": SPARK3, "python_packages": ["six==1.16.0"]}
    api.create_sig(tenant, {"name": "first", **spec})
    first = api.wait(
        "first build", lambda: (s := api.sig(tenant, "first"))["status"]["build"].get("state") == "SUCCEEDED" and s)
    api.create_sig(tenant, {"name": "second", **spec})
    second = api.wait(
        "second build", lambda: (s := api.sig(tenant, "second"))["status"]["build"].get("state") == "SUCCEEDED" and s)
    assert second["status"]["build_key"] == first["status"]["build_key"]
    assert second["status"]["build"]["cache_hit"] is True
    log = api.build_log(tenant, "second")["log"]
    assert any("cache hit" in line for line in log), log
    assert not any("pip" in line for line in log), "a cache hit must not run pip"
    for sig in ("first", "second"):
        api.delete_sig(tenant, sig)
    for sig in ("first", "second"):
        api.wait_gone(tenant, sig)


def test_failed_build_marks_the_sig_failed_with_pip_error(api: Api, tenant: str) -> None:
    api.create_sig(tenant, {"name": "broken", "spark_version": SPARK3,
                            "python_packages": ["spaas-no-such-package-xyz==0.0.1"]})
    sig = api.wait_phase(tenant, "broken", "FAILED")
    assert sig["status"]["reason"] == "BuildFailed"
    assert "spaas-no-such-package-xyz" in sig["status"]["message"]
    api.delete_sig(tenant, "broken")
    api.wait_gone(tenant, "broken")


class TestApplications:
    """Failing and killed applications on one SIG."""

    def test_failing_app_and_killed_app(self, api: Api, tenant: str) -> None:
        api.create_sig(tenant, {"name": "apps", "spark_version": SPARK3})
        api.wait_phase(tenant, "apps", "READY")
        bad = api.upload(tenant, "apps", "bad.py", "def f():\n    raise ValueError('boom from the job')\nf()\n")
        app_id = api.submit(tenant, "apps", file=bad)
        app = api.wait_app(tenant, "apps", app_id)
        assert app["state"] == "FAILED" and app["exit_code"] == 1, app
        log = api.log(tenant, "apps", app_id)
        assert any("Traceback" in line for line in log) and any("ValueError: boom from the job" in ln for ln in log)

        slow = api.upload(tenant, "apps", "slow.py", JOB.replace("spark.stop()", "import time; time.sleep(600)"))
        app_id = api.submit(tenant, "apps", file=slow)
        api.wait_app(tenant, "apps", app_id, {"RUNNING"})
        api.kill_app(tenant, "apps", app_id)
        app = api.wait_app(tenant, "apps", app_id, timeout_s=60)
        assert app["state"] == "KILLED", app
        api.delete_sig(tenant, "apps")
        api.wait_gone(tenant, "apps")


def test_killed_worker_is_replaced_and_sig_delete_leaves_nothing(api: Api, platform: Stack, tenant: str) -> None:
    for sig in ("keep", "drop"):
        api.create_sig(tenant, {"name": sig, "spark_version": SPARK3})
    keep = api.wait_phase(tenant, "keep", "READY")
    drop = api.wait_phase(tenant, "drop", "READY")
    runtime = ProcessRuntime(platform.state_dir)
    worker = next(c for c in runtime.list() if c.tenant == tenant and c.sig == "drop" and c.role == "worker")
    leader = next(pid for pid in runtime.pids(tenant, "drop")
                  if f"SPAAS_CONTAINER={worker.name}".encode() in open(f"/proc/{pid}/environ", "rb").read()
                  and os.getpgid(pid) == pid)

    killed_at = time.monotonic()
    os.killpg(leader, signal.SIGKILL)
    hosts_before = {h["host"]: h["registered_at"] for h in registry_hosts(platform, tenant, "drop")}

    def replaced() -> bool:
        hosts = registry_hosts(platform, tenant, "drop")
        fresh = [h for h in hosts if h["host"] == worker.name and h["ready"]
                 and h["registered_at"] > hosts_before.get(worker.name, 0)]
        return bool(fresh) and len(master_workers(api, drop["status"]["ui_url"])) >= 1

    api.wait("the worker to be back", replaced, timeout_s=30, interval_s=0.5)
    assert time.monotonic() - killed_at < 30
    assert len([c for c in runtime.list() if c.tenant == tenant and c.sig == "drop"]) == 2

    ports = [h["ports"][k] for h in registry_hosts(platform, tenant, "drop") for k in ("spark", "ui")]
    api.delete_sig(tenant, "drop")
    api.wait_gone(tenant, "drop")
    assert runtime.pids(tenant, "drop") == []
    store = EtcdStore(platform.etcd_url)
    assert store.list(Keys().hosts(tenant, "drop")) == []
    assert store.list(Keys().apps(tenant, "drop")) == []
    assert all(port_free(p) for p in ports), ports
    # The tenant's other SIG did not notice.
    assert api.sig(tenant, "keep")["status"]["phase"] == "READY"
    assert api.sig(tenant, "keep")["status"]["master_url"] == keep["status"]["master_url"]
    api.delete_sig(tenant, "keep")
    api.wait_gone(tenant, "keep")


def test_master_and_worker_killed_together_are_back_together(api: Api, platform: Stack, tenant: str) -> None:
    """kill -9 of a SIG's master and worker containers at once: the worker's replacement may find
    the dead master's record (it outlives the master by its lease) and start against it; it must
    follow the new master as soon as that registers (it once waited 120 s for the dead one)."""
    api.create_sig(tenant, {"name": "pair", "spark_version": SPARK3})
    before = api.wait_phase(tenant, "pair", "READY")
    runtime = ProcessRuntime(platform.state_dir)
    leaders = [pid for pid in runtime.pids(tenant, "pair")
               if b"SPAAS_LEADER=1" in open(f"/proc/{pid}/environ", "rb").read() and os.getpgid(pid) == pid]
    assert len(leaders) == 2
    for pid in leaders:
        os.killpg(pid, signal.SIGKILL)

    def back() -> bool:
        status = api.sig(tenant, "pair")["status"]
        if status["phase"] != "READY" or status["master_url"] in (None, before["status"]["master_url"]):
            return False
        try:
            return len(master_workers(api, status["ui_url"])) >= 1
        except (AssertionError, requests.RequestException, ValueError):
            return False  # the proxy's route to the new master may be a pass behind

    api.wait("the master and its worker to be back", back, timeout_s=75, interval_s=0.5)
    api.delete_sig(tenant, "pair")
    api.wait_gone(tenant, "pair")


def test_control_plane_restart_while_building(api: Api, platform: Stack, tenant: str) -> None:
    # A package not in the shared layer makes the build take a few seconds of pip.
    api.create_sig(tenant, {"name": "resilient", "spark_version": SPARK3, "python_packages": ["toolz==0.12.1"]})
    api.wait("the build to start",
             lambda: api.sig(tenant, "resilient")["status"]["phase"] in ("BUILDING", "DEPLOYING", "READY"), 30, 0.2)
    for name in ("api", "builder", "scaler"):
        platform.stop_service(name, sig=signal.SIGKILL)
    time.sleep(2)
    for name in ("builder", "scaler", "api"):
        platform.start_service(name)
    sig = api.wait_phase(tenant, "resilient", "READY")
    assert sig["status"]["workers"]["ready"] == 1
    runtime = ProcessRuntime(platform.state_dir)
    names = [c.name for c in runtime.list() if c.tenant == tenant and c.sig == "resilient"]
    assert sorted(names) == [f"{tenant}-resilient-master-0", f"{tenant}-resilient-worker-0"]
    # One Spark master and one worker JVM, not two of each.
    cmdlines = [open(f"/proc/{pid}/cmdline", "rb").read() for pid in runtime.pids(tenant, "resilient")]
    assert sum(b"deploy.master.Master" in c for c in cmdlines) == 1
    assert sum(b"deploy.worker.Worker" in c for c in cmdlines) == 1
    api.delete_sig(tenant, "resilient")
    api.wait_gone(tenant, "resilient")
