"""End to end on the embedded stack: tenant A's job writes junk into its own SIG's etcd prefixes
(hosts and apps, as its SIG's etcd user may), while tenant B's worker is killed. B's worker is
replaced and B is READY again promptly (not READY meanwhile), A's bad application shows its
reason through the API, and A's SIG still runs good applications."""

from __future__ import annotations

import base64
import os
import signal
import time

import pytest

from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.runtimes.process import ProcessRuntime
from spaas.stack import Stack

from tests.e2e.conftest import JOB, Api

pytestmark = pytest.mark.e2e

SPARK3 = "3.5.9"
RESYNC_S = 1.0  # the stack's SPAAS_RESYNC_S (tests/e2e/conftest.py)


def put_raw(store: EtcdStore, key: str, raw: bytes, lease: int = 0) -> None:
    body = {"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(raw).decode()}
    store.call("/v3/kv/put", dict(body, lease=str(lease)) if lease else body)


def test_junk_in_one_tenants_sig_does_not_stop_another_from_healing(api: Api, platform: Stack, tenant: str) -> None:
    ta, tb = tenant, tenant + "b"
    api.ok("POST", "/tenants", 201, json={"name": tb})
    api.ok("POST", f"/tenants/{ta}/sigs", 202, json={"name": "a", "spark_version": SPARK3})
    api.ok("POST", f"/tenants/{tb}/sigs", 202, json={"name": "b", "spark_version": SPARK3})
    api.wait_phase(ta, "a", "READY")
    api.wait_phase(tb, "b", "READY")

    # What A's job could write with its SIG's etcd user: anything under its hosts and apps prefixes.
    store, keys = EtcdStore(platform.etcd_url), Keys()
    # (leased, as the agent's own are: the registry sweep removes unleased host entries)
    lease = store.grant_lease(120)
    put_raw(store, keys.host(ta, "a", f"{ta}-a-worker-9"), b"not json", lease)
    store.put(keys.host(ta, "a", f"{ta}-a-worker-8"), {"role": "worker", "ready": True}, lease=lease)  # no ip
    store.put(keys.app_spec(ta, "a", "bad1"), {"request": {"file": "files/job.py",
                                                           "conf": {"spark.executor.cores": "x"}}})
    store.put(keys.app_spec(ta, "a", "bad2"), {"request": {"file": "files/job.py", "numExecutors": 10**12}})
    put_raw(store, keys.apps(ta, "a") + "x", b"junk")
    put_raw(store, keys.app(ta, "a", "junk") + "state", b"junk")

    runtime = ProcessRuntime(platform.state_dir)
    worker = next(c for c in runtime.list() if c.tenant == tb and c.sig == "b" and c.role == "worker")
    leader = next(pid for pid in runtime.pids(tb, "b")
                  if f"SPAAS_CONTAINER={worker.name}".encode() in open(f"/proc/{pid}/environ", "rb").read()
                  and os.getpgid(pid) == pid)
    killed_at = time.monotonic()
    os.killpg(leader, signal.SIGKILL)

    seen: list[tuple[float, str, str | None]] = []

    def back() -> bool:
        status = api.sig(tb, "b")["status"]
        seen.append((round(time.monotonic() - killed_at, 1), status["phase"], status["reason"]))
        return status["phase"] == "READY" and any(p != "READY" for _, p, _ in seen)

    api.wait("B's worker to be replaced and B READY again", back, timeout_s=60, interval_s=0.2)
    not_ready = next(t for t, p, _ in seen if p != "READY")
    ready_again = seen[-1][0]
    print(f"B not READY {not_ready}s after the kill, READY again after {ready_again}s; phases seen: "
          f"{sorted({(p, r) for _, p, r in seen})}")
    assert not_ready <= 3 * RESYNC_S + 1, seen
    assert ("DEPLOYING", "WorkerLost") in {(p, r) for _, p, r in seen}, seen
    assert ready_again < 30, seen
    new = next(c for c in runtime.list() if c.name == worker.name)
    assert new.running and api.sig(tb, "b")["status"]["workers"] == {"desired": 1, "ready": 1}

    # A's bad records show their reason; its SIG still runs a good application.
    apps = {a["id"]: a for a in api.ok("GET", f"/tenants/{ta}/sigs/a/applications")["applications"]}
    for app_id, needle in (("bad1", "spark.executor.cores"), ("bad2", "numExecutors")):
        assert (apps[app_id]["state"], apps[app_id]["reason"]) == ("FAILED", "InvalidRecord"), apps[app_id]
        assert needle in apps[app_id]["message"]
    a_status = api.sig(ta, "a")["status"]
    assert (a_status["phase"], a_status["reason"]) == ("READY", "InvalidRecord"), a_status
    for junk in (f"{ta}-a-worker-9", f"{ta}-a-worker-8", f"/apps/{ta}/a/x:"):
        assert any(junk in r for r in a_status["invalid_records"]), (junk, a_status)
    path = api.upload(ta, "a", "job.py", JOB)
    done = api.wait_app(ta, "a", api.submit(ta, "a", file=path))
    assert done["state"] == "FINISHED", done

    for t, s in ((ta, "a"), (tb, "b")):
        api.ok("DELETE", f"/tenants/{t}/sigs/{s}", 202)
    for t, s in ((ta, "a"), (tb, "b")):
        api.wait_gone(t, s)
