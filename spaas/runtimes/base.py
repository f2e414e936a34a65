"""The Runtime port: what the scaler needs from process groups, Docker or Kubernetes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

MASTER = "master"
WORKER = "worker"


def container_name(tenant: str, sig: str, role: str, index: int = 0) -> str:
    """Deterministic: the same SIG, role and index always give the same name."""
    return f"{tenant}-{sig}-{role}-{index}"


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    tenant: str
    sig: str
    role: str
    index: int
    # Hash of everything that requires a restart when it changes (build, conf, resources).
    config_hash: str
    generation: int
    # Process runtime: the built environment's directory. Docker: the image reference.
    artifact: str
    cpu: int = 2
    memory_mb: int = 2048
    gpu: int = 0
    max_cpu: int = 4
    max_memory_mb: int = 6144
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Container:
    name: str
    tenant: str
    sig: str
    role: str
    index: int
    config_hash: str
    generation: int
    running: bool
    started_at: float = 0.0


@dataclass(frozen=True)
class Address:
    """Where the runtime itself says a container can be reached: read from the engine (Docker,
    Kubernetes) or the kernel (process runtime), never from anything tenant code writes."""

    ip: str
    # The TCP ports on `ip` that are the container's; None: every port on `ip` is (the container
    # has a network namespace of its own, as on Docker and Kubernetes).
    ports: frozenset[int] | None = None

    def owns(self, ip: str, port: int) -> bool:
        return ip == self.ip and (self.ports is None or port in self.ports)


class Runtime(Protocol):
    def start(self, spec: ContainerSpec) -> None:
        """Start the container unless one of that name is already running (idempotent)."""
        ...

    def stop(self, name: str, *, grace_s: float = 10.0) -> None:
        """Stop the container and everything it started; no-op if it is gone."""
        ...

    def list(self) -> list[Container]:
        """Every container of this platform, running or not yet cleaned up."""
        ...

    def cleanup_sig(self, tenant: str, sig: str) -> None:
        """Remove what is left of a deleted SIG (work dirs; networks on Docker)."""
        ...

    def addresses(self) -> dict[str, Address]:
        """Each running container's verified network address, by container name (the proxy
        routes only to these, see services/scaler/routes.py)."""
        ...
