"""The embedded dev stack: local Redis, etcd and every spaas service as processes.

Used by `spaas up` / `spaas down` and by the test fixtures, so the tests start the platform the
way an operator does. Every process runs in its own session with its output in
`STATE/logs/<name>.log`; `STATE/stack.json` records the pids so `down` can stop them all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent

SERVICES = ("etcd_registry", "builder", "scaler", "api", "proxy", "integrations")
# Services whose module is not `services.<name>` (the integrations worker is part of the API service).
MODULES = {"integrations": "services.api.integrations"}

MISSING_HINT = {
    "redis-server": "apt-get install redis-server",
    "etcd": "apt-get install etcd-server",
    "java": "apt-get install openjdk-17-jre-headless",
}


class StackError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def missing_programs() -> list[str]:
    """Messages for each required program that is not on PATH."""
    return [f"{prog} not found: install it with `{hint}`" for prog, hint in MISSING_HINT.items() if shutil.which(prog) is None]


def _spawn(argv: list[str], log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )


def _wait(check: object, what: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what} exited with code {proc.returncode} while starting")
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise StackError(f"{what} did not become ready within {timeout_s:.0f}s")


def start_redis(data_dir: Path, port: int, log_path: Path, *, password: str = "") -> subprocess.Popen[bytes]:
    """`password`: require it (the default user's); SIG users are then made by spaas.redisauth."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # On the command line (visible in ps): for tests and single-user machines; compose uses its own.
    auth = ["--requirepass", password] if password else []
    proc = _spawn(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir),
         "--appendonly", "yes", "--save", "", "--protected-mode", "yes", "--daemonize", "no", *auth],
        log_path,
    )

    def ping() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))

    _wait(ping, f"redis-server on port {port}", 20, proc)
    return proc


def start_etcd(data_dir: Path, port: int, peer_port: int, log_path: Path) -> subprocess.Popen[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    peer = f"http://127.0.0.1:{peer_port}"
    proc = _spawn(
        ["etcd", "--name", "spaas", "--data-dir", str(data_dir),
         "--listen-client-urls", url, "--advertise-client-urls", url,
         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", f"spaas={peer}", "--auto-compaction-retention", "1h",
         "--log-level", "warn"],
        log_path,
    )
    _wait(lambda: requests.get(url + "/health", timeout=1).json().get("health") == "true", f"etcd on port {port}", 30, proc)
    return proc


def stop_pid(pid: int, *, grace_s: float = 10.0) -> None:
    """SIGTERM the process group of `pid`, then SIGKILL what is left after `grace_s`."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        _reap()
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


@dataclass
class Stack:
    """One embedded platform rooted at `state_dir`."""

    state_dir: Path
    api_port: int = 8080
    registry_port: int = 8081
    redis_port: int = 0
    etcd_port: int = 0
    spark_versions: tuple[str, ...] = ()
    layers_dir: Path | None = None
    # services/proxy (0 = pick a free port; `spaas up` passes SPAAS_PROXY_PORT, default 8090).
    proxy_port: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    # /healthz and /metrics of the services without an HTTP API (builder, scaler).
    health_ports: dict[str, int] = field(default_factory=dict)
    # -- supervision (spaas/supervisor.py): its pid, and per component {count, last_exit, at}.
    supervisor: int = 0
    restarts: dict[str, dict[str, object]] = field(default_factory=dict)
    etcd_peer_port: int = 0

    @property
    def record(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def proxy_tls(self) -> bool:
        return bool(self.extra_env.get("SPAAS_PROXY_TLS_CERT") or os.environ.get("SPAAS_PROXY_TLS_CERT"))

    @property
    def proxy_url(self) -> str:
        """Where users open the API and the Spark UIs."""
        return f"{'https' if self.proxy_tls else 'http'}://127.0.0.1:{self.proxy_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def token_file(self) -> Path:
        return self.state_dir / "admin-token"

    def env(self) -> dict[str, str]:
        # The operator's SPAAS_* settings (LDAP, cluster admins, ...) reach every service; the
        # stack's own wiring below wins over them.
        env = dict(os.environ)
        env.update(
            SPAAS_STATE_DIR=str(self.state_dir),
            SPAAS_ETCD_URL=self.etcd_url,
            SPAAS_REDIS_URL=self.redis_url,
            SPAAS_PORT=str(self.api_port),
            SPAAS_ADMIN_TOKEN_FILE=str(self.token_file),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
            PYTHONUNBUFFERED="1",
        )
        if self.proxy_port and "SPAAS_PROXY_PUBLIC_URL" not in os.environ:
            env["SPAAS_PROXY_PUBLIC_URL"] = self.proxy_url
        # The proxy reaches the API over loopback: the API believes its X-Forwarded-For (spaas/forwarded.py).
        env.setdefault("SPAAS_TRUSTED_PROXIES", "127.0.0.1/32,::1/128")
        if self.spark_versions:
            env["SPAAS_SPARK_VERSIONS"] = ",".join(self.spark_versions)
        if self.layers_dir:
            env["SPAAS_LAYERS_DIR"] = str(self.layers_dir)
        env.update(self.extra_env)
        return env

    def _save(self) -> None:
        # Atomic: `spaas status` and `spaas up` read it while the supervisor writes it.
        tmp = self.record.with_name(self.record.name + ".tmp")
        tmp.write_text(json.dumps({
            "pids": self.pids, "api_port": self.api_port, "registry_port": self.registry_port,
            "redis_port": self.redis_port, "etcd_port": self.etcd_port, "health_ports": self.health_ports,
            "supervisor": self.supervisor, "restarts": self.restarts, "etcd_peer_port": self.etcd_peer_port,
            "proxy_port": self.proxy_port,
        }, indent=2))
        os.replace(tmp, self.record)

    @classmethod
    def load(cls, state_dir: Path) -> Stack | None:
        path = state_dir / "stack.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(state_dir=state_dir, api_port=data["api_port"], registry_port=data["registry_port"],
                   redis_port=data["redis_port"], etcd_port=data["etcd_port"], pids=data["pids"],
                   health_ports=data.get("health_ports", {}), supervisor=int(data.get("supervisor", 0)),
                   restarts=data.get("restarts", {}), etcd_peer_port=int(data.get("etcd_peer_port", 0)),
                   proxy_port=data.get("proxy_port", 0))

    def start_data_stores(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.start_component("redis")
        self.start_component("etcd")

    def start_component(self, name: str, *, wait: bool = True) -> subprocess.Popen[bytes]:
        """(Re)start one data store or service on its recorded ports and wait until it answers
        (a service: `wait` False returns once it is spawned; data stores always wait, they need
        nothing else to come up)."""
        logs = self.state_dir / "logs"
        if name == "redis":
            self.redis_port = self.redis_port or free_port()
            proc = start_redis(self.state_dir / "redis", self.redis_port, logs / "redis.log")
        elif name == "etcd":
            self.etcd_port = self.etcd_port or free_port()
            # The same peer port on every start: etcd keeps its member's peer URL in its data.
            self.etcd_peer_port = self.etcd_peer_port or free_port()
            proc = start_etcd(self.state_dir / "etcd", self.etcd_port, self.etcd_peer_port, logs / "etcd.log")
        else:
            return self.start_service(name, wait=wait)
        self.pids[name] = proc.pid
        self._save()
        return proc

    def start_service(self, name: str, *, wait: bool = True) -> subprocess.Popen[bytes]:
        env = self.env()
        if name == "etcd_registry":
            env["SPAAS_PORT"] = str(self.registry_port)
        if name == "proxy":
            env["SPAAS_PORT"] = str(self.proxy_port)
            env["SPAAS_API_URL"] = self.api_url
        if name == "integrations":
            env["SPAAS_API_URL"] = self.api_url
        if name in ("builder", "scaler", "proxy", "integrations"):
            self.health_ports.setdefault(name, free_port())
            env["SPAAS_HEALTH_PORT"] = str(self.health_ports[name])
        proc = _spawn([sys.executable, "-m", MODULES.get(name, f"services.{name}")], self.state_dir / "logs" / f"{name}.log", env, cwd=ROOT)
        self.pids[name] = proc.pid
        self._save()
        if not wait:
            return proc
        if name == "api":
            _wait(lambda: requests.get(self.api_url + "/api/v1/healthz", timeout=1).ok, "the API", 60, proc)
        elif name == "proxy":
            _wait(lambda: requests.get(self.proxy_url + "/healthz", timeout=1, verify=False).ok, "the proxy", 60, proc)
        elif name in self.health_ports:
            port = self.health_ports[name]
            _wait(lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok, f"the {name}", 60, proc)
        elif name == "etcd_registry":
            _wait(lambda: requests.get(f"http://127.0.0.1:{self.registry_port}/healthz", timeout=1).ok, "the registry", 60, proc)
        return proc

    def stop_service(self, name: str, *, sig: int = signal.SIGTERM) -> None:
        pid = self.pids.pop(name, None)
        if pid is not None:
            if sig == signal.SIGKILL:
                try:
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _reap()
            else:
                stop_pid(pid)
        self._save()

    def up(self) -> None:
        problems = missing_programs()
        if problems:
            raise StackError("\n".join(problems))
        self.api_port = self.api_port or free_port()
        self.registry_port = self.registry_port or free_port()
        self.proxy_port = self.proxy_port or free_port()
        self.start_data_stores()
        for name in SERVICES:
            self.start_service(name)

    def admin_token(self) -> str:
        return self.token_file.read_text().strip()

    def down(self) -> None:
        """Stop the supervisor (so nothing is restarted), services, every SIG container, the data stores."""
        if self.supervisor:
            stop_pid(self.supervisor)
            latest = Stack.load(self.state_dir)  # what it started since this record was read
            if latest is not None:
                self.pids = latest.pids
            self.supervisor = 0
        for name in reversed(SERVICES):
            self.stop_service(name)
        from spaas.runtimes.process import ProcessRuntime  # the runtime knows its containers

        ProcessRuntime(self.state_dir).stop_all()
        for name in ("etcd", "redis"):
            self.stop_service(name)
        self.record.unlink(missing_ok=True)
