"""The scaler's thin loop: read every SIG, containers and hosts; plan; act; write status.

Runs on every event (sig.changed, sig.built) and every `resync_s`, so a lost event costs at most
one resync period. One SIG's failure is logged and does not stop the others.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import Gauge

from spaas import messages
from spaas import notebooks as nb
from spaas.bus import Bus
from spaas.demand import DemandStore
from spaas.errors import Conflict, SpaasError, TemporaryError
from spaas.etcdauth import SigCredentials
from spaas.keys import Keys
from spaas.loops import run_every
from spaas.model import BuildState, Phase, history_usage
from spaas.records import AppRecords, HostRecord, Listing, SigRecords, host_sig, read_all_apps, read_hosts, read_sigs, read_tenants
from spaas.redisauth import SigRedisAccess
from spaas.runtimes.base import WORKER, Container, Runtime, container_name
from spaas.storage import SigStorage
from spaas.store import Entry, Store

from services.scaler.policy import Decision, Policy, Room, Worker, decide
from services.scaler.reconcile import SigView, current_members, plan
from services.scaler.routes import verified_routes

log = logging.getLogger(__name__)

DESIRED = Gauge("spaas_sig_workers_desired", "Desired workers per SIG", ["tenant", "sig"])
READY = Gauge("spaas_sig_workers_ready", "Ready workers per SIG", ["tenant", "sig"])
DEMAND = Gauge("spaas_sig_demand_cores", "Cores wanted by a SIG's applications", ["tenant", "sig"])
CAP_REASONS = {"quota": "QuotaExceeded", "max_workers": "MaxWorkersReached"}


def requested_cores(request: dict[str, Any]) -> int:
    """Cores an application asks for up front (0 when it does not say)."""
    conf = request.get("conf") or {}
    if request.get("numExecutors"):
        return int(request["numExecutors"]) * int(request.get("executorCores") or conf.get("spark.executor.cores") or 1)
    try:
        return int(conf.get("spark.cores.max", 0))
    except ValueError:
        return 0


def pending_cores(apps: Iterable[AppRecords]) -> dict[tuple[str, str], int]:
    """Cores per SIG of sized applications (batches and Livy sessions) that no master has claimed:
    a valid spec, no state key yet, no kill. Other keys below an application (a session's
    heartbeat and statements) do not change that."""
    pending: dict[tuple[str, str], int] = {}
    for app in apps:
        if app.spec is not None and "state" not in app.entries and not app.kill:
            ident = (app.tenant, app.sig)
            pending[ident] = pending.get(ident, 0) + requested_cores(app.spec.request.model_dump(mode="json"))
    return pending


def sig_usage(spec: dict[str, Any], members: tuple[int, ...], notebooks: int = 0) -> tuple[int, int, int]:
    """(containers, cores, memory_mb) a SIG holds: its master, its workers and its notebook servers
    (each the size of one of its containers), and its history server (of fixed size) when enabled."""
    n = 1 + len(members) + notebooks
    res = spec.get("resources", {})
    extra = history_usage(bool((spec.get("history") or {}).get("enabled")))
    return n + extra[0], n * int(res.get("cpu", 2)) + extra[1], n * int(res.get("memory_mb", 2048)) + extra[2]


def _notebook_room(spec: dict[str, Any], room: Room) -> int:
    """How many more notebook servers (each the size of one of the SIG's containers) fit the quota."""
    res = spec.get("resources", {})
    cpu, mem = max(1, int(res.get("cpu", 2))), max(1, int(res.get("memory_mb", 2048)))
    return max(0, min(room.containers, room.cores // cpu, room.memory_mb // mem))


VOLATILE = ("updated_at",)


def _sig_of(key: str, keys: Keys) -> tuple[str, str]:
    """(tenant, sig) of a key under `{p}/hosts/` or `{p}/apps/` (("", "") if it has none)."""
    for root in (keys.all_hosts(), keys.all_apps()):
        if key.startswith(root):
            parts = key[len(root):].split("/")
            return (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
    return ("", "")


class Scaler:
    def __init__(self, store: Store, bus: Bus, runtime: Runtime, storage: SigStorage, *, keys: Keys,
                 demand: DemandStore, clock: Any = time.time, credentials: SigCredentials | None = None,
                 redis_access: SigRedisAccess | None = None, pool: Any = None) -> None:
        """`credentials`: with etcd authentication, gives each SIG's containers their own etcd user.
        `redis_access`: with a Redis password, their own Redis user (spaas/redisauth.py).
        `pool`: the warm pool (services/scaler/warmpool.py), stepped before each pass; None: off."""
        self._pool = pool
        self._store = store
        self._bus = bus
        self._runtime = runtime
        self._storage = storage
        self._keys = keys
        self._demand = demand
        self._clock = clock
        self._last_logged: dict[tuple[str, str], str] = {}
        self._credentials = credentials
        self._redis_access = redis_access
        self._declared: set[tuple[str, str]] = set()
        self._pass_demand: dict[tuple[str, str], Any] | None = None  # read once per pass by reconcile_all

    def reconcile_all(self) -> None:
        """One pass over every SIG. Records are read through `spaas.records`: a malformed one
        is skipped (logged, counted, shown on its SIG or application), never the whole pass."""
        containers = self._runtime.list()
        host_listing = read_hosts(self._store, self._keys)
        hosts: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for h in host_listing:
            hosts.setdefault(host_sig(h, self._keys), []).append(h.to_value())
        sigs = read_sigs(self._store, self._keys)
        # Warm pool: claims on this pass's SIG snapshot, before any cold start; adopted containers are the SIG's.
        if self._pool is not None and self._pool.step(sigs, containers):
            containers = self._runtime.list()
        apps = read_all_apps(self._store, self._keys)
        invalid: dict[tuple[str, str], list[str]] = {}
        # Junk that belongs to no application (an application's own bad record shows on it).
        for bad in [*host_listing.bad, *apps.bad]:
            invalid.setdefault(_sig_of(bad.key, self._keys), []).append(bad.message)
        pending = self._pending_cores(apps)
        quotas = {t.name: t.quota for t in read_tenants(self._store, self._keys)}
        demands = self._notebook_demands()
        notebook_count: dict[tuple[str, str], int] = {}
        for c in containers:
            if c.role == nb.ROLE:
                notebook_count[(c.tenant, c.sig)] = notebook_count.get((c.tenant, c.sig), 0) + 1
        views: list[tuple[SigView, Entry | None]] = []
        known = set()
        for rec in sigs:
            known.add((rec.tenant, rec.sig))
            if rec.spec is None:
                if rec.entries["spec"].value.get("deleting") is True:
                    # Deleting a SIG whose spec cannot be read: stopping and forgetting need no spec.
                    views.append((SigView(rec.tenant, rec.sig, {"spec": {}, "generation": 0, "deleting": True}, None,
                                          rec.status.to_value() if rec.status else None), rec.entries.get("status")))
                else:
                    self._invalid_spec(rec)
                continue
            mine = tuple(b.message for b in rec.bad) + tuple(invalid.get((rec.tenant, rec.sig), ()))
            views.append((SigView(rec.tenant, rec.sig, rec.spec.to_value(), rec.build.to_value() if rec.build else None,
                                  rec.status.to_value() if rec.status else None, invalid=mine),
                          rec.entries.get("status")))
        used: dict[str, list[int]] = {}
        for view, _ in views:
            if not view.spec.get("deleting"):
                usage = sig_usage(view.spec["spec"], current_members(view.spec["spec"], view.status),
                                  notebook_count.get((view.tenant, view.sig), 0))
                used.setdefault(view.tenant, [0, 0, 0])
                used[view.tenant] = [a + b for a, b in zip(used[view.tenant], usage)]
        by_sig: dict[tuple[str, str], list[Container]] = {}
        for c in containers:
            by_sig.setdefault((c.tenant, c.sig), []).append(c)
        # Every SIG's demand in a few round trips instead of one each (bench/scale.py).
        latest_many = getattr(self._demand, "latest_many", None)
        self._pass_demand = latest_many([(v.tenant, v.sig) for v, _ in views]) if latest_many else None
        for view, status_entry in views:
            mine_c = by_sig.get((view.tenant, view.sig), [])
            quota = quotas.get(view.tenant)
            u = used.get(view.tenant, [0, 0, 0])
            room = Room(containers=quota.max_containers - u[0], cores=quota.cores - u[1],
                        memory_mb=quota.memory_mb - u[2]) if quota else Room()
            try:
                self.reconcile(view, status_entry, mine_c, hosts.get((view.tenant, view.sig), []),
                               pending_cores=pending.get((view.tenant, view.sig), 0), room=room,
                               notebooks=demands.get((view.tenant, view.sig), {}),
                               notebook_room=_notebook_room(view.spec.get("spec") or {}, room) if quota else None)
            except TemporaryError as exc:
                log.warning("sig %s/%s: reconcile failed: %s", view.tenant, view.sig, exc)
            except SpaasError as exc:
                # One SIG's lasting problem (e.g. etcd refusing its credentials) must not stall the others.
                log.error("sig %s/%s: reconcile failed and needs attention: %s", view.tenant, view.sig, exc)
            except (ValueError, TypeError, KeyError) as exc:
                # A record that passed validation but still does not add up: this SIG only.
                log.error("sig %s/%s: reconcile failed on its records: %s", view.tenant, view.sig, exc)
        # Routes of every SIG that is not being deleted (an unreadable spec leaves what runs alone).
        self._write_routes(known - {(v.tenant, v.sig) for v, _ in views if v.spec.get("deleting")}, containers,
                           host_listing.records)
        self._pass_demand = None
        self._sweep_orphans(containers, known)

    def _write_routes(self, sigs: set[tuple[str, str]], containers: list[Container],
                      host_records: list[HostRecord]) -> None:
        """The proxy's verified routes (services/scaler/routes.py): written where they changed,
        removed where no verified port is left. Skipped for a pass whose addresses cannot be read
        (the last routes stay; they name only what was verified)."""
        try:
            addresses = self._runtime.addresses()
            existing = {e.key: e for e in self._store.list(self._keys.all_routes())}
        except TemporaryError as exc:
            log.warning("routes not updated this pass: %s", exc)
            return
        by_sig: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for h in host_records:
            by_sig.setdefault(host_sig(h, self._keys), []).append(h.to_value())
        wanted: dict[str, dict[str, Any]] = {}
        for tenant, sig in sigs:
            mine = [c for c in containers if (c.tenant, c.sig) == (tenant, sig)]
            for host, route in verified_routes(by_sig.get((tenant, sig), []), mine, addresses).items():
                wanted[self._keys.route(tenant, sig, host)] = route
        for key, route in wanted.items():
            entry = existing.get(key)
            if entry is None or entry.value != route:
                try:
                    self._store.put(key, route)
                except TemporaryError as exc:
                    log.warning("route %s not written: %s", key, exc)
        for key in existing.keys() - wanted.keys():
            try:
                self._store.delete(key)
            except TemporaryError as exc:
                log.warning("route %s not removed: %s", key, exc)

    def _sweep_orphans(self, containers: list[Container], known: set[tuple[str, str]]) -> None:
        """Whatever the runtime holds for SIGs with no spec in etcd (keys removed by hand, the
        platform's state wiped): their containers, networks and credentials go. Only this
        platform's own (the runtime lists only its stack's), and only after etcd answered."""
        leftovers = getattr(self._runtime, "sigs", None)
        orphans = {(c.tenant, c.sig) for c in containers} | (set(leftovers()) if leftovers else set())
        for tenant, sig in sorted(orphans - known):
            log.info("sig %s/%s has no spec: removing its orphaned containers and network", tenant, sig)
            try:
                for c in containers:
                    if (c.tenant, c.sig) == (tenant, sig):
                        log.info("stopping orphan container %s", c.name)
                        self._runtime.stop(c.name)
                self._runtime.cleanup_sig(tenant, sig)
                if self._credentials:
                    self._credentials.forget(tenant, sig)
                if self._redis_access:
                    self._redis_access.forget(tenant, sig)
            except SpaasError as exc:
                log.warning("orphan sig %s/%s not cleaned up yet: %s", tenant, sig, exc)

    def _notebook_demands(self) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
        """(tenant, sig) -> user -> demand record (`{p}/notebooks/...`, written by the proxy)."""
        out: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        prefix = self._keys.all_notebooks()
        for entry in self._store.list(prefix):
            ident = nb.user_of_key(entry.key, prefix)
            if ident is None or not isinstance(entry.value, dict):
                continue
            out.setdefault((ident[0], ident[1]), {})[ident[2]] = entry.value
        return out

    def _start_notebook(self, view: SigView, spec: Any) -> Any:
        """A fresh random token for the server, written where the proxy reads it and the SIG cannot
        (`{p}/notebook-tokens/...`), then handed to the container only."""
        user = spec.env["SPAAS_NOTEBOOK_USER"]
        token = secrets.token_urlsafe(32)
        self._store.put(self._keys.notebook_token(view.tenant, view.sig, user),
                        {"token": token, "container": spec.name, "started_at": self._clock()})
        return dataclasses.replace(spec, env={**spec.env, "SPAAS_NOTEBOOK_TOKEN": token})

    def _forget_notebook(self, view: SigView, user: str) -> None:
        log.info("sig %s/%s: notebook server of %s stopped (idle or notebooks off)", view.tenant, view.sig, user)
        self._store.delete(self._keys.notebook(view.tenant, view.sig, user))
        self._store.delete(self._keys.notebook_token(view.tenant, view.sig, user))

    def _invalid_spec(self, rec: SigRecords) -> None:
        """A SIG whose spec cannot be read: say so in its status; leave what runs alone (we do
        not know what is wanted, and stopping it would punish more than the bad record)."""
        bad = rec.invalid
        message = bad.message if bad else "the SIG spec is invalid"
        previous = rec.status.to_value() if rec.status else {}
        status = {"phase": Phase.FAILED.value, "reason": "InvalidRecord", "message": message[:1000],
                  "observed_generation": int(previous.get("observed_generation", 0)),
                  "workers": previous.get("workers") or {"desired": 0, "ready": 0, "running": 0, "members": None},
                  "master_url": None, "ui_url": None}
        view = SigView(rec.tenant, rec.sig, {}, None, previous or None)
        try:
            self._write_status(view, rec.entries.get("status"), status)
        except TemporaryError as exc:
            log.warning("sig %s/%s: status not written: %s", rec.tenant, rec.sig, exc)

    def _pending_cores(self, apps: Listing[AppRecords]) -> dict[tuple[str, str], int]:
        """Cores of sized applications no master has claimed yet (the API's demand signal)."""
        return pending_cores(apps)

    def _scale(self, view: SigView, hosts: list[dict[str, Any]], pending_cores: int, room: Room) -> Decision | None:
        """The policy's decision for a deployed SIG; None while it is building, failing or deleting."""
        build = view.build or {}
        if view.spec.get("deleting") or int(build.get("generation", 0)) != int(view.spec["generation"]) \
                or build.get("state") != BuildState.SUCCEEDED.value:
            return None
        spec = view.spec["spec"]
        scaling, res = spec.get("scaling", {}), spec.get("resources", {})
        policy = Policy(min_workers=int(scaling.get("min_workers", 1)), max_workers=int(scaling.get("max_workers", 10)),
                        allocation_unit=int(scaling.get("allocation_unit", 1)), interval_s=int(scaling.get("interval_s", 15)),
                        idle_timeout_s=int(scaling.get("idle_timeout_s", 120)), cores_per_worker=int(res.get("cpu", 2)),
                        memory_per_worker_mb=int(res.get("memory_mb", 2048)))
        found = self._pass_demand
        demand = found.get((view.tenant, view.sig)) if found is not None else self._demand.latest(view.tenant, view.sig)
        ready_hosts = {h.get("host") for h in hosts if h.get("ready")}
        workers = []
        for index in current_members(spec, view.status):
            name = container_name(view.tenant, view.sig, WORKER, index)
            load = demand.workers.get(name) if demand else None
            workers.append(Worker(index=index, ready=name in ready_hosts and load is not None,
                                  busy=bool(load and load.cores_used > 0),
                                  idle_since=load.idle_since if load else None))
        last = float(((view.status or {}).get("workers") or {}).get("last_change_at") or 0.0)
        if demand:
            DEMAND.labels(view.tenant, view.sig).set(demand.cores_wanted + pending_cores)
        return decide(demand, pending_cores, workers, policy, room, last, self._clock())

    def _record(self, view: SigView, decision: Decision, before: int) -> None:
        ident = (view.tenant, view.sig)
        if not decision.changed and (decision.action != "hold" or self._last_logged.get(ident) == decision.reason):
            return
        if decision.action == "hold" and not decision.capped_by:
            return
        self._last_logged[ident] = decision.reason
        entry = {"time": self._clock(), "action": decision.action, "from": before, "to": len(decision.members),
                 "members": list(decision.members), "wanted_cores": decision.wanted_cores, "needed": decision.needed,
                 "capped_by": decision.capped_by, "reason": decision.reason}
        log.info("sig %s/%s: %s %d -> %d: %s", view.tenant, view.sig, decision.action, before,
                 len(decision.members), decision.reason)
        try:
            self._demand.record_decision(view.tenant, view.sig, entry)
        except TemporaryError as exc:
            log.warning("sig %s/%s: decision not recorded: %s", view.tenant, view.sig, exc)

    def reconcile(self, view: SigView, status_entry: Entry | None, containers: list[Container],
                  hosts: list[dict[str, Any]], *, pending_cores: int = 0, room: Room | None = None,
                  notebooks: dict[str, dict[str, Any]] | None = None, notebook_room: int | None = None) -> None:
        ident = f"{view.tenant}/{view.sig}"
        scaled = self._scale(view, hosts, pending_cores, room or Room())
        members = scaled.members if scaled else None
        decision = plan(view, containers, hosts, members, now=self._clock(), notebooks=notebooks,
                        notebook_room=notebook_room)
        previous_workers = (view.status or {}).get("workers") or {}
        last_change = previous_workers.get("last_change_at")
        if scaled:
            self._record(view, scaled, len(current_members(view.spec["spec"], view.status)))
            if scaled.changed:
                last_change = self._clock()
            if scaled.capped_by and decision.status["phase"] == "READY":
                decision.status.update(reason=CAP_REASONS[scaled.capped_by], message=f"work is waiting: {scaled.reason}")
        decision.status["workers"]["last_change_at"] = last_change
        if decision.forget:
            self._forget(view)
            return
        # Intent first: the new member set is recorded before containers change, so a crash or a
        # competing replica never leaves a removed worker to be started again from a stale record.
        if not self._write_status(view, status_entry, decision.status):
            return  # another replica wrote first; re-plan on the next pass
        DESIRED.labels(view.tenant, view.sig).set(decision.status["workers"]["desired"])
        READY.labels(view.tenant, view.sig).set(decision.status["workers"]["ready"])
        for user in decision.forget_notebooks:
            self._forget_notebook(view, user)
        for name in decision.stop:
            log.info("sig %s: stopping %s", ident, name)
            self._runtime.stop(name)
        # -- etcd credentials (spaas/etcdauth.py): the SIG's own user, ensured before its containers start.
        etcd_env = self._credentials.env(view.tenant, view.sig) if self._credentials and decision.start else {}
        # -- end etcd credentials
        # -- redis (spaas/redisauth.py): the agent's queue (declared before its containers start, and once
        # per scaler process: Redis persists it) and the SIG's Redis user, re-applied on every pass
        # (Redis keeps ACL users in memory only: one cheap command).
        if not view.spec.get("deleting") and (containers or decision.start):
            if decision.start or (view.tenant, view.sig) not in self._declared:
                self._bus.declare_queue(messages.agent_queue(view.tenant, view.sig), [f"app.{view.tenant}.{view.sig}"])
                self._declared.add((view.tenant, view.sig))
            if self._redis_access:
                etcd_env = {**etcd_env, **self._redis_access.ensure(view.tenant, view.sig)}
        # -- end redis
        for spec in decision.start:
            log.info("sig %s: starting %s (generation %d)", ident, spec.name, spec.generation)
            if spec.role == nb.ROLE:
                spec = self._start_notebook(view, spec)
            self._runtime.start(dataclasses.replace(spec, env={**spec.env, **etcd_env}) if etcd_env else spec)

    def _write_status(self, view: SigView, entry: Entry | None, status: dict[str, Any]) -> bool:
        """Write the SIG's status if it changed; False only if another writer got there first."""
        previous = {k: v for k, v in (entry.value if entry else {}).items() if k not in VOLATILE + ("since",)}
        if previous == status:
            return True
        value = dict(status, updated_at=time.time())
        value["since"] = time.time() if (entry is None or entry.value.get("phase") != status["phase"]) else entry.value.get("since")
        key = self._keys.sig_status(view.tenant, view.sig)
        try:
            if entry is None:
                self._store.create(key, value)
            else:
                self._store.update(key, value, mod_revision=entry.mod_revision)
            if entry is None or entry.value.get("phase") != status["phase"]:
                log.info("sig %s/%s: phase %s (%s)", view.tenant, view.sig, status["phase"], status.get("message") or "")
        except Conflict:
            return False  # someone (another replica) wrote first; the next pass re-reads
        return True

    def _forget(self, view: SigView) -> None:
        """Everything of a deleted SIG goes: apps, hosts, secret, statuses, storage, work dirs."""
        log.info("sig %s/%s: deleted; removing its records", view.tenant, view.sig)
        self._runtime.cleanup_sig(view.tenant, view.sig)
        if self._credentials:  # its containers are gone: so goes its etcd user (spaas/etcdauth.py)
            self._credentials.forget(view.tenant, view.sig)
        if self._redis_access:  # and its Redis user (spaas/redisauth.py)
            self._redis_access.forget(view.tenant, view.sig)
        self._storage.delete_sig(view.tenant, view.sig)
        self._store.delete_prefix(self._keys.apps(view.tenant, view.sig))
        self._store.delete_prefix(self._keys.hosts(view.tenant, view.sig))
        self._store.delete_prefix(self._keys.notebooks(view.tenant, view.sig))
        self._store.delete_prefix(self._keys.all_notebook_tokens() + f"{view.tenant}/{view.sig}/")
        self._store.delete_prefix(self._keys.routes(view.tenant, view.sig))
        self._store.delete(self._keys.secret(view.tenant, view.sig))
        self._bus.delete_queue(messages.agent_queue(view.tenant, view.sig))
        self._declared.discard((view.tenant, view.sig))
        self._demand.forget(view.tenant, view.sig)
        # The spec goes last: until then the SIG is visible as DELETING.
        self._store.delete(self._keys.sig_build(view.tenant, view.sig))
        self._store.delete(self._keys.sig_status(view.tenant, view.sig))
        self._store.delete(self._keys.sig_spec(view.tenant, view.sig))


class PassClock:
    """When the last reconcile pass completed: the scaler is unhealthy when passes stall."""

    def __init__(self, resync_s: float, *, periods: float = 3.0, slack_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Unhealthy after `periods` resync periods without a completed pass, plus `slack_s` (a pass
        may legitimately wait out one container's stop grace)."""
        self._clock = clock
        self.limit_s = periods * resync_s + slack_s
        self._started = clock()
        self._last: float | None = None

    def completed(self) -> None:
        self._last = self._clock()

    def age_s(self) -> float:
        """Seconds since the last completed pass (since start while none has completed)."""
        return self._clock() - (self._last if self._last is not None else self._started)

    def health(self) -> tuple[bool, str]:
        age = self.age_s()
        if age <= self.limit_s:
            return True, ""
        what = "the last completed reconcile pass" if self._last is not None else "start without a completed pass"
        return False, f"{age:.0f}s since {what} (limit {self.limit_s:.0f}s)"


LAST_PASS_AGE = Gauge("spaas_scaler_last_pass_age_seconds", "Seconds since the scaler's last completed reconcile pass")


def run(scaler: Scaler, bus: Bus, *, stop: threading.Event, resync_s: float, passes: PassClock | None = None) -> None:
    if passes is not None:
        LAST_PASS_AGE.set_function(passes.age_s)
    wake = threading.Event()
    threading.Thread(
        target=bus.consume,
        args=(messages.SCALER_QUEUE, [messages.SigChanged.type, messages.SigBuilt.type, messages.DemandChanged.type,
                                      messages.HostChanged.type],
              lambda _e: wake.set()),
        kwargs={"stop": stop}, name="scaler-events", daemon=True,
    ).start()

    def reconcile_pass() -> None:
        scaler.reconcile_all()
        if passes is not None:
            passes.completed()

    # An event wakes the next pass early; `stop` ends the loop even in the middle of a wait.
    run_every(reconcile_pass, stop, resync_s, max_backoff_s=30.0, wake=wake, name="reconcile pass")
