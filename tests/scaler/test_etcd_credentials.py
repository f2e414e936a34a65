"""The scaler gives a SIG's containers their own etcd user (`SigCredentials`) before starting
them, and removes it with the SIG. Real etcd with authentication, real Redis; the runtime only
records what it is asked to start (the runtimes have their own tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spaas.bus import RedisBus
from spaas.demand import RedisDemandStore
from spaas.etcd import EtcdForbidden, EtcdStore
from spaas.etcdauth import SigCredentials, sig_user
from spaas.keys import Keys
from spaas.runtimes.base import Address, Container, ContainerSpec
from spaas.storage import SigStorage

from services.scaler.loop import Scaler


class RecordingRuntime:
    def __init__(self) -> None:
        self.started: list[ContainerSpec] = []

    def start(self, spec: ContainerSpec) -> None:
        self.started.append(spec)

    def stop(self, name: str, *, grace_s: float = 10.0) -> None:
        pass

    def list(self) -> list[Container]:
        return []

    def addresses(self) -> dict[str, Address]:
        return {}

    def cleanup_sig(self, tenant: str, sig: str) -> None:
        pass


def test_sig_containers_start_with_their_own_etcd_user_which_goes_with_the_sig(
        root_store: EtcdStore, keys: Keys, redis_url: str, tmp_path: Path) -> None:
    spec = {"spec": {"name": "etl", "spark_version": "3.5.9", "scaling": {"min_workers": 1, "max_workers": 1}}, "generation": 1}
    root_store.put(keys.sig_spec("acme", "etl"), spec)
    root_store.put(keys.sig_build("acme", "etl"), {"generation": 1, "state": "SUCCEEDED", "key": "k1",
                                                   "artifact": "spaas-sig:k1"})
    root_store.put(keys.secret("acme", "etl"), {"secret": "s"})
    runtime = RecordingRuntime()
    scaler = Scaler(root_store, RedisBus(redis_url), runtime, SigStorage(tmp_path), keys=keys,
                    demand=RedisDemandStore(redis_url, prefix=f"test{keys.prefix}:"),
                    credentials=SigCredentials(root_store, keys, secret="platform-secret"))
    scaler.reconcile_all()
    assert sorted(s.name for s in runtime.started) == ["acme-etl-master-0", "acme-etl-worker-0"]
    envs = [s.env for s in runtime.started]
    assert envs[0] == envs[1] and envs[0]["SPAAS_ETCD_USER"] == sig_user(keys, "acme", "etl")
    sig_store = root_store.as_user(envs[0]["SPAAS_ETCD_USER"], envs[0]["SPAAS_ETCD_PASSWORD"])
    assert sig_store.get(keys.secret("acme", "etl")).value == {"secret": "s"}

    root_store.put(keys.sig_spec("acme", "etl"), dict(spec, deleting=True))
    scaler.reconcile_all()
    assert root_store.get(keys.sig_spec("acme", "etl")) is None
    with pytest.raises(EtcdForbidden, match="rejected the credentials"):
        sig_store.get(keys.secret("acme", "etl"))
