"""The scaler's liveness (/healthz fails when reconcile passes stall) and its orphan sweep
(whatever the runtime holds for SIGs with no spec in etcd goes). Real etcd and Redis; the
runtime records what it is asked (the runtimes have their own tests)."""

from __future__ import annotations

import json
import threading
import wsgiref.util
from pathlib import Path
from typing import Any

from spaas.bus import RedisBus
from spaas.demand import RedisDemandStore
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.observability import health_app
from spaas.runtimes.base import Address, Container, ContainerSpec
from spaas.storage import SigStorage

from services.scaler.loop import PassClock, Scaler, run


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def call(app: Any, path: str) -> tuple[str, dict[str, Any]]:
    environ: dict[str, Any] = {"PATH_INFO": path}
    wsgiref.util.setup_testing_defaults(environ)
    environ["PATH_INFO"] = path
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h: status.append(s)))
    return status[0], json.loads(body) if path == "/healthz" else {}


def test_health_fails_with_a_reason_when_no_pass_completed_for_three_resync_periods() -> None:
    clock = Clock()
    passes = PassClock(2.0, slack_s=4.0, clock=clock)
    app = health_app(passes.health)
    assert call(app, "/healthz")[0].startswith("200")
    clock.now += 9.0  # 3 x 2s + 4s slack = 10s
    assert call(app, "/healthz")[0].startswith("200")
    clock.now += 2.0
    status, body = call(app, "/healthz")
    assert status.startswith("503") and body["status"] == "unhealthy"
    assert "without a completed pass" in body["reason"] and "limit 10s" in body["reason"]
    passes.completed()
    assert call(app, "/healthz")[0].startswith("200") and passes.age_s() == 0.0
    clock.now += 30.0
    status, body = call(app, "/healthz")
    assert status.startswith("503") and body["reason"].startswith("30s since the last completed reconcile pass")


def test_the_loop_marks_completed_passes_and_exports_their_age(store: EtcdStore, keys: Keys, redis_url: str,
                                                               tmp_path: Path) -> None:
    runtime = RecordingRuntime()
    bus = RedisBus(redis_url)
    scaler = Scaler(store, bus, runtime, SigStorage(tmp_path), keys=keys,
                    demand=RedisDemandStore(redis_url, prefix=f"test{keys.prefix}:"))
    clock = Clock()
    passes = PassClock(0.1, clock=clock)
    clock.now += 5
    assert not passes.health()[0]
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(scaler, bus), kwargs={"stop": stop, "resync_s": 0.1, "passes": passes})
    thread.start()
    try:
        for _ in range(100):
            if passes.health()[0]:
                break
            stop.wait(0.05)
        assert passes.health() == (True, "")
    finally:
        stop.set()
        thread.join(10)
    from prometheus_client import generate_latest
    assert b"spaas_scaler_last_pass_age_seconds" in generate_latest()


class RecordingRuntime:
    def __init__(self, containers: list[Container] | None = None, networks: set[tuple[str, str]] | None = None) -> None:
        self.containers = containers or []
        self.networks = networks or set()
        self.stopped: list[str] = []
        self.cleaned: list[tuple[str, str]] = []

    def start(self, spec: ContainerSpec) -> None:
        pass

    def stop(self, name: str, *, grace_s: float = 10.0) -> None:
        self.stopped.append(name)

    def list(self) -> list[Container]:
        return list(self.containers)

    def sigs(self) -> set[tuple[str, str]]:
        return {(c.tenant, c.sig) for c in self.containers} | self.networks

    def addresses(self) -> dict[str, Address]:
        return {}

    def cleanup_sig(self, tenant: str, sig: str) -> None:
        self.cleaned.append((tenant, sig))


def container(tenant: str, sig: str, role: str = "master") -> Container:
    return Container(name=f"{tenant}-{sig}-{role}-0", tenant=tenant, sig=sig, role=role, index=0, config_hash="h",
                     generation=1, running=True)


def test_containers_and_networks_of_sigs_without_a_spec_are_removed_and_others_kept(
        store: EtcdStore, keys: Keys, redis_url: str, tmp_path: Path) -> None:
    store.put(keys.sig_spec("acme", "etl"), {"spec": {"name": "etl"}, "generation": 1})
    runtime = RecordingRuntime([container("acme", "etl"), container("gone", "old"), container("gone", "old", "worker")],
                               networks={("acme", "etl"), ("wiped", "net")})
    scaler = Scaler(store, RedisBus(redis_url), runtime, SigStorage(tmp_path), keys=keys,
                    demand=RedisDemandStore(redis_url, prefix=f"test{keys.prefix}:"))
    scaler.reconcile_all()
    assert sorted(runtime.stopped) == ["gone-old-master-0", "gone-old-worker-0"]
    assert sorted(runtime.cleaned) == [("gone", "old"), ("wiped", "net")]


def test_the_process_runtime_loses_containers_and_work_dirs_of_sigs_without_a_spec(
        store: EtcdStore, keys: Keys, redis_url: str, tmp_path: Path) -> None:
    from spaas.runtimes.process import ProcessRuntime

    sleeper = tmp_path / "sleeper"  # stands in for the agent's interpreter: a process that just runs
    sleeper.write_text("#!/bin/sh\nexec sleep 120\n")
    sleeper.chmod(0o755)
    runtime = ProcessRuntime(tmp_path / "state", python=str(sleeper))
    runtime.start(ContainerSpec(name="gone-old-master-0", tenant="gone", sig="old", role="master", index=0,
                                config_hash="h", generation=1, artifact=str(tmp_path)))
    (tmp_path / "state" / "runtime" / "wiped" / "dirs").mkdir(parents=True)
    assert [c.name for c in runtime.list()] == ["gone-old-master-0"]
    assert runtime.sigs() == {("gone", "old"), ("wiped", "dirs")}
    scaler = Scaler(store, RedisBus(redis_url), runtime, SigStorage(tmp_path), keys=keys,
                    demand=RedisDemandStore(redis_url, prefix=f"test{keys.prefix}:"))
    scaler.reconcile_all()
    assert runtime.list() == [] and runtime.sigs() == set()
