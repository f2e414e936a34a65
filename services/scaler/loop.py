"""The scaler's thin loop: read every SIG, containers and hosts; plan; act; write status.

Runs on every event (sig.changed, sig.built) and every `resync_s`, so a lost event costs at most
one resync period. One SIG's failure is logged and does not stop the others.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from prometheus_client import Gauge

from spaas import messages
from spaas.bus import Bus
from spaas.errors import Conflict, TemporaryError
from spaas.keys import Keys
from spaas.runtimes.base import Container, Runtime
from spaas.storage import SigStorage
from spaas.store import Entry, Store

from services.scaler.reconcile import SigView, plan

log = logging.getLogger(__name__)

DESIRED = Gauge("spaas_sig_workers_desired", "Desired workers per SIG", ["tenant", "sig"])
READY = Gauge("spaas_sig_workers_ready", "Ready workers per SIG", ["tenant", "sig"])
VOLATILE = ("updated_at",)


class Scaler:
    def __init__(self, store: Store, bus: Bus, runtime: Runtime, storage: SigStorage, *, keys: Keys) -> None:
        self._store = store
        self._bus = bus
        self._runtime = runtime
        self._storage = storage
        self._keys = keys

    def _views(self) -> list[tuple[SigView, Entry | None]]:
        parts: dict[tuple[str, str], dict[str, Entry]] = {}
        for entry in self._store.list(self._keys.all_sigs()):
            tenant, sig, part = self._keys.split_sig_key(entry.key)
            parts.setdefault((tenant, sig), {})[part] = entry
        views = []
        for (tenant, sig), p in sorted(parts.items()):
            if "spec" not in p:
                continue  # half-deleted leftovers are cleaned by forget()
            build = p.get("build")
            status = p.get("status")
            views.append((SigView(tenant, sig, p["spec"].value, build.value if build else None,
                                  status.value if status else None), status))
        return views

    def reconcile_all(self) -> None:
        containers = self._runtime.list()
        hosts: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for entry in self._store.list(self._keys.all_hosts()):
            rest = entry.key[len(self._keys.all_hosts()):].split("/")
            if len(rest) == 3:
                hosts.setdefault((rest[0], rest[1]), []).append(entry.value)
        known = set()
        for view, status_entry in self._views():
            known.add((view.tenant, view.sig))
            mine = [c for c in containers if c.tenant == view.tenant and c.sig == view.sig]
            try:
                self.reconcile(view, status_entry, mine, hosts.get((view.tenant, view.sig), []))
            except TemporaryError as exc:
                log.warning("sig %s/%s: reconcile failed: %s", view.tenant, view.sig, exc)
        # Containers of SIGs that no longer exist at all (e.g. keys removed by hand).
        for c in containers:
            if (c.tenant, c.sig) not in known:
                log.info("stopping orphan container %s", c.name)
                self._runtime.stop(c.name)

    def reconcile(self, view: SigView, status_entry: Entry | None, containers: list[Container],
                  hosts: list[dict[str, Any]]) -> None:
        ident = f"{view.tenant}/{view.sig}"
        decision = plan(view, containers, hosts)
        for name in decision.stop:
            log.info("sig %s: stopping %s", ident, name)
            self._runtime.stop(name)
        for spec in decision.start:
            log.info("sig %s: starting %s (generation %d)", ident, spec.name, spec.generation)
            self._runtime.start(spec)
        if decision.forget:
            self._forget(view)
            return
        DESIRED.labels(view.tenant, view.sig).set(decision.status["workers"]["desired"])
        READY.labels(view.tenant, view.sig).set(decision.status["workers"]["ready"])
        self._write_status(view, status_entry, decision.status)

    def _write_status(self, view: SigView, entry: Entry | None, status: dict[str, Any]) -> None:
        previous = {k: v for k, v in (entry.value if entry else {}).items() if k not in VOLATILE + ("since",)}
        if previous == status:
            return
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
            pass  # someone (another replica) wrote first; the next pass re-reads

    def _forget(self, view: SigView) -> None:
        """Everything of a deleted SIG goes: apps, hosts, secret, statuses, storage, work dirs."""
        log.info("sig %s/%s: deleted; removing its records", view.tenant, view.sig)
        self._runtime.cleanup_sig(view.tenant, view.sig)
        self._storage.delete_sig(view.tenant, view.sig)
        self._store.delete_prefix(self._keys.apps(view.tenant, view.sig))
        self._store.delete_prefix(self._keys.hosts(view.tenant, view.sig))
        self._store.delete(self._keys.secret(view.tenant, view.sig))
        self._bus.delete_queue(messages.agent_queue(view.tenant, view.sig))
        # The spec goes last: until then the SIG is visible as DELETING.
        self._store.delete(self._keys.sig_build(view.tenant, view.sig))
        self._store.delete(self._keys.sig_status(view.tenant, view.sig))
        self._store.delete(self._keys.sig_spec(view.tenant, view.sig))


def run(scaler: Scaler, bus: Bus, *, stop: threading.Event, resync_s: float) -> None:
    wake = threading.Event()
    threading.Thread(
        target=bus.consume,
        args=(messages.SCALER_QUEUE, [messages.SigChanged.type, messages.SigBuilt.type], lambda _e: wake.set()),
        kwargs={"stop": stop}, name="scaler-events", daemon=True,
    ).start()
    backoff = resync_s
    while not stop.is_set():
        try:
            scaler.reconcile_all()
            backoff = resync_s
        except TemporaryError as exc:
            log.warning("reconcile pass failed: %s", exc)
            backoff = min(backoff * 2, 30.0)
        wake.wait(backoff)
        wake.clear()
