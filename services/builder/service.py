"""The builder controller: bring each SIG's `status.build` up to date with its spec generation.

    build_sig(t, s):  read spec -> plan -> (cache hit | join the build in flight | build) -> write
                      `{p}/sigs/t/s/build` -> publish sig.built

The build of a key is locked by a leased etcd key (`{p}/build-locks/<key>`): put-if-absent wins
the right to build; a loser joins by waiting for the record `{p}/builds/<key>`. A builder that
dies loses its lease, the lock vanishes, and the next attempt (task redelivery or resync) takes
over. Every step is idempotent, so duplicate tasks are harmless.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from prometheus_client import Counter, Histogram

from spaas import messages
from spaas.bus import Bus
from spaas.errors import Conflict, PermanentError, TemporaryError
from spaas.keys import Keys
from spaas.logstream import LogStreams, key_build_stream, sig_build_stream
from spaas.model import BuildState, dump
from spaas.records import BuildRecord, BuildStatus, InvalidRecord, SigRecords, get_record, read_sigs
from spaas.redact import redact_urls
from spaas.store import Store, read_modify_write

from services.builder.planner import BuildPlan, plan

log = logging.getLogger(__name__)

BUILDS = Counter("spaas_builds_total", "SIG build requests by outcome", ["outcome"])
BUILD_SECONDS = Histogram("spaas_build_duration_seconds", "Time to build an artifact",
                          buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800))


class ArtifactBuilder(Protocol):
    def existing(self, plan: BuildPlan) -> str | None: ...

    def build(self, plan: BuildPlan, log: Callable[[str], None]) -> str: ...


class BuildService:
    def __init__(self, store: Store, bus: Bus, logs: LogStreams, builder: ArtifactBuilder, *, keys: Keys,
                 lock_ttl_s: int = 10, join_timeout_s: float = 1800.0, runtime: str = "process",
                 base_for: Callable[[str], str] | None = None, redact: Callable[[str], str] = redact_urls) -> None:
        """`base_for(spark_version)`: what the artifact is built on, part of the build key
        (Docker: the Spark image's id); default: this machine's Python and platform.
        `redact`: masks operator credentials in every log line and error message tenants can
        read (default: credentials in URLs; `__main__` adds the configured secrets)."""
        self._redact = redact
        self._store = store
        self._bus = bus
        self._logs = logs
        self._builder = builder
        self._keys = keys
        self._ttl = lock_ttl_s
        self._join_timeout = join_timeout_s
        self._runtime = runtime
        self._base_for = base_for

    # -- status of one SIG (this service owns the `build` key) ------------------------------
    def _write_status(self, tenant: str, sig: str, value: dict[str, Any]) -> bool:
        """Write the SIG's build status unless a newer generation was already recorded."""
        written = False

        def change(current: dict[str, Any] | None) -> dict[str, Any] | None:
            nonlocal written
            try:
                written = current is None or \
                    BuildStatus.from_value(key, current).generation <= int(value["generation"])
            except InvalidRecord:
                written = True  # a malformed status (ours to own) is replaced
            return value if written else None

        key = self._keys.sig_build(tenant, sig)
        try:
            read_modify_write(self._store, key, change)
        except Conflict:
            return False
        return written

    def _sig(self, tenant: str, sig: str) -> SigRecords | None:
        """The SIG's spec and build status through the validated path (None without a spec)."""
        listing = read_sigs(self._store, self._keys, tenant, sig)
        return listing.records[0] if listing.records else None

    def needs_build(self, tenant: str, sig: str) -> bool:
        return self._needs(self._sig(tenant, sig))

    def _needs(self, rec: SigRecords | None) -> bool:
        if rec is None or rec.spec is None or rec.spec.deleting:
            return False  # an unreadable spec is reported on the SIG by the scaler
        status = rec.build
        if status is None:
            return True  # none yet, or a malformed one: building writes a good one over it
        done = status.state in (BuildState.SUCCEEDED, BuildState.FAILED)
        if not done:
            # In progress: only if nobody holds the lock (its builder died).
            return self._store.get(self._keys.build_lock(status.key or "")) is None
        if status.generation < rec.spec.generation:
            return True
        return self._artifact_gone(rec.tenant, rec.sig, dump(rec.spec.spec), status.to_value())

    def _plan_for(self, tenant: str, sig: str, spec: dict[str, Any]) -> BuildPlan:
        base = self._base_for(spec["spark_version"]) if self._base_for else None
        return dataclasses.replace(plan(spec, base=base, runtime=self._runtime), tenant=tenant, sig=sig)

    def _artifact_gone(self, tenant: str, sig: str, spec: dict[str, Any], status: dict[str, Any]) -> bool:
        """A build recorded as done whose artifact has vanished (an image removed by hand, a
        pruned directory): rebuild it rather than leave the SIG unable to start."""
        if status.get("state") != BuildState.SUCCEEDED.value:
            return False
        the_plan = self._plan_for(tenant, sig, spec)
        return the_plan.key == status.get("key") and self._builder.existing(the_plan) is None

    def build_sig(self, tenant: str, sig: str) -> str | None:
        """Bring the SIG's build up to date; returns the outcome (None if nothing to do)."""
        rec = self._sig(tenant, sig)
        if rec is None or rec.spec is None or rec.spec.deleting:
            return None
        generation = rec.spec.generation
        status = rec.build
        spec = dump(rec.spec.spec)
        if status and status.generation == generation and status.state in (BuildState.SUCCEEDED, BuildState.FAILED) \
                and not self._artifact_gone(tenant, sig, spec, status.to_value()):
            return None
        the_plan = self._plan_for(tenant, sig, spec)
        stream = sig_build_stream(tenant, sig, generation)
        ident = f"{tenant}/{sig}@{generation}"
        started = time.time()
        self._write_status(tenant, sig, {"generation": generation, "key": the_plan.key, "state": BuildState.BUILDING.value,
                                         "started_at": started})
        self._logs.append(stream, f"build key {the_plan.key} (spark {the_plan.spark_version}, "
                                  f"{len(the_plan.python_packages)} python packages)")
        try:
            artifact, how = self._artifact(the_plan, stream, ident)
        except PermanentError as exc:
            message = self._redact(exc.message)
            log.warning("build %s failed: %s", ident, message)
            self._logs.append(stream, f"build failed: {message}")
            self._finish(tenant, sig, generation, the_plan, started, state=BuildState.FAILED, reason="BuildFailed",
                         message=message)
            BUILDS.labels("failed").inc()
            return "failed"
        self._logs.append(stream, f"artifact ready: {how}")
        self._finish(tenant, sig, generation, the_plan, started, state=BuildState.SUCCEEDED, artifact=artifact,
                     cache_hit=(how == "cache hit"), joined=(how == "joined"))
        BUILDS.labels(how.replace(" ", "_")).inc()
        return how

    def _finish(self, tenant: str, sig: str, generation: int, the_plan: BuildPlan, started: float, *,
                state: BuildState, **fields: Any) -> None:
        self._write_status(tenant, sig, {"generation": generation, "key": the_plan.key, "state": state.value,
                                         "started_at": started, "finished_at": time.time(), **fields})
        try:
            self._bus.publish(messages.SigBuilt(tenant=tenant, sig=sig, generation=generation, build_key=the_plan.key))
        except TemporaryError as exc:
            log.warning("cannot announce build of %s/%s: %s (the scaler resyncs)", tenant, sig, exc)

    def _build_record(self, key: str) -> BuildRecord | None:
        """The record of a build key; a malformed one counts as absent (the build rewrites it)."""
        record = get_record(self._store, self._keys.build(key), BuildRecord)
        return record if isinstance(record, BuildRecord) else None

    def _artifact(self, the_plan: BuildPlan, stream: str, ident: str) -> tuple[str, str]:
        """(artifact, how) where how is 'cache hit', 'joined' or 'built'."""
        deadline = time.monotonic() + self._join_timeout
        joined = False
        while time.monotonic() < deadline:
            record = self._build_record(the_plan.key)
            artifact = self._builder.existing(the_plan)
            if record and record.state == BuildState.SUCCEEDED and artifact:
                if not joined:
                    self._logs.append(stream, f"cache hit: reusing artifact {the_plan.key} "
                                              f"built {time.ctime(record.finished_at or 0)}")
                return artifact, "joined" if joined else "cache hit"
            lease = self._store.grant_lease(self._ttl)
            try:
                self._store.create(self._keys.build_lock(the_plan.key), {"ident": ident, "at": time.time()}, lease=lease)
            except Conflict:
                self._store.revoke(lease)
                if not joined:
                    self._logs.append(stream, f"joining the build of {the_plan.key} already in flight")
                    log.info("build %s joins build %s in flight", ident, the_plan.key)
                joined = True
                time.sleep(0.5)
                continue
            try:
                if joined:
                    # The previous builder finished or died; check its result before building.
                    record = self._build_record(the_plan.key)
                    artifact = self._builder.existing(the_plan)
                    if record and record.state == BuildState.SUCCEEDED and artifact:
                        return artifact, "joined"
                return self._build_locked(the_plan, stream, ident, lease), "built"
            finally:
                self._store.revoke(lease)
        raise PermanentError(f"gave up waiting for build {the_plan.key} after {self._join_timeout:.0f}s")

    def _build_locked(self, the_plan: BuildPlan, stream: str, ident: str, lease: int) -> str:
        key_stream = key_build_stream(the_plan.key)
        self._logs.append(stream, f"building {the_plan.key}; output follows")
        stop = threading.Event()

        def keep_lock() -> None:
            while not stop.wait(max(1.0, self._ttl / 3)):
                try:
                    self._store.keepalive(lease)
                except TemporaryError as exc:
                    log.warning("cannot renew build lock %s: %s", the_plan.key, exc)

        keeper = threading.Thread(target=keep_lock, name=f"lock-{the_plan.key}", daemon=True)
        keeper.start()
        buffer: list[str] = []
        last_flush = [time.monotonic()]

        def emit(line: str) -> None:
            buffer.append(self._redact(line))
            if len(buffer) >= 20 or time.monotonic() - last_flush[0] > 0.5:
                flush()

        def flush() -> None:
            if buffer:
                lines = list(buffer)
                buffer.clear()
                try:
                    self._logs.append(key_stream, *lines)
                    self._logs.append(stream, *lines)
                except TemporaryError:
                    pass
            last_flush[0] = time.monotonic()

        started = time.monotonic()
        log.info("build %s: building %s", ident, the_plan.key)
        try:
            with BUILD_SECONDS.time():
                artifact = self._builder.build(the_plan, emit)
        except PermanentError as exc:
            flush()
            self._store.put(self._keys.build(the_plan.key), {"state": BuildState.FAILED.value,
                                                             "message": self._redact(exc.message),
                                                             "finished_at": time.time()})
            raise
        finally:
            stop.set()
            flush()
        self._store.put(self._keys.build(the_plan.key), {
            "state": BuildState.SUCCEEDED.value, "artifact": artifact, "finished_at": time.time(),
            "duration_s": round(time.monotonic() - started, 2), "spark_version": the_plan.spark_version,
        })
        log.info("build %s: built %s in %.1fs", ident, the_plan.key, time.monotonic() - started)
        return artifact

    # -- resync -----------------------------------------------------------------------------
    def pending(self) -> list[tuple[str, str]]:
        """SIGs whose build is behind their spec (or whose builder died). One SIG whose check
        fails is logged and skipped; the others are still found."""
        found = []
        for rec in read_sigs(self._store, self._keys):
            try:
                if self._needs(rec):
                    found.append((rec.tenant, rec.sig))
            except (TemporaryError, PermanentError, ValueError, KeyError, TypeError) as exc:
                log.warning("sig %s/%s: cannot tell whether it needs a build: %s", rec.tenant, rec.sig, exc)
        return found
