"""A real proxy process over real etcd, routing to real HTTP servers (tests/proxy/upstream.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from spaas.auth import Identity, Tokens, hash_token
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.stack import ROOT, free_port, stop_pid

from tests.proxy.upstream import Upstreams

ADMIN_TOKEN = "spaas_test-admin-token"


@dataclass
class World:
    keys: Keys
    store: EtcdStore
    api_port: int
    master_port: int
    worker_port: int
    other_port: int
    alice: str  # user in acme
    bob: str  # user in other
    admin: str = ADMIN_TOKEN


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    ups = Upstreams(4).start()
    yield ups
    ups.stop()


@pytest.fixture(scope="module")
def world(etcd_url: str, upstreams: Upstreams) -> World:
    import uuid
    keys = Keys(f"/proxytest-{uuid.uuid4().hex[:8]}")
    store = EtcdStore(etcd_url, timeout_s=5.0)
    api, master, worker, other = upstreams.ports
    store.put(keys.bootstrap_token(), {"hash": hash_token(ADMIN_TOKEN)})
    for tenant, sig in (("acme", "etl"), ("other", "x"), ("acme", "idle")):
        store.put(keys.tenant(tenant), {"name": tenant})
        store.put(keys.sig_spec(tenant, sig), {"spec": {"name": sig}, "generation": 1})
    store.put(keys.member("acme", "user", "alice"), {"roles": ["user"]})
    store.put(keys.member("other", "user", "bob"), {"roles": ["user"]})
    store.put(keys.route("acme", "etl", "acme-etl-master-0"),
              {"role": "master", "ready": True, "ip": "127.0.0.1", "ports": {"ui": master}})
    store.put(keys.route("acme", "etl", "acme-etl-worker-0"),
              {"role": "worker", "ready": True, "ip": "127.0.0.1", "ports": {"ui": worker}})
    store.put(keys.route("other", "x", "other-x-master-0"),
              {"role": "master", "ready": True, "ip": "127.0.0.1", "ports": {"ui": other}})
    tokens = Tokens(store, keys)
    alice = tokens.issue(Identity("alice"), kind="api", ttl_s=3600).token
    bob = tokens.issue(Identity("bob"), kind="api", ttl_s=3600).token
    return World(keys, store, api, master, worker, other, alice, bob)


def start_proxy(world: World, etcd_url: str, log: Path, **extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ, SPAAS_ETCD_URL=etcd_url, SPAAS_ETCD_PREFIX=world.keys.prefix, SPAAS_PORT=str(port),
               SPAAS_API_URL=f"http://127.0.0.1:{world.api_port}", SPAAS_REFRESH_S="0.2",
               PYTHONPATH=str(ROOT), **extra)
    scheme = "https" if extra.get("SPAAS_PROXY_TLS_CERT") else "http"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.proxy"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=ROOT)
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(url + "/healthz", timeout=1, verify=False).ok:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_pid(proc.pid)
            pytest.fail(f"the proxy did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    return proc, url


@pytest.fixture(scope="module")
def proxy(world: World, etcd_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_proxy(world, etcd_url, tmp_path_factory.mktemp("proxy") / "proxy.log")
    yield url
    stop_pid(proc.pid)
