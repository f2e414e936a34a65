"""One bad record hurts only itself: the scaler's pass over real etcd, with malformed records
written where tenant A's SIG can write (its hosts and apps prefixes) and where it cannot (a SIG
spec with wrong types, a tenant record that is not JSON, a garbage build status), still brings
tenant B's SIG to READY, replaces B's dead worker, and shows each bad record where it belongs.
The runtime only records what it is asked to run (the runtimes have their own tests)."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest

from spaas.bus import RedisBus
from spaas.demand import RedisDemandStore
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.runtimes.base import Address, Container, ContainerSpec
from spaas.storage import SigStorage

from services.scaler.loop import Scaler

SPEC = {"spark_version": "3.5.9", "scaling": {"min_workers": 1, "max_workers": 2}}
BUILD = {"generation": 1, "state": "SUCCEEDED", "key": "k1", "artifact": "/a"}


class RecordingRuntime:
    """Containers are what it was asked to start and not yet asked to stop (or `kill`ed)."""

    def __init__(self) -> None:
        self.running: dict[str, ContainerSpec] = {}
        self.started: list[str] = []

    def start(self, spec: ContainerSpec) -> None:
        self.started.append(spec.name)
        self.running.setdefault(spec.name, spec)

    def stop(self, name: str, *, grace_s: float = 10.0) -> None:
        self.running.pop(name, None)

    kill = stop

    def list(self) -> list[Container]:
        return [Container(name=s.name, tenant=s.tenant, sig=s.sig, role=s.role, index=s.index,
                          config_hash=s.config_hash, generation=s.generation, running=True)
                for s in self.running.values()]

    def addresses(self) -> dict[str, Address]:
        return {name: Address("10.0.0.1") for name in self.running}

    def cleanup_sig(self, tenant: str, sig: str) -> None:
        pass


def put_raw(store: EtcdStore, key: str, raw: bytes) -> None:
    store.call("/v3/kv/put", {"key": base64.b64encode(key.encode()).decode(),
                              "value": base64.b64encode(raw).decode()})


def create_sig(store: EtcdStore, keys: Keys, tenant: str, sig: str) -> None:
    store.put(keys.sig_spec(tenant, sig), {"spec": dict(SPEC, name=sig), "generation": 1})
    store.put(keys.sig_build(tenant, sig), BUILD)
    store.put(keys.secret(tenant, sig), {"secret": "s" * 32})


def register(store: EtcdStore, keys: Keys, runtime: RecordingRuntime, tenant: str, sig: str) -> None:
    """What each container's agent does once its Spark daemon is up."""
    for spec in runtime.running.values():
        if (spec.tenant, spec.sig) == (tenant, sig):
            store.put(keys.host(tenant, sig, spec.name), {
                "role": spec.role, "index": spec.index, "ip": "10.0.0.1", "config_hash": spec.config_hash,
                "ready": True, "spark_url": "spark://10.0.0.1:7077", "ui_url": "http://10.0.0.1:8080",
                "registered_at": time.time()}, lease=store.grant_lease(30))


def status(store: EtcdStore, keys: Keys, tenant: str, sig: str) -> dict[str, Any]:
    entry = store.get(keys.sig_status(tenant, sig))
    assert entry is not None, f"no status for {tenant}/{sig}"
    return entry.value


@pytest.fixture
def world(store: EtcdStore, keys: Keys, redis_url: str, tmp_path: Path) -> tuple[Scaler, RecordingRuntime]:
    runtime = RecordingRuntime()
    scaler = Scaler(store, RedisBus(redis_url), runtime, SigStorage(tmp_path), keys=keys,
                    demand=RedisDemandStore(redis_url, prefix=f"test{keys.prefix}:"))
    for tenant in ("a", "b"):
        store.put(keys.tenant(tenant), {"name": tenant, "quota": {}})
        create_sig(store, keys, tenant, "etl")
    return scaler, runtime


def junk_from_tenant_code(store: EtcdStore, keys: Keys) -> None:
    """What A's SIG user may write: its hosts and apps prefixes, anything in them."""
    put_raw(store, keys.host("a", "etl", "a-etl-worker-7"), b"not json")
    store.put(keys.host("a", "etl", "a-etl-worker-8"), {"role": "worker", "ready": True})  # no ip
    store.put(keys.hosts("a", "etl") + "deep/junk", {"role": "master"})
    store.put(keys.app_spec("a", "etl", "bad1"), {"request": {"file": "j.py", "conf": {"spark.executor.cores": "x"}}})
    store.put(keys.app_spec("a", "etl", "bad2"), {"request": {"file": "j.py", "numExecutors": 10**12}})
    store.put(keys.app_spec("a", "etl", "bad3"), {"request": {"file": "j.py"}})
    put_raw(store, keys.app_state("a", "etl", "bad3"), b"\x00garbage")
    put_raw(store, keys.apps("a", "etl") + "x", b"no spec")


def test_junk_in_one_sig_leaves_the_others_reconciling(store: EtcdStore, keys: Keys,
                                                       world: tuple[Scaler, RecordingRuntime]) -> None:
    scaler, runtime = world
    junk_from_tenant_code(store, keys)
    # Where tenant code cannot write, but a bug or a hand edit could:
    store.put(keys.sig_spec("a", "typed"), {"spec": {"name": "typed", "spark_version": 3}, "generation": "one"})
    put_raw(store, keys.tenant("c"), b"{{{")
    create_sig(store, keys, "c", "etl")
    create_sig(store, keys, "b", "rebuilt")
    put_raw(store, keys.sig_build("b", "rebuilt"), b"garbage")
    put_raw(store, keys.build("k1"), b"garbage")

    scaler.reconcile_all()
    for ident in ("a-etl", "b-etl", "c-etl"):
        assert {f"{ident}-master-0", f"{ident}-worker-0"} <= set(runtime.running), ident
    for tenant in ("a", "b", "c"):
        register(store, keys, runtime, tenant, "etl")
    scaler.reconcile_all()

    assert status(store, keys, "b", "etl")["phase"] == "READY"
    assert status(store, keys, "b", "etl")["reason"] is None
    assert status(store, keys, "c", "etl")["phase"] == "READY", "an unreadable tenant record costs only its quota"
    a = status(store, keys, "a", "etl")
    assert (a["phase"], a["reason"]) == ("READY", "InvalidRecord")
    shown = " ".join(a["invalid_records"])
    assert "a-etl-worker-7" in shown and "a-etl-worker-8" in shown and "deep/junk" in shown and "/x:" in shown
    assert a["workers"]["ready"] == 1, "junk host records count for nothing"
    typed = status(store, keys, "a", "typed")
    assert (typed["phase"], typed["reason"]) == ("FAILED", "InvalidRecord")
    assert "spec.spark_version" in typed["message"] and "generation" in typed["message"]
    assert status(store, keys, "b", "rebuilt")["phase"] == "BUILDING", "a garbage build status is rebuilt over"
    assert not any(name.startswith("a-typed") for name in runtime.running)


def test_a_dead_worker_is_replaced_and_not_ready_until_it_registers(store: EtcdStore, keys: Keys,
                                                                    world: tuple[Scaler, RecordingRuntime]) -> None:
    scaler, runtime = world
    junk_from_tenant_code(store, keys)
    scaler.reconcile_all()
    register(store, keys, runtime, "b", "etl")
    scaler.reconcile_all()
    assert status(store, keys, "b", "etl")["phase"] == "READY"

    runtime.kill("b-etl-worker-0")  # its leased host record (ready) stays behind for a while
    scaler.reconcile_all()
    b = status(store, keys, "b", "etl")
    assert (b["phase"], b["reason"]) == ("DEPLOYING", "WorkerLost")
    assert b["workers"]["ready"] == 0 and "b-etl-worker-0" in b["message"]
    assert "b-etl-worker-0" in runtime.running, "the worker is started again in the same pass"
    scaler.reconcile_all()
    assert status(store, keys, "b", "etl")["phase"] == "DEPLOYING", "the old host record does not count"

    time.sleep(0.01)
    register(store, keys, runtime, "b", "etl")
    scaler.reconcile_all()
    b = status(store, keys, "b", "etl")
    assert (b["phase"], b["reason"], b["workers"]["ready"]) == ("READY", None, 1)
