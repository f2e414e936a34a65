"""Fixtures: real Redis and etcd on free loopback ports (one each per test session), and a
fresh etcd key prefix per test so tests never see each other's keys."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import requests

from spaas.etcd import EtcdStore
from spaas.etcdauth import enable_auth
from spaas.keys import Keys
from spaas.stack import free_port, start_etcd, start_redis, stop_pid


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (it runs on its own hook)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Lanes for `pytest -n N --dist loadgroup` (./dev test with SPAAS_TEST_WORKERS): every Docker
    test in one lane (the compose stack has fixed names, and images are built under fixed tags);
    every other module whole in one lane, so its module and session fixtures (a platform, a
    SIG, a browser) are set up once, not once per worker. Without xdist this changes nothing."""
    for item in items:
        lane = "docker" if item.get_closest_marker("docker") else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(lane))


def _require(program: str, package: str) -> None:
    if shutil.which(program) is None:
        pytest.fail(f"{program} is not installed (apt-get install {package}); .ci/run installs it")


@pytest.fixture(scope="session")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def redis_url(servers_dir: Path) -> Iterator[str]:
    _require("redis-server", "redis-server")
    port = free_port()
    proc = start_redis(servers_dir / "redis", port, servers_dir / "redis.log")
    yield f"redis://127.0.0.1:{port}/0"
    stop_pid(proc.pid)


@pytest.fixture(scope="session")
def etcd_url(servers_dir: Path) -> Iterator[str]:
    _require("etcd", "etcd-server")
    port = free_port()
    proc = start_etcd(servers_dir / "etcd", port, free_port(), servers_dir / "etcd.log")
    yield f"http://127.0.0.1:{port}"
    stop_pid(proc.pid)


AUTH_ETCD_ROOT_PASSWORD = "test-root-" + uuid.uuid4().hex
# Short-lived simple tokens, so tests (and every call they make) meet expired tokens.
AUTH_ETCD_TOKEN_TTL_S = 2


@pytest.fixture(scope="session")
def auth_etcd_url(servers_dir: Path) -> Iterator[str]:
    """A second etcd, with authentication enabled by `spaas.etcdauth.enable_auth` (user root,
    password AUTH_ETCD_ROOT_PASSWORD) and tokens that expire after 2 s."""
    _require("etcd", "etcd-server")
    port, peer = free_port(), free_port()
    url, peer_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
    (servers_dir / "etcd-auth").mkdir(parents=True, exist_ok=True)
    with open(servers_dir / "etcd-auth.log", "ab") as log:
        proc = subprocess.Popen(
            ["etcd", "--name", "auth", "--data-dir", str(servers_dir / "etcd-auth"), "--listen-client-urls", url,
             "--advertise-client-urls", url, "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls",
             peer_url, "--initial-cluster", f"auth={peer_url}", "--auth-token-ttl", str(AUTH_ETCD_TOKEN_TTL_S),
             "--log-level", "warn"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/health", timeout=1).json().get("health") == "true":
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"etcd with auth did not start; see {servers_dir / 'etcd-auth.log'}")
            time.sleep(0.1)
        assert enable_auth(url, AUTH_ETCD_ROOT_PASSWORD) is True
        yield url
    finally:
        stop_pid(proc.pid)


@pytest.fixture
def root_store(auth_etcd_url: str) -> EtcdStore:
    """The platform's store on the authenticated etcd (user root)."""
    return EtcdStore(auth_etcd_url, timeout_s=5.0, user="root", password=AUTH_ETCD_ROOT_PASSWORD)


@pytest.fixture
def prefix() -> str:
    return f"/test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def keys(prefix: str) -> Keys:
    return Keys(prefix)


@pytest.fixture
def store(etcd_url: str) -> EtcdStore:
    return EtcdStore(etcd_url, timeout_s=5.0)


@pytest.fixture
def shared_layers() -> Path:
    """Spark layers are content-addressed (Spark version, Python, recipe), so tests share one
    cache across runs instead of reinstalling pyspark for every test."""
    path = Path(os.environ.get("SPAAS_TEST_LAYERS", Path.home() / ".cache" / "spaas" / "layers"))
    path.mkdir(parents=True, exist_ok=True)
    return path


# A real slapd (session-scoped), for LDAP login tests; see tests/ldap_fixture.py.
from tests.ldap_fixture import ldap_server  # noqa: E402,F401
