"""Process runtime: each container is a process group running the agent, on this machine.

There are no records to go stale: like `docker ps`, `list()` reads the truth from `/proc`.
Warm pool (services/scaler/warmpool.py): a pooled container runs with `SPAAS_POOL=<skeleton>`
and no tenant, in `STATE/pool/<skeleton>/<name>`; `list()` leaves it out and `pooled()` lists it.
At a claim `adopt()` records its new identity (an environment cannot change under a running
process) in `STATE/runtime-aliases.json`, the one file of labels this runtime keeps; from then on
every method sees it under the SIG's container name.
Every process a container starts (agent, Spark daemon, drivers, executors) inherits the
environment markers `SPAAS_STACK` and `SPAAS_CONTAINER`, so `stop()` finds and ends all of them
even when they left the container's process group. The group leader (pid == pgid) is the agent.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from spaas import safefs
from spaas.runtimes.base import Address, Container, ContainerSpec

log = logging.getLogger(__name__)

# Processes of containers by container name: (pid, its SPAAS_* environment).
Members = dict[str, list[tuple[int, dict[str, str]]]]
Containers = list[Container]

ROOT = Path(__file__).resolve().parent.parent.parent


def stack_id(state_dir: Path) -> str:
    """Identifies one platform's containers among others on the same machine."""
    return hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:12]


def _environ(pid: int) -> dict[str, str] | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key.startswith(b"SPAAS_"):
            env[key.decode()] = value.decode(errors="replace")
    return env


def _alive(pid: int) -> bool:
    """True unless the process is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


@functools.cache
def _boot_time() -> float:
    """When the machine booted (wall clock), once per process so that start times read again
    compare equal."""
    return time.time() - float(Path("/proc/uptime").read_text().split()[0])


def _started_at(pid: int) -> float:
    """When the process started (wall clock, to about 10 ms), from its start time in clock
    ticks after boot (`/proc/<pid>/stat` field 22); 0.0 if it cannot be read."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


LOOPBACK = "127.0.0.1"
TCP_LISTEN = "0A"


def _hex_ip(text: str) -> str:
    """An address of /proc/net/tcp{,6}: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(text)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def parse_listening(text: str) -> dict[int, int]:
    """Socket inode -> port of the TCP sockets in LISTEN reachable on 127.0.0.1 (bound to a
    loopback or wildcard address), from the text of /proc/net/tcp or tcp6. Pure."""
    out: dict[int, int] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != TCP_LISTEN:
            continue
        host, _, port = fields[1].partition(":")
        try:
            ip = ipaddress.ip_address(_hex_ip(host))
        except ValueError:
            continue
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if ip.is_loopback or ip.is_unspecified:
            out[int(fields[9])] = int(port, 16)
    return out


def _listening() -> dict[int, int]:
    out: dict[int, int] = {}
    for name in ("tcp", "tcp6"):
        try:
            out.update(parse_listening(Path(f"/proc/net/{name}").read_text()))
        except OSError:
            pass
    return out


def _socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process `pid` holds open (none if it is gone or not ours to read)."""
    found: set[int] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            found.add(int(link[8:-1]))
    return found


class ProcessRuntime:
    def __init__(self, state_dir: Path, *, python: str = "", env: dict[str, str] | None = None) -> None:
        self._state_dir = Path(state_dir)
        self._stack = stack_id(self._state_dir)
        self._python = python or sys.executable
        self._env = env or {}
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def container_dir(self, tenant: str, sig: str, name: str) -> Path:
        return self._state_dir / "runtime" / tenant / sig / name

    def _members(self, *, pool: bool | None = False) -> Members:
        """Processes of this stack's containers, by container name; an adopted pooled container
        under its SIG's name and labels. `pool`: True the unclaimed pooled ones only, None all."""
        aliases = self._aliases()
        found: Members = {}
        for pid in _pids():
            env = _environ(pid)
            if not env or env.get("SPAAS_STACK") != self._stack or "SPAAS_CONTAINER" not in env:
                continue
            name = env["SPAAS_CONTAINER"]
            alias = aliases.get(name)
            if alias is not None:
                if pool is True:
                    continue  # adopted: a SIG's container now, never a pooled one again
                env = {**env, **alias["env"]}
                name = alias["name"]
            elif pool is not None and bool(env.get("SPAAS_POOL")) != pool:
                continue
            found.setdefault(name, []).append((pid, env))
        return found

    # -- warm pool -----------------------------------------------------------------------------
    @property
    def _alias_file(self) -> Path:
        return self._state_dir / "runtime-aliases.json"

    def _aliases(self) -> dict[str, dict[str, Any]]:
        """pooled container name -> {"name": SIG container name, "env": the SIG's labels, "pool": id}."""
        try:
            data = json.loads(self._alias_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_aliases(self, aliases: dict[str, dict[str, Any]]) -> None:
        self._state_dir.mkdir(parents=True, exist_ok=True)
        safefs.write_atomic(self._state_dir, self._alias_file.name, json.dumps(aliases, sort_keys=True).encode(),
                            mode=0o600)

    def pool_dir(self, skeleton: str) -> Path:
        return self._state_dir / "pool" / skeleton

    def pooled(self) -> list[Container]:
        """Unclaimed pooled containers (tenant "", sig = their skeleton's id)."""
        return self._containers(self._members(pool=True))

    def adopt(self, pooled_name: str, spec: ContainerSpec) -> None:
        """From now on the pooled container is `spec.name` of `spec`'s SIG (idempotent)."""
        aliases = self._aliases()
        env = {"SPAAS_TENANT": spec.tenant, "SPAAS_SIG": spec.sig, "SPAAS_ROLE": spec.role,
               "SPAAS_INDEX": str(spec.index), "SPAAS_CONFIG_HASH": spec.config_hash,
               "SPAAS_GENERATION": str(spec.generation)}
        current = self._members(pool=True).get(pooled_name) or []
        skeleton = next((e.get("SPAAS_POOL", "") for _, e in current), "")
        aliases[pooled_name] = {"name": spec.name, "env": env, "pool": skeleton}
        self._write_aliases(aliases)
        log.info("pooled container %s adopted as %s", pooled_name, spec.name)

    def discard_pool(self, skeleton: str) -> None:
        """The directory of a skeleton that was stopped unclaimed."""
        try:
            safefs.remove(self._state_dir / "pool", [skeleton])
        except (OSError, safefs.UnsafeFile) as exc:
            log.warning("pool skeleton %s: directory not removed: %s", skeleton, exc)

    def pids(self, tenant: str, sig: str) -> list[int]:
        """Every live process of a SIG's containers (agents, Spark daemons, drivers, executors)."""
        return sorted(pid for members in self._members().values() for pid, env in members
                      if env.get("SPAAS_TENANT") == tenant and env.get("SPAAS_SIG") == sig and _alive(pid))

    def _reap(self) -> None:
        for name, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[name]

    def list(self) -> list[Container]:
        self._reap()
        return self._containers(self._members())

    def _containers(self, found: Members) -> Containers:
        containers = []
        for name, members in found.items():
            leaders = [(pid, env) for pid, env in members if _alive(pid) and env.get("SPAAS_LEADER") == "1"]
            if not leaders:
                continue
            pid, env = leaders[0]
            started = _started_at(pid)
            containers.append(Container(
                name=name, tenant=env.get("SPAAS_TENANT", ""), sig=env.get("SPAAS_SIG", ""),
                role=env.get("SPAAS_ROLE", ""), index=int(env.get("SPAAS_INDEX", "0") or 0),
                config_hash=env.get("SPAAS_CONFIG_HASH", ""), generation=int(env.get("SPAAS_GENERATION", "0") or 0),
                running=True, started_at=started,
            ))
        return sorted(containers, key=lambda c: c.name)

    def addresses(self) -> dict[str, Address]:
        """Each running container: 127.0.0.1 and the TCP ports its own processes LISTEN on, read
        from the kernel (/proc/net/tcp{,6} matched to the sockets in /proc/<pid>/fd). Every
        container shares the machine's loopback, so a port counts only if one of its processes
        holds the listening socket."""
        listening = _listening()
        out: dict[str, Address] = {}
        for name, members in self._members().items():
            if not any(env.get("SPAAS_LEADER") == "1" and _alive(pid) for pid, env in members):
                continue
            ports = {listening[inode] for pid, _ in members for inode in _socket_inodes(pid) if inode in listening}
            out[name] = Address(LOOPBACK, frozenset(ports))
        return out

    def start(self, spec: ContainerSpec) -> None:
        pool = spec.env.get("SPAAS_POOL", "")
        if any(c.name == spec.name for c in (self.pooled() if pool else self.list())):
            return
        # Leftovers of a dead container (orphaned drivers or executors) go first.
        self._kill_members(spec.name, grace_s=2.0)
        cdir = self.pool_dir(pool) / spec.name if pool else self.container_dir(spec.tenant, spec.sig, spec.name)
        cdir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPAAS_")}
        env.update(self._env)
        env.update(spec.env)
        env.update(
            SPAAS_STACK=self._stack,
            SPAAS_LEADER="1",
            SPAAS_CONTAINER=spec.name,
            SPAAS_TENANT=spec.tenant,
            SPAAS_SIG=spec.sig,
            SPAAS_ROLE=spec.role,
            SPAAS_INDEX=str(spec.index),
            SPAAS_CONFIG_HASH=spec.config_hash,
            SPAAS_GENERATION=str(spec.generation),
            SPAAS_ARTIFACT_DIR=spec.artifact,
            SPAAS_CONTAINER_DIR=str(cdir),
            SPAAS_STATE_DIR=str(self._state_dir),
            SPAAS_WORKER_CORES=str(spec.cpu),
            SPAAS_WORKER_MEMORY_MB=str(spec.memory_mb),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
            PYTHONUNBUFFERED="1",
        )
        with open(cdir / "container.log", "ab") as out:
            proc = subprocess.Popen(
                [self._python, "-m", "services.agent"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=cdir, start_new_session=True,
            )
        self._children[spec.name] = proc
        log.info("started container %s (pid %d, config %s)", spec.name, proc.pid, spec.config_hash)

    def _every(self) -> Members:
        return self._members(pool=None)

    def _kill_members(self, name: str, *, grace_s: float) -> None:
        members = self._every().get(name, [])
        if not members:
            return
        # Like `docker stop`: SIGTERM to the agent, which stops its Spark daemon in order (a
        # worker decommissions first); if there is no agent left, to every process.
        leaders = [pid for pid, env in members if env.get("SPAAS_LEADER") == "1" and _alive(pid)]
        for pid in leaders or [pid for pid, _ in members]:
            try:
                os.kill(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            self._reap()
            if not any(_alive(pid) for pid, _ in self._every().get(name, [])):
                return
            time.sleep(0.1)
        for pid, _ in self._every().get(name, []):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
        self._reap()

    def stop(self, name: str, *, grace_s: float = 30.0) -> None:
        self._kill_members(name, grace_s=grace_s)
        log.info("stopped container %s", name)

    def sigs(self) -> set[tuple[str, str]]:
        """SIGs this runtime holds anything of (running containers or work directories)."""
        found = {(c.tenant, c.sig) for c in self.list()}
        root = self._state_dir / "runtime"
        if root.is_dir():
            found |= {(t.name, s.name) for t in root.iterdir() if t.is_dir() for s in t.iterdir() if s.is_dir()}
        return found

    def cleanup_sig(self, tenant: str, sig: str) -> None:
        """Remove the SIG's container directories; tenant code wrote in them, so no link is followed."""
        try:
            safefs.remove(self._state_dir / "runtime", [tenant, sig])
        except (OSError, safefs.UnsafeFile) as exc:
            log.warning("sig %s/%s: container directories not fully removed: %s", tenant, sig, exc)
        # Skeletons the SIG claimed: their directories and labels go with it (never back to the pool).
        aliases = self._aliases()
        mine = {k: v for k, v in aliases.items()
                if (v.get("env") or {}).get("SPAAS_TENANT") == tenant and (v.get("env") or {}).get("SPAAS_SIG") == sig}
        if mine:
            for skeleton in {str(v.get("pool") or "") for v in mine.values()} - {""}:
                self.discard_pool(skeleton)
            self._write_aliases({k: v for k, v in aliases.items() if k not in mine})

    def stop_all(self, *, grace_s: float = 10.0) -> None:
        for name in list(self._every()):
            self._kill_members(name, grace_s=grace_s)
