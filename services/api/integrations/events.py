"""The lifecycle event stream: application states and SIG phases, read from etcd and published to
the `spaas.lifecycle` topic exchange (routing keys `app.<t>.<s>.<STATE>`, `sig.<t>.<s>.<PHASE>`).

etcd is the truth; the publisher polls it (the store has no watch) every `poll_s`, compares
each object's state with what it published last and publishes the changes (`changes()`, pure).
Events are snapshots: a state that came and went between two polls is not seen (the final
state always is). After each pass that published, it records the highest etcd revision it saw
(`{p}/lifecycle/cursor`). A restarted publisher publishes only objects whose key changed after
that revision, so a restart does not replay history; delivery is at-least-once (a crash between
publishing and recording the cursor repeats those events, each carrying its `revision` so
consumers can drop duplicates). A first start (no cursor) publishes nothing old.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kombu import Connection, Exchange
from prometheus_client import Counter

from spaas import integrations
from spaas.keys import Keys
from spaas.records import read_all_apps, read_sigs
from spaas.store import Store

log = logging.getLogger(__name__)

CURSOR_EVERY_S = 30.0
EVENTS = Counter("spaas_lifecycle_events_total", "Lifecycle events published", ["kind"])


@dataclass(frozen=True)
class Observed:
    """One object's current state as etcd has it."""

    kind: str  # "app" or "sig"
    tenant: str
    sig: str
    app_id: str
    state: str
    reason: str | None
    revision: int


def observe(store: Store, keys: Keys) -> list[Observed]:
    """Every application's state and every SIG's phase (an app without a state key is SUBMITTED)."""
    out: list[Observed] = []
    for app in read_all_apps(store, keys):
        if not app.has_spec:
            continue
        reason: str | None
        if app.invalid is not None:
            state, reason = "FAILED", "InvalidRecord"
        elif app.state is not None:
            state, reason = app.state.state.value, app.state.reason
        else:
            state, reason = "SUBMITTED", None
        rev = max(e.mod_revision for part, e in app.entries.items() if part in ("spec", "state"))
        out.append(Observed("app", app.tenant, app.sig, app.app_id, state, reason, rev))
    for sig in read_sigs(store, keys):
        entry = sig.entries.get("status")
        if sig.status is None or entry is None:
            continue
        out.append(Observed("sig", sig.tenant, sig.sig, "", sig.status.phase.value, sig.status.reason,
                            entry.mod_revision))
    return out


def identity(o: Observed) -> tuple[str, str, str, str]:
    return o.kind, o.tenant, o.sig, o.app_id


def changes(published: dict[tuple[str, str, str, str], str], seen: Iterable[Observed],
            cursor: int) -> list[Observed]:
    """What to publish: objects whose state differs from the last published one; for objects not
    published by this process yet, only those changed after `cursor`. Pure."""
    out = []
    for o in seen:
        last = published.get(identity(o))
        if last is None and o.revision <= cursor:
            continue
        if last != o.state:
            out.append(o)
    return out


def event_of(o: Observed, now: float) -> tuple[str, dict[str, Any]]:
    if o.kind == "app":
        return (integrations.app_routing_key(o.tenant, o.sig, o.state),
                integrations.app_event(o.tenant, o.sig, o.app_id, o.state, o.reason, o.revision, now))
    return (integrations.sig_routing_key(o.tenant, o.sig, o.state),
            integrations.sig_event(o.tenant, o.sig, o.state, o.reason, o.revision, now))


class EventPublisher:
    def __init__(self, store: Store, keys: Keys, redis_url: str, *, poll_s: float = 1.0, timeout_s: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._keys = keys
        self._url = redis_url
        self._poll = poll_s
        self._timeout = timeout_s
        self._clock = clock
        self._exchange = Exchange(integrations.EVENT_EXCHANGE, type="topic", durable=True)
        self._published: dict[tuple[str, str, str, str], str] = {}
        self._cursor: int | None = None
        self._cursor_saved_at = 0.0
        self.last_pass_at = 0.0

    def _load_cursor(self, seen: list[Observed]) -> int:
        entry = self._store.get(self._keys.lifecycle_cursor())
        if entry is not None and isinstance(entry.value.get("revision"), int):
            return int(entry.value["revision"])
        return max((o.revision for o in seen), default=0)  # first start: nothing old is news

    def _save_cursor(self, revision: int) -> None:
        self._store.put(self._keys.lifecycle_cursor(), {"revision": revision, "at": self._clock()})

    def pass_once(self, conn: Connection) -> int:
        """One poll: publish what changed; returns the number of events published."""
        seen = observe(self._store, self._keys)
        if self._cursor is None:
            self._cursor = self._load_cursor(seen)
        todo = changes(self._published, seen, self._cursor)
        if todo:
            producer = conn.Producer(exchange=self._exchange)
            publish = conn.ensure(producer, producer.publish, max_retries=3, interval_start=0.2, interval_step=0.5)
            now = self._clock()
            for o in todo:
                routing_key, body = event_of(o, now)
                publish(json.dumps(body), routing_key=routing_key, content_type="application/json",
                        content_encoding="utf-8", declare=[self._exchange])
                self._published[identity(o)] = o.state
                EVENTS.labels(o.kind).inc()
                log.info("event %s (revision %d)", routing_key, o.revision)
        current = {identity(o) for o in seen}
        for gone in set(self._published) - current:
            del self._published[gone]
        for o in seen:  # known now: later passes compare states, not revisions
            self._published.setdefault(identity(o), o.state)
        top = max((o.revision for o in seen), default=self._cursor)
        # Recorded after publishing, and at most every CURSOR_EVERY_S when only unpublished keys moved.
        if top > self._cursor and (todo or self._clock() - self._cursor_saved_at >= CURSOR_EVERY_S):
            self._cursor = top
            self._save_cursor(self._cursor)
            self._cursor_saved_at = self._clock()
        self.last_pass_at = self._clock()
        return len(todo)

    def run(self, stop: threading.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                with Connection(self._url, connect_timeout=self._timeout,
                                transport_options={"socket_timeout": self._timeout}) as conn:
                    while not stop.is_set():
                        self.pass_once(conn)
                        backoff = 0.5
                        stop.wait(self._poll)
            except Exception as exc:
                log.warning("event publisher pass failed (%s); retrying in %.1fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 15.0)
