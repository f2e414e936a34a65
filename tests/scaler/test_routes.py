"""Verified routes: a host record's ports reach the proxy only where the runtime confirms them
(services/scaler/routes.py), and the scaler keeps `{p}/routes/` in step (real etcd and Redis)."""

from __future__ import annotations

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
from services.scaler.routes import verified_routes


def container(name: str, role: str, running: bool = True) -> Container:
    return Container(name=name, tenant="acme", sig="etl", role=role, index=0, config_hash="h", generation=1,
                     running=running)


MASTER, WORKER = container("acme-etl-master-0", "master"), container("acme-etl-worker-0", "worker")
DOCKER = {MASTER.name: Address("10.1.0.2"), WORKER.name: Address("10.1.0.3")}
PROCESS = {MASTER.name: Address("127.0.0.1", frozenset({7077, 8080})),
           WORKER.name: Address("127.0.0.1", frozenset({8081}))}


def host(name: str, role: str, ip: str, **ports: int) -> dict[str, Any]:
    return {"host": name, "role": role, "ip": ip, "ports": ports, "ready": True}


@pytest.mark.parametrize(("record", "addresses", "expected"), [
    # Docker/Kubernetes: the container's own IP, any port on it.
    (host(MASTER.name, "master", "10.1.0.2", spark=7077, ui=8080), DOCKER,
     {"role": "master", "container": MASTER.name, "ip": "10.1.0.2", "ports": {"spark": 7077, "ui": 8080}, "ready": True}),
    # A foreign IP (a platform service, the metadata address, another SIG's container): dropped.
    (host(MASTER.name, "master", "169.254.169.254", ui=80), DOCKER, None),
    (host(MASTER.name, "master", "10.1.0.3", ui=8081), DOCKER, None),
    (host(MASTER.name, "master", "172.17.0.1", ui=2379), DOCKER, None),
    # Process runtime: only ports the container's processes listen on; others dropped port by port.
    (host(MASTER.name, "master", "127.0.0.1", spark=7077, ui=8080), PROCESS,
     {"role": "master", "container": MASTER.name, "ip": "127.0.0.1", "ports": {"spark": 7077, "ui": 8080},
      "ready": True}),
    (host(MASTER.name, "master", "127.0.0.1", spark=7077, ui=8090), PROCESS,
     {"role": "master", "container": MASTER.name, "ip": "127.0.0.1", "ports": {"spark": 7077}, "ready": True}),
    (host(MASTER.name, "master", "127.0.0.1", ui=8081), PROCESS, None),  # the worker's port, not the master's
    # A worker's record claiming to be the master.
    (host(WORKER.name, "master", "10.1.0.3", ui=8081), DOCKER, None),
    # A record that is no container's (a history server): any container of the SIG, one at a time.
    (dict(host("hist", "history", "10.1.0.2", ui=18080), ready=False), DOCKER,
     {"role": "history", "container": MASTER.name, "ip": "10.1.0.2", "ports": {"ui": 18080}, "ready": False}),
    (dict(host("nb-alice", "notebook", "127.0.0.1", ui=8081, api=8080), user="alice"), PROCESS,
     {"role": "notebook", "container": MASTER.name, "ip": "127.0.0.1", "ports": {"api": 8080}, "ready": True,
      "user": "alice"}),
    # Junk ports.
    (host(MASTER.name, "master", "10.1.0.2", ui=0, spark=70000), DOCKER, None),
    ({"host": MASTER.name, "role": "master", "ip": "10.1.0.2", "ports": {"ui": True}}, DOCKER, None),
])
def test_only_ports_the_runtime_confirms_are_routed(record: dict[str, Any], addresses: dict[str, Address],
                                                    expected: dict[str, Any] | None) -> None:
    routes = verified_routes([record], [MASTER, WORKER], addresses)
    assert routes.get(record["host"]) == expected
    assert set(routes) <= {record["host"]}


def test_a_container_without_an_address_or_not_running_is_no_route() -> None:
    rec = host(MASTER.name, "master", "10.1.0.2", ui=8080)
    assert verified_routes([rec], [MASTER], {}) == {}
    assert verified_routes([rec], [container(MASTER.name, "master", running=False)], DOCKER) == {}


class Runtime:
    def __init__(self, containers: list[Container], addresses: dict[str, Address]) -> None:
        self.containers, self.addr = containers, addresses

    def start(self, spec: ContainerSpec) -> None:
        pass

    def stop(self, name: str, *, grace_s: float = 10.0) -> None:
        pass

    def list(self) -> list[Container]:
        return list(self.containers)

    def addresses(self) -> dict[str, Address]:
        return dict(self.addr)

    def cleanup_sig(self, tenant: str, sig: str) -> None:
        pass


def test_the_scaler_writes_changed_routes_and_removes_stale_ones(store: EtcdStore, keys: Keys, redis_url: str,
                                                                 tmp_path: Path) -> None:
    store.put(keys.sig_spec("acme", "etl"), {"spec": {"name": "etl", "spark_version": "3.5.9"}, "generation": 1})
    store.put(keys.host("acme", "etl", MASTER.name), {"role": "master", "ip": "10.1.0.2", "ready": True,
                                                      "ports": {"ui": 8080, "spark": 7077}})
    store.put(keys.route("acme", "etl", "ghost"), {"role": "master", "ip": "10.9.9.9", "ports": {"ui": 1}})
    store.put(keys.route("gone", "sig", MASTER.name), {"role": "master", "ip": "10.9.9.9", "ports": {"ui": 1}})
    runtime = Runtime([MASTER], DOCKER)
    scaler = Scaler(store, RedisBus(redis_url), runtime, SigStorage(tmp_path), keys=keys,
                    demand=RedisDemandStore(redis_url, prefix=f"test{keys.prefix}:"))
    scaler.reconcile_all()
    routes = {e.key: e.value for e in store.list(keys.all_routes())}
    assert routes == {keys.route("acme", "etl", MASTER.name): {
        "role": "master", "container": MASTER.name, "ip": "10.1.0.2", "ports": {"spark": 7077, "ui": 8080},
        "ready": True}}
    revision = store.get(keys.route("acme", "etl", MASTER.name)).mod_revision  # type: ignore[union-attr]
    scaler.reconcile_all()  # nothing changed: nothing written
    assert store.get(keys.route("acme", "etl", MASTER.name)).mod_revision == revision  # type: ignore[union-attr]
    # Tenant code points the master's record elsewhere: the route goes.
    store.put(keys.host("acme", "etl", MASTER.name), {"role": "master", "ip": "172.17.0.1", "ready": True,
                                                      "ports": {"ui": 2379}})
    scaler.reconcile_all()
    assert store.list(keys.all_routes()) == []
