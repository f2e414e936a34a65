"""Docker runtime: each SIG container is a Docker container from the SIG's image.

    network   <stack>-<tenant>-<sig>             one user-defined bridge per SIG (labelled)
    container <stack>-<tenant>-<sig>-<role>-<i>  labelled spaas.stack/tenant/sig/role/index/
                                                 config_hash/generation, so `list()` reads the
                                                 truth from the engine, like `docker ps`

A container is attached to its SIG network first (the agent advertises its IP there, and the
Spark daemons bind to that IP only) and, when configured, to the platform network where etcd and
Redis live. Docker drops traffic between different bridge networks, so one SIG cannot reach
another SIG's Spark master. The SIG's storage (uploads, driver logs) is bind-mounted from the
platform's state volume at the same path the API uses, and only that SIG's directory.

This module and `services/builder/dockerimage.py` are the only ones that import `docker`;
engine errors become `TemporaryError`, and every call has a timeout (the client's).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from spaas import notebooks as nb
from spaas.errors import TemporaryError
from spaas.runtimes.base import Address, Container, ContainerSpec
from spaas.storage import SigStorage

log = logging.getLogger(__name__)

LABEL = "spaas."
# Where the SIG's manifest.json (spark_home, python) lives in every Spark/SIG image.
ARTIFACT_DIR = "/opt/sig"
# The container's private work directory (Spark work dirs, conf, logs): its writable layer.
CONTAINER_DIR = "/var/lib/spaas-container"


def connect(url: str = "", *, timeout_s: float = 30.0) -> docker.DockerClient:
    """The one place a Docker client is made (the engine's socket unless `url` says otherwise)."""
    try:
        if url:
            return docker.DockerClient(base_url=url, timeout=int(timeout_s))
        return docker.from_env(timeout=int(timeout_s))
    except docker.errors.DockerException as exc:
        raise TemporaryError(f"cannot reach the Docker engine at {url or 'its default socket'}: {exc}") from exc


def translate(what: str, exc: Exception) -> TemporaryError:
    """A Docker or transport exception as spaas' error vocabulary (retryable: the engine or the
    socket may be back on the next pass)."""
    if isinstance(exc, docker.errors.APIError):
        return TemporaryError(f"{what}: {exc.explanation or exc}")
    return TemporaryError(f"{what}: {exc}")


ENGINE_ERRORS = (docker.errors.DockerException, requests.RequestException)


def resources(spec: ContainerSpec, host_cpus: int) -> dict[str, Any]:
    """Engine limits for a container: cpu/memory_mb are reservations, max_* are limits. Pure."""
    limit_cpu = max(0.1, min(float(spec.max_cpu), float(host_cpus or spec.max_cpu)))
    out: dict[str, Any] = {
        "nano_cpus": int(limit_cpu * 1e9),
        "cpu_shares": max(2, int(spec.cpu) * 1024),
        "mem_limit": f"{int(spec.max_memory_mb)}m",
        "mem_reservation": f"{min(int(spec.memory_mb), int(spec.max_memory_mb))}m",
    }
    if spec.gpu > 0:
        out["device_requests"] = [docker.types.DeviceRequest(count=int(spec.gpu), capabilities=[["gpu"]])]
    return out


def labels(spec: ContainerSpec, stack: str) -> dict[str, str]:
    return {
        LABEL + "stack": stack, LABEL + "name": spec.name, LABEL + "tenant": spec.tenant, LABEL + "sig": spec.sig,
        LABEL + "role": spec.role, LABEL + "index": str(spec.index), LABEL + "config_hash": spec.config_hash,
        LABEL + "generation": str(spec.generation), LABEL + "image": spec.artifact,
    }


def from_labels(attrs: dict[str, Any]) -> Container | None:
    """A `Container` from the engine's list entry, or None if it is not one of ours."""
    lab = attrs.get("Labels") or {}
    if not lab.get(LABEL + "name"):
        return None
    return Container(
        name=lab[LABEL + "name"], tenant=lab.get(LABEL + "tenant", ""), sig=lab.get(LABEL + "sig", ""),
        role=lab.get(LABEL + "role", ""), index=int(lab.get(LABEL + "index", "0") or 0),
        config_hash=lab.get(LABEL + "config_hash", ""), generation=int(lab.get(LABEL + "generation", "0") or 0),
        running=attrs.get("State") == "running", started_at=float(attrs.get("Created") or 0.0),
    )


def sig_addresses(items: list[dict[str, Any]], network_name: Callable[[str, str], str]) -> dict[str, Address]:
    """Container name -> its IP on its own SIG network, from the engine's list entries. Pure.
    Only that network counts: the platform network's address is not where its UIs listen."""
    out: dict[str, Address] = {}
    for attrs in items:
        c = from_labels(attrs)
        if c is None or not c.running:
            continue
        nets = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
        ip = (nets.get(network_name(c.tenant, c.sig)) or {}).get("IPAddress") or ""
        if ip:
            out[c.name] = Address(ip)
    return out


class DockerRuntime:
    def __init__(self, client: docker.DockerClient, *, stack: str = "spaas", platform_network: str = "",
                 state_volume: str = "", state_dir: Path = Path("/var/lib/spaas"), host_state_dir: Path | None = None,
                 env: dict[str, str] | None = None, sig_images: Callable[[], dict[tuple[str, str], str]] | None = None,
                 stop_grace_s: float = 30.0, proxy_container: str = "") -> None:
        """`state_dir`: the platform's state directory as the API sees it (and as SIG containers
        will); it lives in the named volume `state_volume`, or on this host at `host_state_dir`.
        `sig_images`: the image each SIG is built to (from etcd), so a deleted SIG's image is
        removed only when no other SIG uses it. `proxy_container`: services/proxy's container,
        connected to every SIG network so it reaches each SIG's Spark UIs (SIGs stay apart)."""
        self._client = client
        self._stack = stack
        self._platform_network = platform_network
        self._state_volume = state_volume
        self._state_dir = Path(state_dir)
        self._host_state_dir = Path(host_state_dir) if host_state_dir else None
        self._env = env or {}
        self._sig_images = sig_images
        self._grace = stop_grace_s
        self._cpus = 0
        self._proxy = proxy_container

    # -- names -----------------------------------------------------------------------------
    def docker_name(self, name: str) -> str:
        return f"{self._stack}-{name}"

    def network_name(self, tenant: str, sig: str) -> str:
        return f"{self._stack}-{tenant}-{sig}"

    # -- helpers ---------------------------------------------------------------------------
    def _host_cpus(self) -> int:
        if not self._cpus:
            try:
                self._cpus = int(self._client.info().get("NCPU") or 0)
            except ENGINE_ERRORS as exc:
                raise translate("docker info", exc) from exc
        return self._cpus

    def ensure_network(self, tenant: str, sig: str) -> tuple[str, str]:
        """(network name, subnet) of the SIG's own network, created if missing."""
        name = self.network_name(tenant, sig)
        try:
            try:
                net = self._client.networks.get(name)
            except docker.errors.NotFound:
                try:
                    net = self._client.networks.create(name, driver="bridge", check_duplicate=True, labels={
                        LABEL + "stack": self._stack, LABEL + "tenant": tenant, LABEL + "sig": sig})
                    log.info("created network %s", name)
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:
                        raise
                net = self._client.networks.get(name)
            configs = (net.attrs.get("IPAM") or {}).get("Config") or []
        except ENGINE_ERRORS as exc:
            raise translate(f"network {name}", exc) from exc
        subnet = next((c.get("Subnet", "") for c in configs if ":" not in c.get("Subnet", ":")), "")
        return name, subnet

    def _storage_mount(self, tenant: str, sig: str, parts: tuple[str, ...] = (),
                       mode: str = "rw") -> dict[str, dict[str, str]]:
        """Bind only this SIG's storage directory (or `parts` of it), at the path the API uses."""
        inside = self._state_dir.joinpath("storage", tenant, sig, *parts)
        if self._state_volume:
            try:
                vol = self._client.volumes.get(self._state_volume)
            except ENGINE_ERRORS as exc:
                raise translate(f"volume {self._state_volume}", exc) from exc
            source = Path(vol.attrs["Mountpoint"]).joinpath("storage", tenant, sig, *parts)
            # The scaler has the same volume mounted at state_dir: make the directory there,
            # following no link (Docker would follow one in a bind source).
            SigStorage(self._state_dir / "storage").ensure_dir(tenant, sig, *parts)
        else:
            root = self._host_state_dir or self._state_dir
            source = SigStorage(root / "storage").ensure_dir(tenant, sig, *parts)
        return {str(source): {"bind": str(inside), "mode": mode}}

    def _mounts(self, spec: ContainerSpec) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """(binds, tmpfs) of a container (`spaas.notebooks.container_mounts`). A user's notebook
        server binds only that user's folder and, read-only, the SIG's uploads; every other
        container its SIG's whole storage with `files/` bound onto itself and an empty tmpfs over
        `notebooks/`, so tenant code there cannot replace a directory a notebook container's bind
        names with a link that the bind would follow on the host. Every directory is made here
        first, following no link."""
        binds_of, tmpfs_of = nb.container_mounts(spec.role, spec.env.get("SPAAS_NOTEBOOK_USER", ""))
        binds: dict[str, dict[str, str]] = {}
        for parts, mode in binds_of:
            binds.update(self._storage_mount(spec.tenant, spec.sig, parts, mode))
        tmpfs: dict[str, str] = {}
        for parts in tmpfs_of:
            self._storage_mount(spec.tenant, spec.sig, parts)  # made first, following no link
            tmpfs[str(self._state_dir.joinpath("storage", spec.tenant, spec.sig, *parts))] = "size=64k,mode=0555"
        return binds, tmpfs

    def _find(self, name: str) -> Any | None:
        try:
            return self._client.containers.get(self.docker_name(name))
        except docker.errors.NotFound:
            return None
        except ENGINE_ERRORS as exc:
            raise translate(f"inspect {name}", exc) from exc

    # -- the Runtime port ------------------------------------------------------------------
    def list(self) -> list[Container]:
        try:
            found = self._client.containers.list(all=True, sparse=True,
                                                 filters={"label": f"{LABEL}stack={self._stack}"})
        except ENGINE_ERRORS as exc:
            raise translate("list containers", exc) from exc
        out = [c for c in (from_labels(item.attrs) for item in found) if c is not None]
        self.attach_proxy({self.network_name(c.tenant, c.sig) for c in out})
        return sorted(out, key=lambda c: c.name)

    def addresses(self) -> dict[str, Address]:
        """Each running container's IP on its SIG network, as the engine reports it (any port on
        it is the container's: it has a network namespace of its own)."""
        try:
            found = self._client.containers.list(sparse=True, filters={"label": f"{LABEL}stack={self._stack}",
                                                                       "status": "running"})
        except ENGINE_ERRORS as exc:
            raise translate("list containers", exc) from exc
        return sig_addresses([item.attrs for item in found], self.network_name)

    def sigs(self) -> set[tuple[str, str]]:
        """SIGs this stack holds anything of on the engine: labelled containers or networks."""
        try:
            nets = self._client.networks.list(filters={"label": f"{LABEL}stack={self._stack}"})
        except ENGINE_ERRORS as exc:
            raise translate("list networks", exc) from exc
        found = {(c.tenant, c.sig) for c in self.list()}
        for net in nets:
            lab = net.attrs.get("Labels") or {}
            if lab.get(LABEL + "tenant") and lab.get(LABEL + "sig"):
                found.add((lab[LABEL + "tenant"], lab[LABEL + "sig"]))
        return found

    def attach_proxy(self, networks: set[str]) -> None:
        """Connect the proxy container to each SIG network it is not on yet. Runs with every
        `list()` (each resync), so a recreated proxy container is attached again. Best effort:
        a missing proxy or a failed connect is logged, never fails the reconcile."""
        if not self._proxy or not networks:
            return
        try:
            proxy = self._client.containers.get(self._proxy)
            attached = set((proxy.attrs.get("NetworkSettings") or {}).get("Networks") or {})
            for name in sorted(networks - attached):
                try:
                    self._client.networks.get(name).connect(proxy)
                    log.info("connected the proxy %s to network %s", self._proxy, name)
                except docker.errors.APIError as exc:
                    if exc.status_code not in (403, 409) and "already exists" not in str(exc):
                        raise
        except docker.errors.NotFound:
            return
        except ENGINE_ERRORS as exc:
            log.warning("cannot connect the proxy %s to SIG networks: %s", self._proxy, exc)

    def start(self, spec: ContainerSpec) -> None:
        existing = self._find(spec.name)
        if existing is not None:
            if existing.status == "running":
                return
            self._remove(existing, spec.name)  # a dead container's leftovers go first
        network, subnet = self.ensure_network(spec.tenant, spec.sig)
        env = dict(self._env)
        env.update(spec.env)
        env.update(
            SPAAS_CONTAINER=spec.name, SPAAS_TENANT=spec.tenant, SPAAS_SIG=spec.sig, SPAAS_ROLE=spec.role,
            SPAAS_INDEX=str(spec.index), SPAAS_CONFIG_HASH=spec.config_hash, SPAAS_GENERATION=str(spec.generation),
            SPAAS_ARTIFACT_DIR=ARTIFACT_DIR, SPAAS_CONTAINER_DIR=CONTAINER_DIR, SPAAS_STATE_DIR=str(self._state_dir),
            SPAAS_WORKER_CORES=str(spec.cpu), SPAAS_WORKER_MEMORY_MB=str(spec.memory_mb),
            SPAAS_ADVERTISE_IP="auto", SPAAS_ADVERTISE_SUBNET=subnet, PYTHONUNBUFFERED="1",
        )
        dname = self.docker_name(spec.name)
        binds, tmpfs = self._mounts(spec)
        try:
            container = self._client.containers.create(
                spec.artifact, name=dname, hostname=spec.name, labels=labels(spec, self._stack), environment=env,
                network=network, volumes=binds, tmpfs=tmpfs or None, stop_signal="SIGTERM",
                detach=True, **resources(spec, self._host_cpus()))
            if self._platform_network:
                self._client.networks.get(self._platform_network).connect(container)
            container.start()
        except docker.errors.ImageNotFound as exc:
            # Retryable for the scaler's loop (which goes on with other SIGs), and says what is wrong.
            raise TemporaryError(f"failed to start {spec.tenant}/{spec.sig}/{spec.name}: image {spec.artifact} "
                                 f"not found") from exc
        except ENGINE_ERRORS as exc:
            if isinstance(exc, docker.errors.APIError) and exc.status_code == 409:
                return  # someone else (another scaler replica) created it first
            raise translate(f"failed to start {spec.tenant}/{spec.sig}/{spec.name}", exc) from exc
        log.info("started container %s (image %s, config %s)", dname, spec.artifact, spec.config_hash)

    def _remove(self, container: Any, name: str) -> None:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except ENGINE_ERRORS as exc:
            raise translate(f"remove {name}", exc) from exc

    def stop(self, name: str, *, grace_s: float | None = None) -> None:
        """SIGTERM to the agent (through tini), `grace_s` for it to decommission, then remove."""
        container = self._find(name)
        if container is None:
            return
        grace = self._grace if grace_s is None else grace_s
        try:
            if container.status == "running":
                container.stop(timeout=int(grace))
        except docker.errors.NotFound:
            return
        except ENGINE_ERRORS as exc:
            raise translate(f"stop {name}", exc) from exc
        self._remove(container, name)
        log.info("stopped container %s", self.docker_name(name))

    def cleanup_sig(self, tenant: str, sig: str) -> None:
        """Remove a deleted SIG's containers, its network and, if no other SIG uses it, its image."""
        for c in self.list():
            if c.tenant == tenant and c.sig == sig:
                self.stop(c.name, grace_s=0)
        name = self.network_name(tenant, sig)
        try:
            net = self._client.networks.get(name)
            if self._proxy:
                try:
                    net.disconnect(self._proxy, force=True)
                except docker.errors.APIError:
                    pass  # not connected
            net.remove()
            log.info("removed network %s", name)
        except docker.errors.NotFound:
            pass
        except ENGINE_ERRORS as exc:
            raise translate(f"remove network {name}", exc) from exc
        if self._sig_images is None:
            return
        images = self._sig_images()
        mine = images.get((tenant, sig))
        if not mine or any(img == mine for key, img in images.items() if key != (tenant, sig)):
            return
        try:
            in_use = self._client.containers.list(all=True, filters={"ancestor": mine})
            if not in_use:
                self._client.images.remove(mine, noprune=False)
                log.info("removed image %s of deleted SIG %s/%s", mine, tenant, sig)
        except docker.errors.ImageNotFound:
            pass
        except ENGINE_ERRORS as exc:
            log.warning("image %s of deleted SIG %s/%s not removed: %s", mine, tenant, sig, exc)

    def stop_all(self, *, grace_s: float = 10.0) -> None:
        for c in self.list():
            self.stop(c.name, grace_s=grace_s)

    def wait_running(self, name: str, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            c = self._find(name)
            if c is not None and c.status == "running":
                return True
            time.sleep(0.2)
        return False
