"""The warm pool's loop against a real etcd; the runtime is a fake at its adapter boundary
(the process runtime's own pool methods are covered end to end in tests/e2e/test_warm_pool.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.runtimes.base import Container, ContainerSpec

from services.scaler.warmpool import CLAIMED, WarmPool


class FakePoolRuntime:
    def __init__(self) -> None:
        self.running: dict[str, Container] = {}
        self.pool: dict[str, Container] = {}
        self.discarded: list[str] = []

    def start(self, spec: ContainerSpec) -> None:
        c = Container(spec.name, spec.tenant, spec.sig, spec.role, spec.index, spec.config_hash, spec.generation, True)
        (self.pool if spec.env.get("SPAAS_POOL") else self.running)[spec.name] = c

    def stop(self, name: str, *, grace_s: float = 10.0) -> None:
        self.running.pop(name, None)
        self.pool.pop(name, None)

    def list(self) -> list[Container]:
        return list(self.running.values())

    def pooled(self) -> list[Container]:
        return list(self.pool.values())

    def adopt(self, pooled_name: str, spec: ContainerSpec) -> None:
        c = self.pool.pop(pooled_name)
        self.running[spec.name] = dataclasses.replace(c, name=spec.name, tenant=spec.tenant, sig=spec.sig,
                                                      config_hash=spec.config_hash, generation=spec.generation)

    def discard_pool(self, skeleton: str) -> None:
        self.discarded.append(skeleton)


def _world(store: EtcdStore, keys: Keys, tmp_path: Path) -> str:
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "manifest.json").write_text("{}")
    store.put(keys.build("k1"), {"state": "SUCCEEDED", "artifact": str(artifact), "spark_version": "3.5.9",
                                 "finished_at": 1.0})
    return str(artifact)


def _sig(store: EtcdStore, keys: Keys, tenant: str, sig: str, artifact: str) -> None:
    store.put(keys.sig_spec(tenant, sig), {"spec": {"name": sig, "spark_version": "3.5.9"}, "generation": 1,
                                           "deleting": False, "created_at": 1.0})
    store.put(keys.sig_build(tenant, sig), {"generation": 1, "key": "k1", "state": "SUCCEEDED", "artifact": artifact})
    store.put(keys.secret(tenant, sig), {"secret": f"api-secret-of-{tenant}"})


def _ready(store: EtcdStore, keys: Keys, runtime: FakePoolRuntime) -> str:
    skel = next(iter({c.sig for c in runtime.pooled()}))
    for c in runtime.pooled():
        store.put(keys.pool_host(skel, c.name), {"host": c.name, "role": c.role, "ready": True})
    return skel


def test_fill_claim_refill_and_never_a_second_tenant(store: EtcdStore, keys: Keys, tmp_path: Path) -> None:
    artifact = _world(store, keys, tmp_path)
    runtime = FakePoolRuntime()
    pool = WarmPool(store, runtime, keys=keys, size=1)
    pool.step()
    assert sorted(c.role for c in runtime.pooled()) == ["master", "worker"]
    skel = _ready(store, keys, runtime)
    pool_secret = store.get(keys.pool_secret(skel))
    assert pool_secret is not None

    _sig(store, keys, "a", "s", artifact)
    pool.step()
    claim = store.get(keys.pool_claim(skel))
    assert claim is not None and claim.value["state"] == CLAIMED
    assert (claim.value["tenant"], claim.value["sig"]) == ("a", "s")
    assert sorted(runtime.running) == ["a-s-master-0", "a-s-worker-0"]
    secret = store.get(keys.secret("a", "s"))
    assert secret is not None and secret.value == {"secret": pool_secret.value["secret"], "adopted_from": skel}
    # The same pass refilled: a new skeleton, not the claimed one.
    assert {c.sig for c in runtime.pooled()} - {skel} and skel not in {c.sig for c in runtime.pooled()}

    # A second tenant's SIG gets the new skeleton once it is ready, never the first.
    skel2 = _ready(store, keys, runtime)
    _sig(store, keys, "b", "s", artifact)
    pool.step()
    claim2 = store.get(keys.pool_claim(skel2))
    assert claim2 is not None and claim2.value["tenant"] == "b"
    assert store.get(keys.pool_claim(skel)).value["tenant"] == "a"  # type: ignore[union-attr]
    assert sorted(runtime.running) == ["a-s-master-0", "a-s-worker-0", "b-s-master-0", "b-s-worker-0"]


def test_a_claimed_skeleton_is_forgotten_only_when_its_sig_and_containers_are_gone(store: EtcdStore, keys: Keys,
                                                                                   tmp_path: Path) -> None:
    artifact = _world(store, keys, tmp_path)
    runtime = FakePoolRuntime()
    pool = WarmPool(store, runtime, keys=keys, size=1)
    pool.step()
    skel = _ready(store, keys, runtime)
    _sig(store, keys, "a", "s", artifact)
    pool.step()
    store.delete_prefix(keys.sig("a", "s"))
    pool.step()
    assert store.get(keys.pool_claim(skel)) is not None  # its containers still run
    runtime.running.clear()
    pool.step()
    assert store.get(keys.pool_claim(skel)) is None


def test_a_broken_or_stuck_skeleton_is_stopped_and_replaced(store: EtcdStore, keys: Keys, tmp_path: Path) -> None:
    _world(store, keys, tmp_path)
    runtime = FakePoolRuntime()
    now = [1000.0]
    pool = WarmPool(store, runtime, keys=keys, size=1, clock=lambda: now[0], start_timeout_s=60)
    pool.step()
    [skel] = {c.sig for c in runtime.pooled()}
    master = next(c.name for c in runtime.pooled() if c.role == "master")
    runtime.stop(master)  # its master died: the worker would wait for it forever
    pool.step()
    assert store.get(keys.pool_skeleton(skel)) is None and skel in runtime.discarded
    pool.step()
    [skel2] = {c.sig for c in runtime.pooled()}
    assert skel2 != skel
    now[0] += 61  # never became ready
    pool.step()
    assert skel2 in runtime.discarded and store.get(keys.pool_skeleton(skel2)) is None
