"""The domain model (v1): tenants, Spark instance groups (SIGs) and applications.

Specs are what users write (validated pydantic models, unknown fields rejected); statuses are
written by the controllers that own them. The SIG phase machine:

    PENDING -> BUILDING -> DEPLOYING -> READY -> UPDATING -> READY
        any step -> FAILED (reason, message);  any -> DELETING -> (gone)

Applications (Livy-shaped):

    SUBMITTED -> STARTING -> RUNNING -> FINISHED | FAILED | KILLED
    SUBMITTED -> KILLED (killed before a driver was started)
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from spaas.sparkconf import numeric_errors

# DNS-1123 label, short enough that "<tenant>-<sig>-worker-NNN" stays a valid hostname (<= 63).
NAME_MAX = 24
NAME_RE = r"^[a-z]([-a-z0-9]{0,22}[a-z0-9])?$"
Name = Annotated[str, StringConstraints(pattern=NAME_RE, max_length=NAME_MAX)]
MAX_PACKAGES = 100


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quota(Strict):
    max_containers: int = Field(default=10, ge=0, le=10_000)
    cores: int = Field(default=40, ge=0, le=100_000)
    memory_mb: int = Field(default=61_440, ge=0, le=100_000_000)
    gpus: int = Field(default=0, ge=0, le=10_000)


class TenantSpec(Strict):
    name: Name
    quota: Quota = Quota()


class Resources(Strict):
    """Size of one compute container; defaults follow the seed chart (2 cpu / 2 GiB, limits 4 / 6 GiB)."""

    cpu: int = Field(default=2, ge=1, le=256)
    memory_mb: int = Field(default=2048, ge=512, le=1_048_576)
    gpu: int = Field(default=0, ge=0, le=16)
    max_cpu: int = Field(default=4, ge=1, le=256)
    max_memory_mb: int = Field(default=6144, ge=512, le=1_048_576)
    max_gpu: int = Field(default=0, ge=0, le=16)

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> Resources:
        for req, lim in (("cpu", "max_cpu"), ("memory_mb", "max_memory_mb"), ("gpu", "max_gpu")):
            if getattr(self, lim) < getattr(self, req):
                raise ValueError(f"{lim} must be >= {req}")
        return self


class Scaling(Strict):
    min_workers: int = Field(default=1, ge=0, le=1000)
    max_workers: int = Field(default=10, ge=0, le=1000)
    allocation_unit: int = Field(default=1, ge=1, le=100)
    interval_s: int = Field(default=15, ge=1, le=3600)
    idle_timeout_s: int = Field(default=120, ge=1, le=86_400)

    @model_validator(mode="after")
    def _bounds(self) -> Scaling:
        if self.max_workers < self.min_workers:
            raise ValueError("max_workers must be >= min_workers")
        return self


# The history server's container has a fixed size, whatever the SIG's compute containers are:
# a Spark daemon with the agent's heap (SPAAS_DAEMON_MEMORY, 512m by default) and room for Jetty.
HISTORY_CPU = 1
HISTORY_MEMORY_MB = 1024


class History(Strict):
    """The SIG's Spark history server: one container of HISTORY_CPU / HISTORY_MEMORY_MB that counts
    toward the tenant's quota. Off by default (one more JVM per SIG); event logs are written
    either way, so a server enabled later lists what ran before."""

    enabled: bool = False


def with_history_default(body: dict[str, Any], enabled: bool) -> dict[str, Any]:
    """The SIG spec body with `history.enabled` set to the platform's default (`SPAAS_HISTORY_DEFAULT`)
    where the caller left it unset, so the stored spec says what was chosen. Pure; anything that
    is not a JSON object is left for validation to refuse."""
    history = body.get("history", {})
    if not isinstance(history, dict) or "enabled" in history:
        return body
    return {**body, "history": {**history, "enabled": enabled}}


def history_usage(enabled: bool) -> tuple[int, int, int]:
    """(containers, cores, memory_mb) the history server adds to a SIG's usage."""
    return (1, HISTORY_CPU, HISTORY_MEMORY_MB) if enabled else (0, 0, 0)
class Jupyter(Strict):
    """A JupyterLab server per user, started on demand through the proxy (spaas/notebooks.py)."""

    enabled: bool = False
    # A server with no activity (proxy requests, kernel work) for this long is stopped.
    idle_timeout_s: int = Field(default=3600, ge=10, le=7 * 86_400)


class Notebooks(Strict):
    jupyter: Jupyter = Jupyter()


class SigSpec(Strict):
    name: Name
    spark_version: Annotated[str, StringConstraints(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$", max_length=20)]
    spark_conf: dict[Annotated[str, StringConstraints(max_length=200)], Annotated[str, StringConstraints(max_length=4096)]] = {}
    python_packages: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(default=[], max_length=MAX_PACKAGES)
    resources: Resources = Resources()
    scaling: Scaling = Scaling()
    history: History = History()
    notebooks: Notebooks = Notebooks()

    @field_validator("python_packages")
    @classmethod
    def _pep508(cls, value: list[str]) -> list[str]:
        """Only plain PEP 508 requirements from the package index: no URLs, no pip options."""
        for item in value:
            if item.lstrip().startswith("-"):
                raise ValueError(f"{item!r} is a pip option, not a requirement")
            try:
                req = Requirement(item)
            except InvalidRequirement as exc:
                raise ValueError(f"{item!r} is not a valid requirement: {exc}") from None
            if req.url:
                raise ValueError(f"{item!r}: direct URL references are not allowed")
        return value

    @field_validator("spark_conf")
    @classmethod
    def _numbers(cls, value: dict[str, str]) -> dict[str, str]:
        return _numeric_conf(value)


class Application(Strict):
    """A batch application, in Livy's shape (camelCase as Livy has it)."""

    file: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    className: Annotated[str, StringConstraints(max_length=256)] | None = None
    args: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(default=[], max_length=256)
    pyFiles: list[Annotated[str, StringConstraints(max_length=512)]] = Field(default=[], max_length=64)
    conf: dict[Annotated[str, StringConstraints(max_length=200)], Annotated[str, StringConstraints(max_length=4096)]] = {}
    name: Annotated[str, StringConstraints(max_length=128)] | None = None
    driverMemory: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,6}[kmgtKMGT]?$")] | None = None
    executorMemory: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,6}[kmgtKMGT]?$")] | None = None
    executorCores: int | None = Field(default=None, ge=1, le=256)
    numExecutors: int | None = Field(default=None, ge=1, le=10_000)

    @field_validator("conf")
    @classmethod
    def _numbers(cls, value: dict[str, str]) -> dict[str, str]:
        return _numeric_conf(value)


def _numeric_conf(conf: dict[str, str]) -> dict[str, str]:
    """Spark conf keys the platform computes with must hold sane whole numbers."""
    errors = numeric_errors(conf)
    if errors:
        raise ValueError("; ".join(errors))
    return conf


class Phase(str, enum.Enum):
    PENDING = "PENDING"
    BUILDING = "BUILDING"
    DEPLOYING = "DEPLOYING"
    READY = "READY"
    UPDATING = "UPDATING"
    DELETING = "DELETING"
    FAILED = "FAILED"


class BuildState(str, enum.Enum):
    BUILDING = "BUILDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class AppState(str, enum.Enum):
    SUBMITTED = "SUBMITTED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def terminal(self) -> bool:
        return self in (AppState.FINISHED, AppState.FAILED, AppState.KILLED)


APP_TRANSITIONS: dict[AppState, frozenset[AppState]] = {
    AppState.SUBMITTED: frozenset({AppState.STARTING, AppState.KILLED, AppState.FAILED}),
    AppState.STARTING: frozenset({AppState.RUNNING, AppState.FINISHED, AppState.FAILED, AppState.KILLED}),
    AppState.RUNNING: frozenset({AppState.FINISHED, AppState.FAILED, AppState.KILLED}),
    AppState.FINISHED: frozenset(),
    AppState.FAILED: frozenset(),
    AppState.KILLED: frozenset(),
}


class Role(str, enum.Enum):
    """`cluster_admin` is platform-wide (settings + the bootstrap token); the others are granted per tenant."""

    CLUSTER_ADMIN = "cluster_admin"
    CONSUMER_ADMIN = "consumer_admin"
    SIG_CONFIGURE = "sig_configure"
    USER = "user"


class TenantRole(str, enum.Enum):
    """The roles a tenant's members can be granted (`PUT .../members/{user|group}/{name}`)."""

    CONSUMER_ADMIN = "consumer_admin"
    SIG_CONFIGURE = "sig_configure"
    USER = "user"


# User and group names as LDAP has them (uid / cn), restricted to what is safe in keys and URLs.
PRINCIPAL_RE = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"
PrincipalName = Annotated[str, StringConstraints(pattern=PRINCIPAL_RE, max_length=128)]


class MemberRoles(Strict):
    roles: list[TenantRole] = Field(min_length=1, max_length=3)

    @field_validator("roles")
    @classmethod
    def _unique(cls, value: list[TenantRole]) -> list[TenantRole]:
        return sorted(set(value), key=lambda r: r.value)


class LoginRequest(Strict):
    username: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class TokenRequest(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    expires_in_s: int | None = Field(default=None, ge=60, le=10 * 365 * 86400)


def can_transition(current: AppState, new: AppState) -> bool:
    return new in APP_TRANSITIONS[current]


def dns_safe(name: str) -> bool:
    return bool(re.fullmatch(NAME_RE, name)) and len(name) <= NAME_MAX


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
