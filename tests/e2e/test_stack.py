"""`spaas up` / `spaas down` as an operator runs them: up prints the URL and token, down leaves
no process behind (services, Redis, etcd, and every SIG's Spark processes)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from spaas.runtimes.process import stack_id

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def spaas(*args: str, state: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPAAS_")}
    base.update(SPAAS_STATE_DIR=str(state), PYTHONPATH=str(ROOT),
                SPAAS_LAYERS_DIR=str(Path.home() / ".cache" / "spaas" / "layers"), SPAAS_REGISTRY_PORT="0",
                SPAAS_HISTORY_DEFAULT="false")  # no history server per SIG unless a spec asks
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "spaas", *args], capture_output=True, text=True, env=base,
                          timeout=300, cwd=ROOT)


def stack_processes(state: Path) -> list[int]:
    marker = f"SPAAS_STACK={stack_id(state)}".encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if marker in Path(f"/proc/{name}/environ").read_bytes():
                    found.append(int(name))
            except OSError:
                pass
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        return False


def test_up_then_down_leaves_no_process_behind(tmp_path: Path) -> None:
    state = tmp_path / "state"
    up = spaas("up", "--port", "0", "--proxy-port", "0", state=state)
    assert up.returncode == 0, up.stderr
    api = re.search(r"API:\s+(\S+)", up.stdout).group(1)
    proxy = re.search(r"proxy:\s+(\S+)/", up.stdout).group(1)
    assert requests.get(f"{proxy}/healthz", timeout=5).json() == {"status": "ok"}
    token = re.search(r"admin token:\s+(\S+)", up.stdout).group(1)
    assert (state / "admin-token").read_text().strip() == token
    assert oct((state / "admin-token").stat().st_mode & 0o777) == "0o600"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    assert http.post(f"{api}/tenants", json={"name": "ops"}).status_code == 201
    assert http.post(f"{api}/tenants/ops/sigs", json={"name": "s", "spark_version": "3.5.9"}).status_code == 202
    deadline = time.monotonic() + 240
    while http.get(f"{api}/tenants/ops/sigs/s").json()["status"]["phase"] != "READY":
        assert time.monotonic() < deadline, "SIG never became READY"
        time.sleep(1)
    assert stack_processes(state), "the SIG's processes carry the stack marker"
    services = list(json.loads((state / "stack.json").read_text())["pids"].values())
    assert len(services) == 8  # redis, etcd, registry, builder, scaler, api, proxy, integrations
    assert spaas("status", state=state).returncode == 0

    down = spaas("down", state=state)
    assert down.returncode == 0, down.stderr
    time.sleep(1)
    assert [p for p in stack_processes(state) if alive(p)] == []
    assert [p for p in services if alive(p)] == []
    assert spaas("status", state=state).returncode == 1


def test_up_names_the_debian_package_of_a_missing_program(tmp_path: Path) -> None:
    python_dir = str(Path(sys.executable).parent)
    result = spaas("up", "--port", "0", state=tmp_path / "state", env={"PATH": python_dir})
    assert result.returncode == 1
    assert "apt-get install redis-server" in result.stderr
    assert "apt-get install etcd-server" in result.stderr
