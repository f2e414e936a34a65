"""Runs one Spark daemon (master or worker) in the foreground and knows when it is ready."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

log = logging.getLogger(__name__)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The agent's environment for its children: container markers stay (so the runtime finds
    them), the leader marker does not (only the agent leads its container)."""
    env = {k: v for k, v in os.environ.items() if k != "SPAAS_LEADER"}
    env.update(extra or {})
    return env


class SparkDaemon:
    def __init__(self, argv: list[str], *, env: dict[str, str], log_path: Path, name: str, ui_port: int = 0,
                 cwd: Path | None = None) -> None:
        self.argv = argv
        self._cwd = cwd
        self.ui_port = ui_port
        self._env = env
        self._log_path = log_path
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_path, "ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self._env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self._cwd)
        log.info("started Spark %s (pid %d)", self.name, self.proc.pid)

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, grace_s: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def master_json(ui_url: str, timeout_s: float = 2.0) -> dict[str, Any] | None:
    """The standalone master's JSON status page, or None if it does not answer."""
    try:
        resp = requests.get(ui_url.rstrip("/") + "/json/", timeout=timeout_s)
        return resp.json() if resp.ok else None
    except (requests.RequestException, ValueError):
        return None


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True once something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def worker_alive(status: dict[str, Any] | None, host: str, port: int) -> bool:
    if not status:
        return False
    return any(w.get("host") == host and int(w.get("port", -1)) == port and w.get("state") == "ALIVE"
               for w in status.get("workers", []))


def wait_until(check: Any, timeout_s: float, *, interval_s: float = 0.25, stop: Any = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            return False
        if check():
            return True
        time.sleep(interval_s)
    return False
