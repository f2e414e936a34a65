"""Per-user Jupyter servers of a SIG: names, paths and small pure decisions shared by the proxy,
the scaler, the agent and the API.

    browser -> proxy /sig/{t}/{s}/notebooks/{user}/      (only that user; others get 404)
       proxy writes  {p}/notebooks/{t}/{s}/{user}        {requested_at, last_activity} (throttled)
       scaler starts container {t}-{s}-nb-{hash}          role "notebook", one per user, and writes
                     {p}/notebook-tokens/{t}/{s}/{user}  {token, container} (the SIG cannot read it)
       agent (role notebook) runs JupyterLab with base_url=/sig/{t}/{s}/notebooks/{user}/, the token,
                     root = the user's folder of the SIG's storage, a kernel whose `spark` is connected
       proxy injects `Authorization: token ...`; the scaler stops servers idle past idle_timeout_s.

User names are always the folded form (`spaas.authz.fold`), so "Alice" and "alice" share one server.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from spaas.authz import fold as fold  # re-exported: callers fold user names through this module

ROLE = "notebook"
# Installed into a SIG's environment (or image) when its notebooks are enabled; part of the build key.
JUPYTER_PACKAGES = ("ipykernel==7.4.0", "jupyter-server==2.21.1", "jupyterlab==4.6.6")
SAFE_USER = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,127}$")


@dataclass(frozen=True)
class JupyterSettings:
    enabled: bool = False
    idle_timeout_s: int = 3600


def settings_of(spec: dict[str, Any]) -> JupyterSettings:
    """The `notebooks.jupyter` part of a SIG spec (a dict as stored)."""
    jupyter = ((spec.get("notebooks") or {}).get("jupyter") or {})
    return JupyterSettings(enabled=bool(jupyter.get("enabled")), idle_timeout_s=int(jupyter.get("idle_timeout_s", 3600)))


def container_name(tenant: str, sig: str, user: str) -> str:
    """Deterministic and DNS-safe whatever the user name holds (<= 63 characters)."""
    return f"{tenant}-{sig}-nb-{hashlib.sha256(fold(user).encode()).hexdigest()[:10]}"


def user_dir(user: str) -> str:
    """The user's folder name in the SIG's storage (`notebooks/<this>`): the folded name when it is
    a safe file name, else a hash of it."""
    name = fold(user)
    if SAFE_USER.match(name) and ".." not in name:
        return name
    return "u-" + hashlib.sha256(name.encode()).hexdigest()[:16]


def storage_mounts(user: str) -> tuple[tuple[tuple[str, ...], bool], ...]:
    """What of its SIG's storage a user's notebook container sees, as (SIG-relative parts,
    read-only): the user's own folder, read-write, and the SIG's uploads (`files/`), read-only, at
    the paths the SIG's applications use. Not other users' folders, driver logs or event logs.
    Only directories no SIG code can replace may be bind sources (Docker follows a link there on
    the host): the SIG's other containers get an empty tmpfs over `notebooks/` (`SIG_HIDDEN`), so
    nothing of a tenant's code can plant a link at a user's folder, and `files/` as a mount point
    of its own (`SIG_PINNED`), which their code can write in but not remove, rename or replace
    with a link. Runtimes with mounts (Docker) mount exactly these."""
    return ((("notebooks", user_dir(user)), False), (SIG_PINNED, True))


# Covered (by an empty tmpfs on Docker) in every SIG container that is not a notebook server.
SIG_HIDDEN = ("notebooks",)
# Bound onto itself (read-write) in every SIG container that is not a notebook server: job code
# writes in it as before, but it is a mount point there, so the directory a notebook container's
# read-only bind names on the host stays the one the platform made.
SIG_PINNED = ("files",)

Mode = str  # "rw" | "ro"


def container_mounts(role: str, user: str = "") -> tuple[tuple[tuple[tuple[str, ...], Mode], ...],
                                                          tuple[tuple[str, ...], ...]]:
    """(binds as (SIG-relative parts, mode), tmpfs over SIG-relative parts) of a SIG container on a
    runtime with mounts, binds parents first. A notebook server: exactly `storage_mounts(user)`;
    any other container: the SIG's whole storage, `files/` pinned, an empty tmpfs over
    `notebooks/`. Pure."""
    if role == ROLE:
        return tuple((parts, "ro" if read_only else "rw") for parts, read_only in storage_mounts(user)), ()
    return (((), "rw"), (SIG_PINNED, "rw")), (SIG_HIDDEN,)


def base_url(tenant: str, sig: str, user: str) -> str:
    return f"/sig/{tenant}/{sig}/notebooks/{quote(fold(user), safe='@')}/"


def user_of_key(key: str, prefix: str) -> tuple[str, str, str] | None:
    """(tenant, sig, user) of a key `prefix{t}/{s}/{user}`; None for anything else."""
    parts = key[len(prefix):].split("/")
    if not key.startswith(prefix) or len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], unquote(parts[2])


def last_seen(record: dict[str, Any] | None) -> float:
    """When a server was last used according to its demand record (0 if never)."""
    if not record:
        return 0.0
    values = [record.get("last_activity"), record.get("requested_at")]
    return max((float(v) for v in values if isinstance(v, (int, float))), default=0.0)


def should_touch(recorded: float, written: float, now: float, *, throttle_s: float) -> bool:
    """Whether the proxy writes `last_activity` now: at most once per `throttle_s` per server,
    judged by both what etcd holds (`recorded`) and what this replica wrote last (`written`)."""
    return now - max(recorded, written) >= throttle_s


def touch_throttle(idle_timeout_s: int) -> float:
    """Activity is written often enough that a server in use is never culled (a tenth of its timeout,
    between 1 s and 60 s)."""
    return float(min(60.0, max(1.0, idle_timeout_s / 10)))
