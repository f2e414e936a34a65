"""Fixtures for the REST API tests: settings pointing at the session's real etcd, Redis and slapd,
the Flask app built by `create_app`, authenticated (bootstrap admin), LDAP-logged-in and anonymous
test clients, and a tenant / SIG to work in. No builder, scaler or Spark runs: these tests check
the API contract only."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from spaas.cache import CachedStore
from spaas.etcd import EtcdStore
from spaas.logstream import RedisLogStreams
from spaas.settings import ApiSettings
from spaas.store import Entry

from services.api.app import create_app
from tests.ldap_fixture import Ldap

ADMIN_TOKEN = "test-admin-token"
SPARK_VERSIONS = ("3.5.9", "4.1.4")
MAX_UPLOAD_BYTES = 1_000_000
TENANT = "acme"
SIG = "s1"


CLUSTER_ADMIN_GROUP = "platform-ops"


@pytest.fixture(autouse=True)
def _stop_caches() -> Iterator[None]:
    """Stop the watch-backed caches of every app a test built (their threads and etcd watches)."""
    yield
    for cached in list(CachedStore.live):
        cached.stop()


class SettlingStore(EtcdStore):
    """The tests' own etcd client (a scaler, an agent, a hand edit: another process). The API reads
    such writes from its watch-backed caches within the watch latency, so each write here returns
    once every running API cache has applied it: the next request of the test sees it."""

    def _settle(self, key: str) -> None:
        revision = self.last_revision()
        for cached in list(CachedStore.live):
            for cache in cached.caches:
                if cache.covers(key) or cache.prefix.startswith(key):
                    assert cache.wait_for(revision, 10.0), f"the API's cache did not reach revision {revision}"

    def create(self, key: str, value: dict[str, Any], *, lease: int = 0) -> Entry:
        entry = super().create(key, value, lease=lease)
        self._settle(key)
        return entry

    def update(self, key: str, value: dict[str, Any], *, mod_revision: int, lease: int = 0) -> Entry:
        entry = super().update(key, value, mod_revision=mod_revision, lease=lease)
        self._settle(key)
        return entry

    def put(self, key: str, value: dict[str, Any], *, lease: int = 0) -> Entry:
        entry = super().put(key, value, lease=lease)
        self._settle(key)
        return entry

    def delete(self, key: str, *, mod_revision: int | None = None) -> bool:
        deleted = super().delete(key, mod_revision=mod_revision)
        if deleted:
            self._settle(key)
        return deleted

    def delete_prefix(self, prefix: str) -> int:
        n = super().delete_prefix(prefix)
        if n:
            self._settle(prefix)
        return n


@pytest.fixture
def store(etcd_url: str) -> EtcdStore:
    return SettlingStore(etcd_url, timeout_s=5.0)


@pytest.fixture
def settings(etcd_url: str, redis_url: str, tmp_path: Path, prefix: str, ldap_server: Ldap) -> ApiSettings:
    return ApiSettings(etcd_url=etcd_url, redis_url=redis_url, state_dir=tmp_path, etcd_prefix=prefix,
                       admin_token=ADMIN_TOKEN, spark_versions=SPARK_VERSIONS, max_upload_bytes=MAX_UPLOAD_BYTES,
                       ldap_url=ldap_server.url, ldap_base_dn=ldap_server.base_dn, ldap_timeout_s=3.0,
                       cluster_admin_groups=(CLUSTER_ADMIN_GROUP,), follow_max_s=1.0,
                       # Test platforms choose: a SIG without `history` runs no history server here.
                       history_default=False)


def login(app: Flask, user: str, password: str) -> str:
    """Log an LDAP user in through the API; returns the bearer token."""
    resp = app.test_client().post("/api/v1/login", json={"username": user, "password": password})
    assert resp.status_code == 200, resp.get_json()
    return str(resp.get_json()["token"])


def client_for(app: Flask, token: str) -> FlaskClient:
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return c


@pytest.fixture
def logs(redis_url: str, prefix: str) -> RedisLogStreams:
    """Log streams under a per-test Redis key prefix, so build logs of one test never leak into another."""
    return RedisLogStreams(redis_url, prefix=f"spaas:log{prefix}:")


@pytest.fixture
def app(settings: ApiSettings, logs: RedisLogStreams) -> Flask:
    return create_app(settings, logs=logs)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client that sends the admin bearer token with every request."""
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {ADMIN_TOKEN}"
    return c


@pytest.fixture
def anon(app: Flask) -> FlaskClient:
    """A test client that sends no credentials."""
    return app.test_client()


def error_of(body: Any) -> dict[str, Any]:
    """The `error` object of an error response, asserting the documented shape."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], error
    assert isinstance(error.get("message"), str) and error["message"], error
    return dict(error)


def sig_body(name: str = SIG, **fields: Any) -> dict[str, Any]:
    return {"name": name, "spark_version": SPARK_VERSIONS[0], **fields}


@pytest.fixture
def tenant(client: FlaskClient) -> str:
    resp = client.post("/api/v1/tenants", json={"name": TENANT})
    assert resp.status_code == 201, resp.get_json()
    return TENANT


@pytest.fixture
def sig(client: FlaskClient, tenant: str) -> str:
    resp = client.post(f"/api/v1/tenants/{tenant}/sigs", json=sig_body())
    assert resp.status_code == 202, resp.get_json()
    return SIG


def serve_http(app: Flask) -> Iterator[str]:
    """The app on a real HTTP server on a free loopback port, for clients that speak HTTP (the SDK,
    the CLI, the integrations worker): yields its base URL, shuts it down after."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
