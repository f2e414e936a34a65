"""`spaas up` supervises the embedded stack: a component killed with SIGKILL comes back by itself
(no command), `spaas status` shows the restart, and `spaas up` on a partly dead stack repairs it."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.test_stack import alive, spaas

pytestmark = pytest.mark.e2e


def record(state: Path) -> dict[str, Any]:
    return dict(json.loads((state / "stack.json").read_text()))


def wait(what: str, check: Any, timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            result = check()
        except (OSError, ValueError, KeyError, requests.RequestException):
            result = None
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    state = tmp_path_factory.mktemp("supervised") / "state"
    up = spaas("up", "--port", "0", "--proxy-port", "0", state=state, env={"SPAAS_RESYNC_S": "1"})
    assert up.returncode == 0, up.stderr
    api = re.search(r"API:\s+(\S+)", up.stdout).group(1)  # type: ignore[union-attr]
    token = re.search(r"admin token:\s+(\S+)", up.stdout).group(1)  # type: ignore[union-attr]
    try:
        yield state, api, token
    finally:
        spaas("down", state=state)


def healthy(state: Path, name: str, api: str) -> bool:
    rec = record(state)
    if name == "api":
        return requests.get(f"{api}/healthz", timeout=2).ok
    if name in rec["health_ports"]:
        return requests.get(f"http://127.0.0.1:{rec['health_ports'][name]}/healthz", timeout=2).ok
    if name == "etcd_registry":
        return requests.get(f"http://127.0.0.1:{rec['registry_port']}/healthz", timeout=2).ok
    return True


@pytest.mark.parametrize("name", ["api", "builder", "scaler", "etcd_registry", "redis", "etcd"])
def test_a_killed_component_is_restarted_without_any_command_and_status_shows_it(
        stack: tuple[Path, str, str], name: str) -> None:
    state, api, token = stack
    before = record(state)
    pid = before["pids"][name]
    count = int(before["restarts"].get(name, {}).get("count", 0))
    os.kill(pid, signal.SIGKILL)
    new = wait(f"{name} restarted", lambda: (p := record(state)["pids"][name]) != pid and alive(p) and p)
    assert record(state)["restarts"][name]["count"] == count + 1
    assert record(state)["restarts"][name]["last_exit"] == "killed by signal 9"
    wait(f"{name} healthy again", lambda: healthy(state, name, api))
    status = spaas("status", state=state)
    assert status.returncode == 0
    line = next(line for line in status.stdout.splitlines() if line.startswith(name + " "))
    assert f"pid {new}" in line and "running" in line and f"restarts {count + 1} (last: killed by signal 9)" in line
    # The platform works after the restart: an authenticated write through the API (etcd + Redis).
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    tenant = f"sup{name.replace('_', '')[:10]}"
    wait("the API writes again", lambda: http.post(f"{api}/tenants", json={"name": tenant}).status_code in (201, 409))


def test_a_restart_waiting_on_a_dead_dependency_does_not_hold_up_that_dependency(
        stack: tuple[Path, str, str]) -> None:
    """The proxy is restarted, then etcd dies while the new proxy starts (it cannot be ready
    without etcd): etcd must come back at once, not after the supervisor gave up waiting for the
    proxy (it once waited 60 s, etcd down all along)."""
    state, api, _ = stack
    before = record(state)
    os.kill(before["pids"]["proxy"], signal.SIGKILL)
    wait("proxy respawned", lambda: (p := record(state)["pids"]["proxy"]) != before["pids"]["proxy"] and alive(p))
    etcd = record(state)["pids"]["etcd"]
    os.kill(etcd, signal.SIGKILL)
    wait("etcd restarted", lambda: (p := record(state)["pids"]["etcd"]) != etcd and alive(p), timeout_s=20)
    wait("proxy healthy again", lambda: healthy(state, "proxy", api))
    assert requests.get(f"{api}/healthz", timeout=5).ok


def test_up_on_a_partly_dead_stack_repairs_it(stack: tuple[Path, str, str]) -> None:
    state, api, _ = stack
    before = record(state)
    for pid in (before["supervisor"], before["pids"]["scaler"], before["pids"]["api"]):
        os.kill(pid, signal.SIGKILL)
    wait("them gone", lambda: not alive(before["pids"]["api"]) and not alive(before["supervisor"]))
    up = spaas("up", state=state)
    assert up.returncode == 0, up.stderr
    assert "repairing the stack" in up.stdout and "scaler, api not running" in up.stdout
    after = record(state)
    assert alive(after["supervisor"]) and after["supervisor"] != before["supervisor"]
    assert all(alive(pid) for pid in after["pids"].values()), after
    assert after["pids"]["redis"] == before["pids"]["redis"]  # what still ran was adopted, not restarted
    assert requests.get(f"{api}/healthz", timeout=5).ok
    # and the new supervisor heals, too
    os.kill(after["pids"]["builder"], signal.SIGKILL)
    wait("builder restarted", lambda: alive(record(state)["pids"]["builder"]) and
         record(state)["pids"]["builder"] != after["pids"]["builder"])
