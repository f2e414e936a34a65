"""Pure reconciliation of one SIG: desired state (spec, build) vs what runs (containers, hosts).

    plan(sig, containers, hosts) -> Plan(start, stop, status, forget)

Phases (written by the scaler only):

    no build for this generation yet      BUILDING   (UPDATING if containers still run)
    build FAILED for this generation      FAILED     reason BuildFailed
    built, containers not all ready       DEPLOYING  (UPDATING if it was READY before)
    master and min workers ready          READY
    a ready worker's container died       DEPLOYING  reason WorkerLost, until its replacement
                                                     registers (not READY for more than one pass):
                                                     a host record counts once registered after its
                                                     container started (`Container.started_at`), or
                                                     after the loss was seen if the runtime cannot tell
    deletion requested                    DELETING   -> `forget` once nothing runs

The history server (spec `history.enabled`) is started once the master is registered ready and
stopped when it is disabled or the SIG is deleted; it never holds back READY. Its container has
a fixed size (spaas.model.HISTORY_CPU / HISTORY_MEMORY_MB) and a config hash of its own (build
key only: a Spark conf change does not restart it). `status.history` says where it stands.

Notebook servers (`plan_notebooks`, role "notebook", one container per user with a demand record
`{p}/notebooks/{t}/{s}/{user}` written by the proxy): started once the SIG is built and its master is
ready, restarted when the SIG's config hash changes, stopped (and their demand forgotten) when idle
longer than `notebooks.jupyter.idle_timeout_s` or when notebooks are turned off. They never change the
SIG's phase; `status.notebooks` lists them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from spaas import notebooks as nb
from spaas.model import HISTORY_CPU, HISTORY_MEMORY_MB, BuildState, Phase
from spaas.runtimes.base import HISTORY, MASTER, WORKER, Container, ContainerSpec, container_name


@dataclass(frozen=True)
class SigView:
    tenant: str
    sig: str
    spec: dict[str, Any]          # the spec record: {"spec": {...}, "generation", "deleting", ...}
    build: dict[str, Any] | None  # status.build, owned by the builder
    status: dict[str, Any] | None  # our own previous status
    # Malformed records under the SIG's prefixes ("key: why"), skipped by `spaas.records`; shown
    # in the status so the tenant sees why (reason InvalidRecord when nothing else is wrong).
    invalid: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    start: list[ContainerSpec] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    forget: bool = False
    # Users whose notebook demand record goes (culled as idle, or notebooks turned off).
    forget_notebooks: list[str] = field(default_factory=list)


def config_hash(build_key: str, spec: dict[str, Any]) -> str:
    """Everything a running container was started with; a change means restart."""
    material = {"build": build_key, "conf": spec.get("spark_conf", {}), "resources": spec.get("resources", {})}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:12]


def history_hash(build_key: str) -> str:
    """What the history server was started with: only the build (its conf is the platform's)."""
    return hashlib.sha256(json.dumps({"build": build_key, "role": HISTORY}).encode()).hexdigest()[:12]


def history_enabled(spec: dict[str, Any]) -> bool:
    return bool((spec.get("history") or {}).get("enabled"))


def current_members(spec: dict[str, Any], status: dict[str, Any] | None) -> tuple[int, ...]:
    """The worker indices the SIG has now (the scaler's own record), or its minimum at first."""
    members = ((status or {}).get("workers") or {}).get("members")
    if members is None:
        return tuple(range(int(spec.get("scaling", {}).get("min_workers", 1))))
    return tuple(sorted(int(i) for i in members))


def _container_spec(view: SigView, role: str, index: int, chash: str, artifact: str, generation: int) -> ContainerSpec:
    res = view.spec["spec"].get("resources", {})
    return ContainerSpec(
        name=container_name(view.tenant, view.sig, role, index), tenant=view.tenant, sig=view.sig, role=role,
        index=index, config_hash=chash, generation=generation, artifact=artifact,
        cpu=int(res.get("cpu", 2)), memory_mb=int(res.get("memory_mb", 2048)), gpu=int(res.get("gpu", 0)),
        max_cpu=int(res.get("max_cpu", 4)), max_memory_mb=int(res.get("max_memory_mb", 6144)),
    )


def _history_spec(view: SigView, hhash: str, artifact: str, generation: int) -> ContainerSpec:
    return ContainerSpec(
        name=container_name(view.tenant, view.sig, HISTORY, 0), tenant=view.tenant, sig=view.sig, role=HISTORY,
        index=0, config_hash=hhash, generation=generation, artifact=artifact,
        cpu=HISTORY_CPU, memory_mb=HISTORY_MEMORY_MB, gpu=0, max_cpu=HISTORY_CPU, max_memory_mb=HISTORY_MEMORY_MB,
    )


def _history(view: SigView, running: list[Container], hosts: list[dict[str, Any]], master_ready: bool,
             build: dict[str, Any], generation: int) -> tuple[list[ContainerSpec], list[str], dict[str, Any]]:
    """(start, stop, status.history) for the SIG's history server."""
    name = container_name(view.tenant, view.sig, HISTORY, 0)
    mine = [c for c in running if c.name == name]
    if not history_enabled(view.spec["spec"]):
        return [], [c.name for c in mine], {"enabled": False, "ready": False, "ui_url": None}
    hhash = history_hash(build["key"])
    stop = [c.name for c in mine if c.config_hash != hhash]
    alive = any(c.config_hash == hhash for c in mine)
    # Started after the master: a SIG that cannot run its master needs no history server yet.
    start = [_history_spec(view, hhash, build["artifact"], generation)] if master_ready and not alive else []
    host = next((h for h in hosts if h.get("host") == name and h.get("role") == HISTORY and h.get("ready")
                 and h.get("config_hash") == hhash), None) if alive else None
    return start, stop, {"enabled": True, "ready": host is not None, "ui_url": host.get("ui_url") if host else None}


def plan(view: SigView, containers: list[Container], hosts: list[dict[str, Any]],
         members: tuple[int, ...] | None = None, now: float = 0.0, *,
         notebooks: dict[str, dict[str, Any]] | None = None, notebook_room: int | None = None) -> Plan:
    """`members`: the worker indices wanted (from the scaling policy); default: as recorded.
    `now`: when a worker is found lost (its replacement counts once registered after that).
    `notebooks`: user -> demand record; `notebook_room`: how many more notebook containers the
    tenant's quota allows (None: no limit)."""
    deleting = bool(view.spec.get("deleting"))
    result = _plan(view, containers if deleting else [c for c in containers if c.role != nb.ROLE], hosts, members, now)
    if not deleting and view.spec.get("spec") is not None:
        extra = plan_notebooks(view, containers, hosts, notebooks or {}, master_ready=bool(result.status.get("master_url")),
                               now=now, room=notebook_room)
        result.start.extend(extra.start)
        result.stop.extend(extra.stop)
        result.forget_notebooks.extend(extra.forget_notebooks)
        result.status["notebooks"] = extra.status
    if view.invalid:
        result.status["invalid_records"] = list(view.invalid[:10])
        if result.status.get("reason") is None:
            result.status.update(reason="InvalidRecord", message=f"{len(view.invalid)} malformed record(s) ignored: "
                                                                 f"{view.invalid[0]}"[:500])
    return result


def _plan(view: SigView, containers: list[Container], hosts: list[dict[str, Any]],
          members: tuple[int, ...] | None, now: float) -> Plan:
    generation = int(view.spec["generation"])
    previous = view.status or {}
    running = [c for c in containers if c.running]
    if members is None:
        members = current_members(view.spec["spec"], view.status)
    observed = int(previous.get("observed_generation", 0))
    base: dict[str, Any] = {
        "observed_generation": observed,
        "workers": {"desired": len(members), "ready": 0, "running": sum(1 for c in running if c.role == WORKER),
                    "members": list(members), "ready_members": [], "lost": {}},
        "master_url": None, "ui_url": None, "reason": None, "message": None,
        # Kept while nothing is decided about it (building, failed build); the container runs on.
        "history": previous.get("history"),
    }

    # A history server is its own; the compute containers' decisions below never see it.
    others = [c for c in running if c.role == HISTORY]
    running = [c for c in running if c.role != HISTORY]
    if view.spec.get("deleting"):
        running = running + others
        status = dict(base, phase=Phase.DELETING.value, reason="Deleting",
                      message=f"stopping {len(running)} containers")
        return Plan(stop=[c.name for c in running], status=status, forget=not running and not hosts)

    build = view.build or {}
    built_now = int(build.get("generation", 0)) == generation
    if built_now and build.get("state") == BuildState.FAILED.value:
        status = dict(base, phase=Phase.FAILED.value, reason="BuildFailed", message=build.get("message", "build failed"))
        return Plan(status=status)

    if not built_now or build.get("state") != BuildState.SUCCEEDED.value:
        phase = Phase.UPDATING if running else Phase.BUILDING
        status = dict(base, phase=phase.value, reason="Building", message=f"building generation {generation}")
        return Plan(status=status)

    chash = config_hash(build["key"], view.spec["spec"])
    want = len(members)
    desired = {container_name(view.tenant, view.sig, MASTER, 0): _container_spec(view, MASTER, 0, chash, build["artifact"], generation)}
    for i in members:
        cs = _container_spec(view, WORKER, i, chash, build["artifact"], generation)
        desired[cs.name] = cs

    stop = [c.name for c in running if c.name not in desired or c.config_hash != chash]
    stopping = set(stop)
    have = {c.name for c in running if c.name not in stopping}
    start = [cs for name, cs in desired.items() if name not in have]

    # A host record outlives its container by up to its lease TTL: count only running ones.
    alive = {c.name for c in running if c.name not in stopping}
    current_hosts = [h for h in hosts if h.get("config_hash") == chash and h.get("ready") and h.get("host") in alive]
    master = next((h for h in current_hosts if h.get("role") == MASTER), None)
    # A worker that was ready and whose container died is lost until a replacement registers
    # after the loss was seen (its predecessor's leased host record outlives it for a while).
    prev_workers = previous.get("workers") or {}
    lost = {int(i): float(at) for i, at in (prev_workers.get("lost") or {}).items() if int(i) in members}
    for i in prev_workers.get("ready_members") or []:
        if i in members and container_name(view.tenant, view.sig, WORKER, i) not in alive:
            lost.setdefault(int(i), now)
    # A host record is this container's when it was registered after the container started (a
    # runtime that tells when); else, for a lost worker, after the loss was seen.
    started = {c.name: c.started_at for c in running if c.name not in stopping}
    ready_members = []
    for i in members:
        name = container_name(view.tenant, view.sig, WORKER, i)
        host = next((h for h in current_hosts if h.get("host") == name and h.get("role") == WORKER), None)
        registered = float(host.get("registered_at") or 0.0) if host else 0.0
        if host and (registered >= started[name] if started.get(name) else (i not in lost or registered > lost[i])):
            ready_members.append(i)
            lost.pop(i, None)
    ready_workers = len(ready_members)
    workers = {"desired": want, "ready": ready_workers, "running": sum(1 for c in running if c.role == WORKER),
               "members": list(members), "ready_members": ready_members, "lost": {str(i): at for i, at in sorted(lost.items())}}

    endpoints = {"master_url": master.get("spark_url") if master else None,
                 "ui_url": master.get("ui_url") if master else None}
    h_start, h_stop, history = _history(view, others, hosts, master is not None, build, generation)
    result = _compute(view, base, previous, generation, observed, members, want, master, ready_workers, workers,
                      endpoints, start, stop, lost)
    result.status["history"] = history
    return Plan(start=result.start + h_start, stop=result.stop + h_stop, status=result.status)


def _compute(view: SigView, base: dict[str, Any], previous: dict[str, Any], generation: int, observed: int,
             members: tuple[int, ...], want: int, master: dict[str, Any] | None, ready_workers: int,
             workers: dict[str, Any], endpoints: dict[str, Any], start: list[ContainerSpec], stop: list[str],
             lost: dict[int, float]) -> Plan:
    if master and ready_workers >= want and not stop and not start:
        status = dict(base, phase=Phase.READY.value, observed_generation=generation, workers=workers, **endpoints)
    elif master and observed == generation and lost:
        names = ", ".join(container_name(view.tenant, view.sig, WORKER, i) for i in sorted(lost))
        status = dict(base, phase=Phase.DEPLOYING.value, workers=workers, reason="WorkerLost",
                      message=f"replacing lost worker(s) {names}; {ready_workers} of {want} ready", **endpoints)
    elif master and observed == generation:
        # This generation was READY; workers are being added, removed or replaced. Still usable.
        if ready_workers < want:
            reason, message = "Degraded", f"{want - ready_workers} of {want} workers starting"
        else:
            reason, message = "ScalingIn", f"stopping {len(stop)} idle workers"
        status = dict(base, phase=Phase.READY.value, workers=workers, reason=reason, message=message, **endpoints)
    else:
        phase = Phase.UPDATING if observed > 0 else Phase.DEPLOYING
        waiting = "the master" if not master else f"{want - ready_workers} of {want} workers"
        status = dict(base, phase=phase.value, workers=workers, reason="Deploying", message=f"waiting for {waiting}",
                      **endpoints)
    return Plan(start=start, stop=stop, status=status)


def plan_notebooks(view: SigView, containers: list[Container], hosts: list[dict[str, Any]],
                   demands: dict[str, dict[str, Any]], *, master_ready: bool, now: float,
                   room: int | None = None) -> Plan:
    """The SIG's notebook servers: one per user with a live demand record (pure)."""
    spec = view.spec["spec"]
    settings = nb.settings_of(spec)
    running = {c.name: c for c in containers if c.running and c.role == nb.ROLE}
    if not settings.enabled:
        return Plan(stop=sorted(running), forget_notebooks=sorted(demands), status={"enabled": False, "servers": []})
    build = view.build or {}
    built = int(build.get("generation", 0)) == int(view.spec["generation"]) and build.get("state") == BuildState.SUCCEEDED.value
    chash = config_hash(build["key"], spec) if built else ""
    by_host = {h.get("host"): h for h in hosts if h.get("role") == nb.ROLE}
    want: dict[str, str] = {}
    forget = []
    for user, record in sorted(demands.items()):
        name = nb.container_name(view.tenant, view.sig, user)
        host = by_host.get(name) or {}
        seen = max(nb.last_seen(record), float(host.get("last_activity") or 0.0))
        if now - seen > settings.idle_timeout_s:
            forget.append(user)  # culled: its container goes below; the next visit starts a new one
        else:
            want[name] = user
    stop = [name for name, c in sorted(running.items()) if name not in want or (chash and c.config_hash != chash)]
    start: list[ContainerSpec] = []
    servers = []
    left = room
    for name, user in want.items():
        alive = name in running and name not in stop
        host = by_host.get(name) or {}
        if alive and host.get("ready") and host.get("config_hash") == running[name].config_hash:
            state = "ready"
        elif alive:
            state = "starting"
        elif not built or not master_ready:
            state = "waiting"  # for the SIG's build or master
        elif left is not None and left <= 0:
            state = "quota"  # no room left in the tenant's quota
        else:
            state = "starting"
            base = _container_spec(view, nb.ROLE, 0, chash, build["artifact"], int(view.spec["generation"]))
            start.append(dataclasses.replace(base, name=name, env={"SPAAS_NOTEBOOK_USER": user}))
            left = None if left is None else left - 1
        servers.append({"user": user, "container": name, "state": state,
                        "url": nb.base_url(view.tenant, view.sig, user)})
    status = {"enabled": True, "idle_timeout_s": settings.idle_timeout_s, "servers": servers}
    return Plan(start=start, stop=stop, forget_notebooks=forget, status=status)
