"""The scaler's thin loop: read every SIG, containers and hosts; plan; act; write status.

Runs on every event (sig.changed, sig.built) and every `resync_s`, so a lost event costs at most
one resync period. One SIG's failure is logged and does not stop the others.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
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
from spaas.records import (AppRecords, HostRecord, Listing, SigRecords, host_sig, read_all_apps, read_apps, read_hosts, read_sigs,
                           read_tenants)
from spaas.redisauth import SigRedisAccess
from spaas.runtimes.base import WORKER, Address, Container, Runtime, container_name
from spaas.storage import SigStorage
from spaas.store import Entry, Store

from services.scaler.policy import DEMAND_FRESH_S, Decision, Policy, Room, Worker, decide
from services.scaler.reconcile import Plan, SigView, current_members, plan
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


@contextlib.contextmanager
def _one_sig(view: SigView | None, what: str) -> Iterator[None]:
    """One SIG's failure (or one batch's) is logged and does not stop the pass."""
    name = f"sig {view.tenant}/{view.sig}" if view is not None else "pass"
    try:
        yield
    except TemporaryError as exc:
        log.warning("%s: %s failed: %s", name, what, exc)
    except SpaasError as exc:
        # One SIG's lasting problem (e.g. etcd refusing its credentials) must not stall the others.
        log.error("%s: %s failed and needs attention: %s", name, what, exc)
    except (ValueError, TypeError, KeyError) as exc:
        # A record that passed validation but still does not add up: this SIG only.
        log.error("%s: %s failed on its records: %s", name, what, exc)


def _status_unchanged(entry: Entry | None, status: dict[str, Any]) -> bool:
    """The stored status says what `status` says (its timestamps aside)."""
    return {k: v for k, v in (entry.value if entry else {}).items() if k not in VOLATILE + ("since",)} == status


def cached_prefixes(keys: Keys) -> tuple[str, ...]:
    """What every pass reads, served from watch-backed caches (`spaas.cache.CachedStore`: one
    list + watch per prefix) instead of listing etcd again: tenants (quotas), SIG specs, builds and
    statuses, applications (pending cores), hosts, the scaler's own routes and notebook demands."""
    return (keys.tenants(), keys.all_sigs(), keys.all_apps(), keys.all_hosts(), keys.all_routes(),
            keys.all_notebooks())


class _HasSpec:
    """`(tenant, sig) in it`: the SIG has a spec key (read through the store: its cache)."""

    def __init__(self, store: Store, keys: Keys) -> None:
        self._store, self._keys = store, keys

    def __contains__(self, ident: object) -> bool:
        return isinstance(ident, tuple) and self._store.get(self._keys.sig_spec(*ident)) is not None


class Scaler:
    def __init__(self, store: Store, bus: Bus, runtime: Runtime, storage: SigStorage, *, keys: Keys,
                 demand: DemandStore, clock: Any = time.time, credentials: SigCredentials | None = None,
                 redis_access: SigRedisAccess | None = None, full_resync_s: float = 60.0, pool: Any = None) -> None:
        """`credentials`: with etcd authentication, gives each SIG's containers their own etcd user.
        `redis_access`: with a Redis password, their own Redis user (spaas/redisauth.py).
        `full_resync_s`: how often a pass reconciles every SIG, changed or not (`reconcile_all`).
        `pool`: the warm pool (services/scaler/warmpool.py), stepped in each pass; None: off."""
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
        # Incremental passes (reconcile_all): when the last full pass began; the SIGs known (with a
        # spec) and those whose last reconcile was quiet; the caches' revisions at the last pass and
        # the inputs that come from elsewhere (containers, demand), to tell what changed (`_changed`).
        self._full_resync_s = full_resync_s
        self._last_full: float | None = None
        self._known: set[tuple[str, str]] = set()
        self._settled: set[tuple[str, str]] = set()
        self._cursor: dict[str, int] = {}
        self._inputs: tuple[dict[tuple[str, str], Any], dict[tuple[str, str], Any]] | None = None
        self._reconciled = 0
        self.last_pass: tuple[bool, int] = (False, 0)  # (full, SIGs reconciled) of the last pass
        self._pass_demand: dict[tuple[str, str], Any] | None = None  # read once per pass by reconcile_all

    def reconcile_all(self, *, full: bool | None = None) -> None:
        """One pass. A full pass reconciles every SIG; between full passes (one every
        `full_resync_s`, and whenever `full` is True) a SIG is skipped while its inputs are the
        same as when its last reconcile was quiet (see `_changed`): events are hints, the
        full pass is the controller's guarantee. Records are read through `spaas.records`: a
        malformed one is skipped (logged, counted, shown on its SIG or application), never the
        whole pass. Writes return at once and the pass waits once at its end until the read
        caches show them (`CachedStore.settle_once`), so the next pass reads its own writes."""
        started = time.monotonic()
        if full is None:
            full = self._last_full is None or started - self._last_full >= self._full_resync_s
        settle = getattr(self._store, "settle_once", None)
        with settle() if settle is not None else contextlib.nullcontext():
            full = self._pass(full)
        if full:
            self._last_full = started
        self.last_pass = (full, self._reconciled)

    def _changed(self, by_sig: dict[tuple[str, str], list[Container]],
                 addresses: dict[str, Address] | None) -> set[tuple[str, str]] | None:
        """SIGs whose inputs changed since the last pass, or None when that cannot be told (no
        watch-backed caches, one of them listed again since, the first pass). Inputs: the keys
        under the cached prefixes (a tenant record or any SIG record of a tenant marks all of its
        SIGs: the quota room depends on them all), the SIG's containers and their addresses (a
        notebook container marks its tenant), and its demand's signature and freshness."""
        caches = getattr(self._store, "cache_for", None)
        cursor: dict[str, int] = {}
        changed: set[tuple[str, str]] | None = set()
        tenants: set[str] = set()
        for prefix in cached_prefixes(self._keys):
            cache = caches(prefix) if caches is not None else None
            if cache is None:
                changed = None
                continue
            cursor[prefix] = cache.revision
            since = self._cursor.get(prefix)
            keys = cache.changed_since(since) if since is not None else None
            if keys is None or changed is None:
                changed = None
                continue
            for key in keys:
                parts = key[len(prefix):].split("/")
                if prefix in (self._keys.tenants(), self._keys.all_sigs()):
                    tenants.add(parts[0])
                elif len(parts) >= 2:
                    changed.add((parts[0], parts[1]))
        self._cursor = cursor
        running: dict[tuple[str, str], Any] = {}
        where = addresses or {}
        for ident, mine in by_sig.items():
            # An address as its fields (equal exactly when the Address is): tuples of plain values
            # are dropped from the garbage collector's lists, and these are kept until the next pass.
            running[ident] = tuple(sorted((c.name, c.config_hash, c.generation, c.running, c.role,
                                           *((a.ip, a.ports) if (a := where.get(c.name)) is not None else (None, None)))
                                          for c in mine))
        demand = self._pass_demand or {}
        now = self._clock()
        wanted = {ident: (d.signature(), now - d.reported_at <= DEMAND_FRESH_S)
                  for ident, d in demand.items() if d is not None}
        previous, self._inputs = self._inputs, (running, wanted)
        if changed is None or previous is None:
            return None
        for ident in running.keys() | previous[0].keys():
            if running.get(ident) != previous[0].get(ident):
                changed.add(ident)
                if any(c[4] == nb.ROLE for c in running.get(ident, ()) + previous[0].get(ident, ())):
                    tenants.add(ident[0])
        for ident in wanted.keys() | previous[1].keys():
            if wanted.get(ident) != previous[1].get(ident):
                changed.add(ident)
        if tenants:
            sigs = self._keys.all_sigs()
            for tenant in tenants:
                changed.update((tenant, e.key[len(sigs):].split("/")[1]) for e in self._store.list(self._keys.sigs(tenant))
                               if e.key.endswith("/spec"))
        return changed

    def _pass(self, full: bool) -> bool:
        """One pass; True if it was a full one."""
        containers = self._runtime.list()
        by_sig: dict[tuple[str, str], list[Container]] = {}
        for c in containers:
            by_sig.setdefault((c.tenant, c.sig), []).append(c)
        try:
            addresses: dict[str, Address] | None = self._runtime.addresses()
        except TemporaryError as exc:
            log.warning("routes not updated this pass: %s", exc)
            addresses = None
        # Every SIG's demand in a few round trips instead of one each (bench/scale.py): the SIGs
        # known to the last pass, and any with containers or settled since.
        latest_many = getattr(self._demand, "latest_many", None)
        asked = sorted(self._known | by_sig.keys())
        self._pass_demand = latest_many(asked) if latest_many else None
        changed = self._changed(by_sig, addresses)
        if changed is None or addresses is None:
            full = True
        scope = None if full or changed is None else (self._known - self._settled) | changed
        quiet, known = self._reconcile_sigs(scope, containers, by_sig, addresses)
        if scope is None:
            self._known, self._settled = known, quiet
        else:
            self._known = (self._known - scope) | known
            self._settled = (self._settled - scope) | quiet
        self._reconciled = len(known) if scope is None else len(scope)
        self._pass_demand = None
        self._sweep_orphans(containers, known if scope is None else _HasSpec(self._store, self._keys))
        return scope is None

    def _reconcile_sigs(self, scope: set[tuple[str, str]] | None, containers: list[Container],
                        by_sig: dict[tuple[str, str], list[Container]],
                        addresses: dict[str, Address] | None) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        """Reconcile every SIG (`scope` None) or those of `scope` (the records of their tenants
        only are read); returns (the SIGs whose reconcile was quiet: nothing to write or do,
        the SIGs with a spec among those read)."""
        tenants = None if scope is None else sorted({t for t, _ in scope})
        host_listing: Listing[HostRecord] = Listing()
        sigs: Listing[SigRecords] = Listing()
        apps: Listing[AppRecords] = Listing()
        for tenant in tenants if tenants is not None else [None]:
            for listing, part in ((host_listing, read_hosts(self._store, self._keys, tenant)),
                                  (sigs, read_sigs(self._store, self._keys, tenant))):
                listing.records.extend(part.records)  # type: ignore[arg-type]
                listing.bad.extend(part.bad)
        if scope is None:
            apps = read_all_apps(self._store, self._keys)
        else:
            for tenant, sig in sorted(scope):
                part_apps = read_apps(self._store, self._keys, tenant, sig)
                apps.records.extend(part_apps.records)
                apps.bad.extend(part_apps.bad)
        hosts: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for h in host_listing:
            hosts.setdefault(host_sig(h, self._keys), []).append(h.as_value())  # shared: plan and routes only read
        if self._pool is not None:
            # Warm pool: claims before any cold start of this pass (on every SIG, read after this
            # pass's own read: a SIG built in between is claimed, never started cold), and the
            # adopted containers are the SIG's from here on.
            every = sigs if scope is None else read_sigs(self._store, self._keys)
            if self._pool.step(every, containers):
                containers = self._runtime.list()
                by_sig = {}
                for c in containers:
                    by_sig.setdefault((c.tenant, c.sig), []).append(c)
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
        known = set()
        readable: list[SigRecords] = []
        for rec in sigs:
            known.add((rec.tenant, rec.sig))
            if rec.spec is None and rec.entries["spec"].value.get("deleting") is not True:
                if scope is None or (rec.tenant, rec.sig) in scope:
                    self._invalid_spec(rec)
                continue
            readable.append(rec)

        def views() -> Iterator[tuple[SigView, Entry | None]]:
            """Each SIG's view, made as it is needed and dropped after (not held through the pass:
            what a pass holds, the garbage collector walks)."""
            for rec in readable:
                if rec.spec is None:
                    # Deleting a SIG whose spec cannot be read: stopping and forgetting need no spec.
                    yield (SigView(rec.tenant, rec.sig, {"spec": {}, "generation": 0, "deleting": True}, None,
                                   rec.status.to_value() if rec.status else None), rec.entries.get("status"))
                    continue
                mine = tuple(b.message for b in rec.bad) + tuple(invalid.get((rec.tenant, rec.sig), ()))
                # The records' shared dicts (`Record.as_value`, once per key revision): plan() only reads them.
                yield (SigView(rec.tenant, rec.sig, rec.spec.as_value(), rec.build.as_value() if rec.build else None,
                               rec.status.as_value() if rec.status else None, invalid=mine),
                       rec.entries.get("status"))

        used: dict[str, list[int]] = {}
        deleting: set[tuple[str, str]] = set()
        for view, _ in views():
            if view.spec.get("deleting"):
                deleting.add((view.tenant, view.sig))
            else:
                usage = sig_usage(view.spec["spec"], current_members(view.spec["spec"], view.status),
                                  notebook_count.get((view.tenant, view.sig), 0))
                used.setdefault(view.tenant, [0, 0, 0])
                used[view.tenant] = [a + b for a, b in zip(used[view.tenant], usage)]
        quiet: set[tuple[str, str]] = set()
        planned: list[tuple[SigView, Entry | None, list[Container], Plan, bool]] = []
        for view, status_entry in views():
            ident = (view.tenant, view.sig)
            if scope is not None and ident not in scope:
                continue  # read for its tenant's usage only
            mine_c = by_sig.get(ident, [])
            quota = quotas.get(view.tenant)
            u = used.get(view.tenant, [0, 0, 0])
            room = Room(containers=quota.max_containers - u[0], cores=quota.cores - u[1],
                        memory_mb=quota.memory_mb - u[2]) if quota else Room()
            found = None
            with _one_sig(view, "plan"):
                found = self._decide(view, status_entry, mine_c, hosts.get(ident, []),
                                     pending_cores=pending.get(ident, 0), room=room,
                                     notebooks=demands.get(ident, {}),
                                     notebook_room=_notebook_room(view.spec.get("spec") or {}, room) if quota else None)
            if found is None:
                continue
            decision, is_quiet = found
            if decision.start or decision.stop or decision.forget_notebooks \
                    or not _status_unchanged(status_entry, decision.status):
                planned.append((view, status_entry, mine_c, decision, is_quiet))
                continue
            # Nothing to write, start or stop (most SIGs of a steady pass): what is left to do is
            # bookkeeping (gauges, its queue, its Redis user), done now rather than after the others'
            # status writes, so that its plan is not held through the pass (at 5,000 SIGs the plans
            # held were most of what the garbage collector went through every pass).
            with _one_sig(view, "act"):
                self._act(view, decision, mine_c)
                if is_quiet:
                    quiet.add(ident)
        # Intent first (see `reconcile`): every status, in a few transactions, before any container changes.
        written: list[bool] = [False] * len(planned)
        with _one_sig(None, "status write"):
            written = self._write_statuses([(view, entry, decision.status) for view, entry, _, decision, _ in planned])
        for (view, _, mine_c, decision, is_quiet), ok in zip(planned, written):
            if not ok:
                continue  # another replica wrote first; re-plan on the next pass
            with _one_sig(view, "act"):
                self._act(view, decision, mine_c)
                if is_quiet:
                    quiet.add((view.tenant, view.sig))
        # Routes of every SIG (of the scope) that is not being deleted (an unreadable spec leaves what runs alone).
        routed = {ident for ident in known if scope is None or ident in scope}
        # A pass over a scope also clears the routes of its SIGs that are being deleted or gone
        # (their spec changed or went, so they are in the scope): no route outlives its SIG.
        if addresses is not None and not self._write_routes(
                routed - deleting, by_sig, hosts,
                addresses, full=scope is None, listed=scope):
            quiet -= routed
        return quiet, known

    def _write_routes(self, sigs: set[tuple[str, str]], containers_of: dict[tuple[str, str], list[Container]],
                      by_sig: dict[tuple[str, str], list[dict[str, Any]]], addresses: dict[str, Address], *,
                      full: bool = True, listed: set[tuple[str, str]] | None = None) -> bool:
        """The proxy's verified routes (services/scaler/routes.py) of `sigs`: written where they
        changed, removed where no verified port is left; with `full`, every route of a SIG not in
        `sigs` goes too, otherwise every route of a SIG of `listed` (the pass's scope, a superset
        of `sigs`) not in `sigs`. Not called for a pass whose addresses cannot be read (the last
        routes stay; they name only what was verified). False if a write failed."""
        try:
            if full:
                existing = {e.key: e for e in self._store.list(self._keys.all_routes())}
            else:
                existing = {e.key: e for t, s in sigs | (listed or set())
                            for e in self._store.list(self._keys.routes(t, s))}
        except TemporaryError as exc:
            log.warning("routes not updated this pass: %s", exc)
            return False
        ok = True
        wanted: dict[str, dict[str, Any]] = {}
        for tenant, sig in sigs:
            mine = containers_of.get((tenant, sig), [])
            for host, route in verified_routes(by_sig.get((tenant, sig), []), mine, addresses).items():
                wanted[self._keys.route(tenant, sig, host)] = route
        writes: list[tuple[str, dict[str, Any] | None, int | None]] = [
            (key, route, None) for key, route in wanted.items()
            if key not in existing or existing[key].value != route]
        writes += [(key, None, None) for key in sorted(existing.keys() - wanted.keys())]
        batch = getattr(self._store, "write_many", None)
        if batch is not None and writes:
            try:
                batch(writes)  # the scaler is the routes' only writer: unconditional puts and deletes
            except TemporaryError as exc:
                log.warning("%d routes not written: %s", len(writes), exc)
                ok = False
            return ok
        for key, value, _ in writes:
            try:
                if value is not None:
                    self._store.put(key, value)
                else:
                    self._store.delete(key)
            except TemporaryError as exc:
                log.warning("route %s not written: %s", key, exc)
                ok = False
        return ok

    def _sweep_orphans(self, containers: list[Container], known: set[tuple[str, str]] | _HasSpec) -> None:
        """Whatever the runtime holds for SIGs with no spec in etcd (keys removed by hand, the
        platform's state wiped): their containers, networks, routes and credentials go. Only this
        platform's own (the runtime lists only its stack's), and only after etcd answered."""
        leftovers = getattr(self._runtime, "sigs", None)
        orphans = {(c.tenant, c.sig) for c in containers} | (set(leftovers()) if leftovers else set())
        for tenant, sig in sorted(o for o in orphans if o not in known):
            log.info("sig %s/%s has no spec: removing its orphaned containers and network", tenant, sig)
            try:
                for c in containers:
                    if (c.tenant, c.sig) == (tenant, sig):
                        log.info("stopping orphan container %s", c.name)
                        self._runtime.stop(c.name)
                self._runtime.cleanup_sig(tenant, sig)
                for route in self._store.list(self._keys.routes(tenant, sig)):
                    self._store.delete(route.key)  # no route outlives its containers
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
        ident = (view.tenant, view.sig)
        demand = found[ident] if found is not None and ident in found else self._demand.latest(view.tenant, view.sig)
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
                  notebooks: dict[str, dict[str, Any]] | None = None, notebook_room: int | None = None) -> bool:
        """Plan one SIG and act on it. True when it was quiet: nothing to write, start or stop, a
        steady (or no) scaling decision and no notebook server, so nothing changes until one of
        its inputs does (`reconcile_all` may then skip it until the next full pass)."""
        planned = self._decide(view, status_entry, containers, hosts, pending_cores=pending_cores, room=room,
                               notebooks=notebooks, notebook_room=notebook_room)
        if planned is None:
            return False
        # Intent first: the new member set is recorded before containers change, so a crash or a
        # competing replica never leaves a removed worker to be started again from a stale record.
        if not self._write_status(view, status_entry, planned[0].status):
            return False  # another replica wrote first; re-plan on the next pass
        self._act(view, planned[0], containers)
        return planned[1]

    def _decide(self, view: SigView, status_entry: Entry | None, containers: list[Container],
                hosts: list[dict[str, Any]], *, pending_cores: int = 0, room: Room | None = None,
                notebooks: dict[str, dict[str, Any]] | None = None,
                notebook_room: int | None = None) -> tuple[Plan, bool] | None:
        """(the SIG's plan, whether it is quiet); None when the SIG is gone (`_forget` ran)."""
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
            return None
        quiet = (not decision.start and not decision.stop and not decision.forget_notebooks and not notebooks
                 and not any(c.role == nb.ROLE for c in containers)
                 and (scaled is None or scaled.action == "steady") and not view.spec.get("deleting")
                 and _status_unchanged(status_entry, decision.status))
        return decision, quiet

    def _act(self, view: SigView, decision: Plan, containers: list[Container]) -> None:
        """What follows a plan whose status is written: notebooks forgotten, containers stopped,
        credentials and queues ensured, containers started."""
        ident = f"{view.tenant}/{view.sig}"
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

    def _status_write(self, view: SigView, entry: Entry | None,
                      status: dict[str, Any]) -> tuple[str, dict[str, Any], int] | None:
        """The compare-and-swap that writes the SIG's status `(key, value, expected revision)`,
        None if it is unchanged."""
        if _status_unchanged(entry, status):
            return None
        now = time.time()
        value = dict(status, updated_at=now)
        value["since"] = now if (entry is None or entry.value.get("phase") != status["phase"]) else entry.value.get("since")
        return self._keys.sig_status(view.tenant, view.sig), value, entry.mod_revision if entry else 0

    def _write_statuses(self, items: list[tuple[SigView, Entry | None, dict[str, Any]]]) -> list[bool]:
        """`_write_status` of many SIGs, in a few transactions when the store batches
        (`write_many`); per SIG, False only if another writer got there first."""
        batch = getattr(self._store, "write_many", None)
        if batch is None:
            return [self._write_status(*item) for item in items]
        writes = [(i, w) for i, item in enumerate(items) if (w := self._status_write(*item)) is not None]
        out = [True] * len(items)
        if not writes:
            return out
        for (i, _), revision in zip(writes, batch([w for _, w in writes])):
            view, entry, status = items[i]
            out[i] = bool(revision)
            if revision and (entry is None or entry.value.get("phase") != status["phase"]):
                log.info("sig %s/%s: phase %s (%s)", view.tenant, view.sig, status["phase"], status.get("message") or "")
        return out

    def _write_status(self, view: SigView, entry: Entry | None, status: dict[str, Any]) -> bool:
        """Write the SIG's status if it changed; False only if another writer got there first."""
        if _status_unchanged(entry, status):
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
