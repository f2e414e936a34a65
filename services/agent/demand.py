"""What a SIG master's applications want, computed from its Spark master and drivers (pure),
plus the small HTTP probes that feed it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from spaas.demand import Demand, WorkerLoad

TARGET_GAUGE = "ExecutorAllocationManager.executors.numberTargetExecutors"


@dataclass(frozen=True)
class DriverDemand:
    spark_app_id: str
    # Cores asked for up front (numExecutors x executorCores, spark.cores.max); 0 if unsized.
    requested: int
    # Dynamic allocation's current target in cores, if the driver runs it.
    dynamic_target: int | None = None


def compute(master: dict[str, Any] | None, drivers: list[DriverDemand], hosts: dict[tuple[str, int], str],
            idle_since: dict[str, float], *, backlog: int, cores_per_worker: int, now: float) -> tuple[Demand, dict[str, float]]:
    """(demand, new idle_since map). `hosts` maps a worker's (ip, port) to its container name."""
    apps = {a.get("id"): a for a in (master or {}).get("activeapps", [])}
    wanted = granted = waiting = 0
    for d in drivers:
        app = apps.get(d.spark_app_id) if d.spark_app_id else None
        if d.spark_app_id and master is not None and app is None:
            continue  # registered before and gone from the master: the app is over, its driver exiting
        got = int(app.get("cores", 0)) if app else 0
        if app and app.get("state") == "WAITING":
            waiting += 1
        if d.dynamic_target is not None:
            want = d.dynamic_target
        elif d.requested:
            want = d.requested
        else:
            want = got if got > 0 else cores_per_worker
        wanted += max(want, got)
        granted += got
    workers: dict[str, WorkerLoad] = {}
    idle: dict[str, float] = {}
    for w in (master or {}).get("workers", []):
        name = hosts.get((str(w.get("host")), int(w.get("port", -1))))
        if name is None or w.get("state") not in ("ALIVE", "DECOMMISSIONED"):
            continue
        used = int(w.get("coresused", 0))
        since = None if used > 0 else idle_since.get(name, now)
        if since is not None:
            idle[name] = since
        workers[name] = WorkerLoad(cores=int(w.get("cores", 0)), cores_used=used, state=str(w.get("state")),
                                   idle_since=since)
    demand = Demand(cores_wanted=wanted, cores_granted=granted, waiting_apps=waiting, running_apps=len(drivers),
                    driver_backlog=backlog, workers=workers, reported_at=now)
    return demand, idle


def dynamic_target_executors(ui_url: str, timeout_s: float = 1.0) -> int | None:
    """The driver's dynamic-allocation target (its metrics servlet), or None if it has none."""
    try:
        data = requests.get(ui_url.rstrip("/") + "/metrics/json/", timeout=timeout_s).json()
    except (requests.RequestException, ValueError):
        return None
    for name, gauge in (data.get("gauges") or {}).items():
        if name.endswith(TARGET_GAUGE):
            try:
                return int(gauge.get("value"))
            except (TypeError, ValueError):
                return None
    return None
