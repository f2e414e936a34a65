"""The embedded platform, started once for the end-to-end tests exactly as `spaas up` does."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from spaas.client import ApiError, Client
from spaas.stack import Stack, free_port

TERMINAL = {"FINISHED", "FAILED", "KILLED"}


class Api(Client):
    """A tenant's-eye view of the REST API: the SDK (`spaas.client.Client`) plus the waits the tests
    share, and raw `call`/`ok` for the tests that check HTTP itself (status codes, headers, bad input)."""

    def __init__(self, base: str, token: str) -> None:
        super().__init__(base, token, timeout=30)
        self.base = self.api
        # The raw session sends only the token (no SDK headers), so raw checks see the API as a script does.
        self.raw = requests.Session()
        self.raw.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.raw.request(method, self.base + path, **kwargs)

    def ok(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        resp = self.call(method, path, **kwargs)
        assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json()

    def wait(self, what: str, fn: Callable[[], Any], timeout_s: float = 240, interval_s: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(interval_s)
        raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}; last seen: {last}")

    def sig(self, tenant: str, sig: str) -> dict[str, Any]:
        return dict(self.get_sig(tenant, sig))

    def wait_phase(self, tenant: str, sig: str, phase: str, timeout_s: float = 300) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            view = self.sig(tenant, sig)
            if view["status"]["phase"] == "FAILED" and phase != "FAILED":
                raise AssertionError(f"SIG {tenant}/{sig} FAILED: {view['status']}")
            return view if view["status"]["phase"] == phase else None

        return self.wait(f"{tenant}/{sig} to be {phase}", check, timeout_s)

    def wait_gone(self, tenant: str, sig: str, timeout_s: float = 120) -> None:
        def gone() -> bool:
            try:
                self.get_sig(tenant, sig)
            except ApiError as exc:
                return exc.status == 404
            return False

        self.wait(f"{tenant}/{sig} to be gone", gone, timeout_s)

    def upload(self, tenant: str, sig: str, name: str, text: str) -> str:
        return str(self.upload_file(tenant, sig, io.BytesIO(text.encode()), name=name)["path"])

    def submit(self, tenant: str, sig: str, **app: Any) -> str:
        return str(self.submit_app(tenant, sig, app)["id"])

    def app(self, tenant: str, sig: str, app_id: str) -> dict[str, Any]:
        return dict(self.get_app(tenant, sig, app_id))

    def wait_app(self, tenant: str, sig: str, app_id: str, states: set[str] = TERMINAL,
                 timeout_s: float = 240) -> dict[str, Any]:
        return self.wait(f"app {app_id} in {states}",
                         lambda: (a := self.app(tenant, sig, app_id)) and a["state"] in states and a, timeout_s)

    def log(self, tenant: str, sig: str, app_id: str) -> list[str]:
        return list(self.app_log(tenant, sig, app_id, size=100000)["log"])


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("platform")
    layers = Path.home() / ".cache" / "spaas" / "layers"
    stack = Stack(state_dir=state, api_port=free_port(), registry_port=free_port(), layers_dir=layers,
                  extra_env={"SPAAS_RESYNC_S": "1",
                             # A SIG whose spec does not ask runs no history server here (2 cores in CI).
                             "SPAAS_HISTORY_DEFAULT": "false"})
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


def admin_client(stack: Stack, *, url: str | None = None) -> Api:
    """The admin's client of a started stack (at `url`, default its API), once `spaas up` has
    written the admin token file."""
    deadline = time.monotonic() + 30
    while not stack.token_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return Api(url or stack.api_url, stack.admin_token())


@pytest.fixture(scope="session")
def api(platform: Stack) -> Api:
    return admin_client(platform)


@pytest.fixture
def tenant(api: Api, request: pytest.FixtureRequest) -> str:
    name = "t" + str(abs(hash(request.node.name)) % 10**8)
    api.create_tenant(name)
    return name


JOB = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("e2e").getOrCreate()
total = spark.sparkContext.parallelize(range(1, 1001), 4).map(lambda x: x * 2).sum()
print(f"RESULT total={total} spark.version={spark.version} args={sys.argv[1:]}")
spark.stop()
"""
