"""The registry's HTTP API against a real etcd, through Flask's test client and as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.stack import free_port

from services.etcd_registry.app import create_app

ROOT = Path(__file__).resolve().parents[2]


def host_record(host: str, role: str = "worker", index: int = 0, port: int = 40001) -> dict[str, Any]:
    record: dict[str, Any] = {
        "host": host, "role": role, "index": index, "ip": "127.0.0.1",
        "ports": {"spark": port, "ui": port + 1}, "ui_url": f"http://127.0.0.1:{port + 1}", "ready": True,
        "config_hash": "abc123", "generation": 1, "pid": 123, "spark_version": "3.5.9", "registered_at": 1700000000.0,
    }
    if role == "master":
        record["spark_url"] = f"spark://127.0.0.1:{port}"
    return record


@pytest.fixture
def register(store: EtcdStore, keys: Keys) -> Callable[..., dict[str, Any]]:
    """Write a host record the way an agent does: with a lease."""

    def write(tenant: str, sig: str, host: str, *, ttl_s: int = 10, **fields: Any) -> dict[str, Any]:
        record = host_record(host, **fields)
        store.put(keys.host(tenant, sig, host), record, lease=store.grant_lease(ttl_s))
        return record

    return write


@pytest.fixture
def app(store: EtcdStore, keys: Keys) -> Flask:
    return create_app(store, keys)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_lookup_of_a_sig_lists_its_hosts_sorted(client: FlaskClient, register: Callable[..., dict[str, Any]]) -> None:
    worker = register("t1", "s1", "t1-s1-worker-0", port=40003)
    master = register("t1", "s1", "t1-s1-master-0", role="master", port=40001)
    register("t1", "s10", "t1-s10-worker-0")  # a SIG whose name starts like ours stays out

    resp = client.get("/hosts/t1/s1")

    assert resp.status_code == 200
    assert resp.get_json() == {"tenant": "t1", "sig": "s1", "hosts": [master, worker]}


def test_lookup_of_one_host_returns_its_record(client: FlaskClient, register: Callable[..., dict[str, Any]]) -> None:
    record = register("t1", "s1", "t1-s1-master-0", role="master")

    resp = client.get("/hosts/t1/s1/t1-s1-master-0")

    assert resp.status_code == 200
    assert resp.get_json() == record
    assert resp.get_json()["spark_url"] == "spark://127.0.0.1:40001"


def test_host_comes_from_the_key(client: FlaskClient, store: EtcdStore, keys: Keys) -> None:
    store.put(keys.host("t1", "s1", "t1-s1-worker-0"), {"ip": "10.0.0.5", "ports": {"spark": 7078}},
              lease=store.grant_lease(10))

    body = client.get("/hosts/t1/s1/t1-s1-worker-0").get_json()

    assert body == {"host": "t1-s1-worker-0", "ip": "10.0.0.5", "ports": {"spark": 7078}}


def test_long_container_names_are_valid_hosts(client: FlaskClient, register: Callable[..., dict[str, Any]]) -> None:
    host = "analytics-team-nightly-etl-worker-12"  # longer than a tenant or SIG name may be
    register("analytics-team", "nightly-etl", host)

    assert client.get(f"/hosts/analytics-team/nightly-etl/{host}").status_code == 200


@pytest.mark.parametrize("path, field", [
    ("/hosts/t1/nope", "sig"),
    ("/hosts/nope/s1", "sig"),
    ("/hosts/t1/s1/t1-s1-worker-9", "host"),
    ("/resolve/t1-s1-worker-9.s1.t1", "host"),
])
def test_unknown_sig_or_host_is_a_json_404(client: FlaskClient, register: Callable[..., dict[str, Any]],
                                           path: str, field: str) -> None:
    register("t1", "s1", "t1-s1-worker-0")

    resp = client.get(path)

    assert resp.status_code == 404
    assert resp.get_json()["error"]["code"] == "NotFound"
    assert resp.get_json()["error"]["field"] == field


@pytest.mark.parametrize("path, field", [
    ("/hosts/BAD_NAME/s1", "tenant"),
    ("/hosts/t1/BAD_NAME", "sig"),
    ("/hosts/t1/s1/BAD_NAME", "host"),
    ("/hosts/t1/" + "s" * 25, "sig"),
    ("/hosts/t1/s1/" + "h" * 64, "host"),
    ("/hosts/-t1/s1", "tenant"),
    ("/resolve/BAD_NAME.s1.t1", "host"),
    ("/resolve/t1-s1-worker-0.s1", "name"),
    ("/resolve/a.b.c.d", "name"),
    ("/resolve/h.s1.T1", "tenant"),
])
def test_invalid_names_are_a_json_400(client: FlaskClient, path: str, field: str) -> None:
    resp = client.get(path)

    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "BadRequest"
    assert resp.get_json()["error"]["field"] == field
    assert resp.get_json()["error"]["message"]


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/nowhere", 404),
    ("GET", "/hosts", 404),
    ("GET", "/hosts/t1/s1/h/extra", 404),
    ("POST", "/hosts/t1/s1", 405),
    ("DELETE", "/healthz", 405),
])
def test_unknown_paths_and_methods_answer_json(client: FlaskClient, method: str, path: str, status: int) -> None:
    resp = client.open(path, method=method)

    assert resp.status_code == status
    assert resp.is_json
    assert set(resp.get_json()["error"]) == {"code", "message", "field"}


def test_resolve_gives_ip_and_ports(client: FlaskClient, register: Callable[..., dict[str, Any]]) -> None:
    register("t1", "s1", "t1-s1-master-0", role="master", port=40001)

    resp = client.get("/resolve/t1-s1-master-0.s1.t1")

    assert resp.status_code == 200
    assert resp.get_json() == {"ip": "127.0.0.1", "ports": {"spark": 40001, "ui": 40002}}


def test_healthz_is_ok_with_etcd_up(client: FlaskClient) -> None:
    resp = client.get("/healthz")

    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}


def test_without_etcd_healthz_and_lookups_are_503(keys: Keys) -> None:
    client = create_app(EtcdStore(f"http://127.0.0.1:{free_port()}", timeout_s=1.0), keys).test_client()

    assert client.get("/healthz").status_code == 503
    resp = client.get("/hosts/t1/s1")
    assert resp.status_code == 503
    assert resp.get_json()["error"]["code"] == "Unavailable"
    assert "Retry-After" in resp.headers


def test_metrics_count_lookups(client: FlaskClient, register: Callable[..., dict[str, Any]]) -> None:
    register("t1", "s1", "t1-s1-worker-0")
    client.get("/hosts/t1/s1")
    client.get("/hosts/t1/s1/t1-s1-worker-9")

    text = client.get("/metrics").get_data(as_text=True)

    assert 'spaas_registry_lookups_total{result="found"}' in text
    assert 'spaas_registry_lookups_total{result="not_found"}' in text


def test_a_host_whose_lease_expires_disappears(client: FlaskClient, register: Callable[..., dict[str, Any]]) -> None:
    register("t1", "s1", "t1-s1-worker-0")
    register("t1", "s1", "t1-s1-worker-1", ttl_s=1)  # etcd rounds a 1 s lease up to its minimum (about 2 s)
    assert len(client.get("/hosts/t1/s1").get_json()["hosts"]) == 2

    time.sleep(2.5)
    deadline = time.monotonic() + 5
    while client.get("/hosts/t1/s1/t1-s1-worker-1").status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.2)

    assert client.get("/hosts/t1/s1/t1-s1-worker-1").status_code == 404
    assert [h["host"] for h in client.get("/hosts/t1/s1").get_json()["hosts"]] == ["t1-s1-worker-0"]


# -- the real service -------------------------------------------------------------------
@pytest.fixture
def service(etcd_url: str, prefix: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, SPAAS_ETCD_URL=etcd_url, SPAAS_ETCD_PREFIX=prefix, SPAAS_PORT=str(port),
               SPAAS_SWEEP_S="0.5", PYTHONPATH=str(ROOT))
    with open(tmp_path / "registry.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "services.etcd_registry"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, tmp_path / "registry.log")
        yield url
    finally:
        proc.terminate()
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("the registry did not stop on SIGTERM")
    assert code == 0, (tmp_path / "registry.log").read_text()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the registry exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if requests.get(url + "/healthz", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    pytest.fail(f"the registry did not become healthy:\n{log.read_text()}")


def test_the_service_serves_lookups_and_sweeps(service: str, store: EtcdStore, keys: Keys) -> None:
    store.put(keys.sig_spec("t1", "s1"), {"name": "s1"})
    store.put(keys.host("t1", "s1", "t1-s1-worker-0"), host_record("t1-s1-worker-0"), lease=store.grant_lease(10))
    store.put(keys.host("t1", "s1", "t1-s1-worker-1"), host_record("t1-s1-worker-1"))  # no lease: stale

    resp = requests.get(service + "/healthz", timeout=5)
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}
    assert requests.get(service + "/hosts/t1/s1/t1-s1-worker-0", timeout=5).json()["ip"] == "127.0.0.1"
    assert requests.get(service + "/hosts/t1/BAD_NAME", timeout=5).status_code == 400

    deadline = time.monotonic() + 10
    while store.get(keys.host("t1", "s1", "t1-s1-worker-1")) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert store.get(keys.host("t1", "s1", "t1-s1-worker-1")) is None
    assert store.get(keys.host("t1", "s1", "t1-s1-worker-0")) is not None
