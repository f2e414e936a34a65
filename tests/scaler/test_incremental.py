"""The scaler's passes over watch-backed caches (services/scaler/loop.py `reconcile_all`): between
full resyncs only SIGs whose inputs changed are reconciled, and what changed is seen through the
caches. Real etcd and Redis; the runtime keeps what it is asked to start, in memory (the runtimes
have their own tests)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from spaas.bus import RedisBus
from spaas.cache import CachedStore
from spaas.demand import RedisDemandStore
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.model import SigSpec
from spaas.records import BuildStatus, HostRecord, SigSpecRecord, TenantRecord
from spaas.runtimes.base import Address, Container, ContainerSpec
from spaas.storage import SigStorage

from services.scaler.loop import Scaler, cached_prefixes


class MemoryRuntime:
    """Containers as records: started, listed, stopped; each its own address."""

    def __init__(self) -> None:
        self.containers: dict[str, Container] = {}
        self.started: list[str] = []
        self.stopped: list[str] = []

    def start(self, spec: ContainerSpec) -> None:
        self.started.append(spec.name)
        self.containers[spec.name] = Container(spec.name, spec.tenant, spec.sig, spec.role, spec.index,
                                               spec.config_hash, spec.generation, True, time.time())

    def stop(self, name: str, *, grace_s: float = 10.0) -> None:
        self.stopped.append(name)
        self.containers.pop(name, None)

    def list(self) -> list[Container]:
        return list(self.containers.values())

    def addresses(self) -> dict[str, Address]:
        return {name: Address(f"10.0.0.{i + 1}") for i, name in enumerate(sorted(self.containers))}

    def cleanup_sig(self, tenant: str, sig: str) -> None:
        pass


@pytest.fixture
def cached(etcd_url: str, keys: Keys) -> Iterator[CachedStore]:
    store = CachedStore(EtcdStore(etcd_url), cached_prefixes(keys)).start(wait_s=10)
    yield store
    store.stop()


def add_sig(store: EtcdStore, keys: Keys, tenant: str, sig: str, *, generation: int = 1, cpu: int = 1) -> list[str]:
    store.put(keys.tenant(tenant), TenantRecord(name=tenant, created_at=1.0).to_value())
    spec = SigSpec.model_validate({"name": sig, "spark_version": "3.5.9", "resources": {"cpu": cpu}})
    store.put(keys.sig_spec(tenant, sig), SigSpecRecord(spec=spec, generation=generation, created_at=1.0).to_value())
    store.put(keys.sig_build(tenant, sig), BuildStatus(generation=generation, key=f"k{generation}", state="SUCCEEDED",
                                                       artifact="/opt/x").to_value())
    return [keys.tenant(tenant), keys.sig_spec(tenant, sig), keys.sig_build(tenant, sig)]


def register(store: EtcdStore, keys: Keys, runtime: MemoryRuntime) -> list[str]:
    """What the started containers' agents write: a ready host record each."""
    addresses = runtime.addresses()
    written = []
    for c in runtime.containers.values():
        written.append(keys.host(c.tenant, c.sig, c.name))
        store.put(written[-1], HostRecord(role=c.role, index=c.index, ip=addresses[c.name].ip, config_hash=c.config_hash,
                                          generation=c.generation, ready=True, ports={"ui": 8080},
                                          registered_at=time.time()).to_value())
    return written


def settle(cached: CachedStore, store: EtcdStore, written: list[str]) -> None:
    """Until the caches show what the test wrote to etcd directly (as another process would)."""
    for key in written:
        entry, cache = store.get(key), cached.cache_for(key)
        assert cache is not None
        if entry is not None:
            assert cache.wait_for(entry.mod_revision, 10)
        else:
            assert cache.wait_until(lambda c, key=key: c.get(key) is None, 10)  # type: ignore[misc]


def ready_scaler(cached: CachedStore, store: EtcdStore, keys: Keys, redis_url: str, tmp_path: Path,
                 sigs: list[tuple[str, str]]) -> tuple[Scaler, MemoryRuntime]:
    """A scaler whose SIGs are READY and settled (an incremental pass reconciles none of them)."""
    settle(cached, store, [key for tenant, sig in sigs for key in add_sig(store, keys, tenant, sig)])
    runtime = MemoryRuntime()
    scaler = Scaler(cached, RedisBus(redis_url), runtime, SigStorage(tmp_path), keys=keys,
                    demand=RedisDemandStore(redis_url, prefix=f"test{keys.prefix}:"))
    scaler.reconcile_all(full=True)
    settle(cached, store, register(store, keys, runtime))
    scaler.reconcile_all(full=True)
    for tenant, sig in sigs:
        status = cached.get(keys.sig_status(tenant, sig))
        assert status is not None and status.value["phase"] == "READY", status
    scaler.reconcile_all(full=False)  # its own status and route writes come back through the caches
    scaler.reconcile_all(full=False)
    assert scaler.last_pass == (False, 0)
    return scaler, runtime


def test_a_spec_change_seen_through_the_cache_is_reconciled_without_waiting_for_a_full_pass(
        etcd_url: str, cached: CachedStore, keys: Keys, redis_url: str, tmp_path: Path) -> None:
    store = EtcdStore(etcd_url)
    scaler, runtime = ready_scaler(cached, store, keys, redis_url, tmp_path, [("acme", "etl"), ("beta", "bi")])
    old = sorted(c.name for c in runtime.containers.values() if c.tenant == "acme")
    # more cores: a new config, so new containers
    settle(cached, store, add_sig(store, keys, "acme", "etl", generation=2, cpu=2))
    scaler.reconcile_all()
    assert scaler.last_pass == (False, 1)  # acme/etl only; beta/bi was left alone
    assert sorted(runtime.stopped) == old
    assert sorted(runtime.started[-2:]) == old  # the same names, started again with the new config
    assert {c.config_hash for c in runtime.containers.values() if c.tenant == "acme"} != \
        {c.config_hash for c in runtime.containers.values() if c.tenant == "beta"}


def test_a_deleted_sig_has_its_containers_stopped_by_an_incremental_pass(
        etcd_url: str, cached: CachedStore, keys: Keys, redis_url: str, tmp_path: Path) -> None:
    store = EtcdStore(etcd_url)
    scaler, runtime = ready_scaler(cached, store, keys, redis_url, tmp_path, [("acme", "etl"), ("acme", "old")])
    assert store.list(keys.routes("acme", "etl")) and store.list(keys.routes("acme", "old"))
    record = store.get(keys.sig_spec("acme", "etl"))
    assert record is not None
    store.put(keys.sig_spec("acme", "etl"), dict(record.value, deleting=True))  # what the API's delete writes
    store.delete(keys.sig_spec("acme", "old"))  # and a spec removed by hand: its containers are orphans
    settle(cached, store, [keys.sig_spec("acme", "etl"), keys.sig_spec("acme", "old")])
    scaler.reconcile_all()
    assert not scaler.last_pass[0]
    assert sorted(runtime.stopped) == ["acme-etl-master-0", "acme-etl-worker-0", "acme-old-master-0",
                                       "acme-old-worker-0"]
    assert runtime.containers == {}
    # No route outlives its SIG: the proxy must never forward to where a deleted SIG's server was.
    assert store.list(keys.routes("acme", "etl")) == [] and store.list(keys.routes("acme", "old")) == []
    hosts = [e.key for e in store.list(keys.hosts("acme", "etl"))]
    for key in hosts:  # the agents' leased host records expire once their containers are gone
        store.delete(key)
    settle(cached, store, hosts)
    scaler.reconcile_all()  # nothing runs any more: the deleted SIG's records go
    assert store.get(keys.sig_spec("acme", "etl")) is None and store.list(keys.hosts("acme", "etl")) == []


def test_a_container_that_died_is_replaced_by_an_incremental_pass(
        etcd_url: str, cached: CachedStore, keys: Keys, redis_url: str, tmp_path: Path) -> None:
    store = EtcdStore(etcd_url)
    scaler, runtime = ready_scaler(cached, store, keys, redis_url, tmp_path, [("acme", "etl"), ("beta", "bi")])
    del runtime.containers["beta-bi-worker-0"]  # died: nothing in etcd changed
    scaler.reconcile_all()
    assert scaler.last_pass == (False, 1) and runtime.started[-1] == "beta-bi-worker-0"


def test_a_cache_that_listed_again_makes_the_next_pass_full(
        etcd_url: str, cached: CachedStore, keys: Keys, redis_url: str, tmp_path: Path) -> None:
    """After a compaction past a cache's revision (or any watch error) its change log is lost:
    the scaler cannot tell what changed, so it reconciles everything."""
    store = EtcdStore(etcd_url)
    scaler, _ = ready_scaler(cached, store, keys, redis_url, tmp_path, [("acme", "etl")])
    cache = cached.cache_for(keys.all_hosts())
    assert cache is not None and cache._watch is not None
    listings = cache.listings
    for i in range(2):  # revisions the hosts cache never sees, then compacted away
        revision = store.put(keys.prefix + f"/elsewhere/{i}", {"n": i}).mod_revision
    resp = requests.post(etcd_url + "/v3/kv/compaction", json={"revision": str(revision), "physical": True}, timeout=10)
    assert resp.ok, resp.text
    cache._watch.close()  # the connection drops; watching again from its revision finds it compacted
    deadline = time.monotonic() + 10
    while not (cache.listings > listings and cache.synced) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cache.listings > listings
    scaler.reconcile_all()
    assert scaler.last_pass == (True, 1)
    scaler.reconcile_all()
    assert scaler.last_pass == (False, 0)


def test_a_full_pass_comes_every_full_resync_s(
        etcd_url: str, cached: CachedStore, keys: Keys, redis_url: str, tmp_path: Path) -> None:
    store = EtcdStore(etcd_url)
    scaler, _ = ready_scaler(cached, store, keys, redis_url, tmp_path, [("acme", "etl")])
    scaler._full_resync_s = 0.0
    scaler.reconcile_all()
    assert scaler.last_pass == (True, 1)
