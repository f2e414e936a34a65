"""Watch-backed caches of etcd prefixes (informer style), and a Store that reads from them.

`WatchCache(store, prefix)` lists the prefix, then watches it from the listing's revision and
applies every put and delete in revision order, in memory. When the watch cannot go on from where
it was (etcd compacted past it), or etcd cannot be reached, it lists again (with backoff while it
fails); while it is not in step (`synced` false: before the first listing, after a watch error
until the next listing) it answers nothing itself: `CachedStore` then reads etcd directly, so a
stale cache is never served for longer than an open watch stays silent without a byte (the
stream's read timeout, `read_timeout_s`, after which it watches again from its revision).

`CachedStore(store, prefixes)` is a `Store`: `get`/`list` under a cached prefix are served from
memory; everything else, and every write, goes to etcd. Typed reads are the usual
`spaas.records` helpers over it (`read_sigs(cached, keys, ...)`, `read_members`, ...).

Read-your-writes: a write through the `CachedStore` returns only once the cache covering its key
has applied the write's revision (bounded by `settle_s`), so the writer's next read, and every
other read in the same process, sees it. A compare-and-swap that loses (`Conflict`) waits until
the cache shows the key as etcd has it, so the caller's retry reads the current value.

Other processes' writes (another API replica revoking a token, removing a grant; the scaler's
status) show within the watch latency: the time etcd takes to send the event over an open watch,
milliseconds on one machine. A revoked token stops working in every replica as soon as its
replica applied the delete.
"""

from __future__ import annotations

import bisect
import builtins
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from spaas.errors import Conflict, SpaasError
from spaas.etcd import Change, EtcdStore, Watch, WatchCompacted
from spaas.store import Entry

log = logging.getLogger(__name__)


# Events a WatchCache remembers for `changed_since` (then the oldest half goes).
LOG_MAX = 100_000


class WatchCache:
    """An in-memory copy of every key under `prefix`, kept in step by a watch (see the module doc)."""

    def __init__(self, store: EtcdStore, prefix: str, *, read_timeout_s: float = 60.0, min_backoff_s: float = 0.2,
                 max_backoff_s: float = 10.0) -> None:
        self.store = store
        self.prefix = prefix
        self._read_timeout_s = read_timeout_s
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._cond = threading.Condition()
        self._entries: dict[str, Entry] = {}
        self._keys: list[str] = []  # sorted, for prefix listings
        self._revision = 0
        self._synced = False
        self._stop = threading.Event()
        self._watch: Watch | None = None
        self._thread: threading.Thread | None = None
        # Observability (and tests): how often it listed, and how many events it applied.
        self.listings = 0
        self.events = 0
        # (revision, key) of the events applied since the last listing, for `changed_since`;
        # `_log_floor`: the revision from which the log is complete (a listing, or trimming, moves it).
        self._log: list[tuple[int, str]] = []
        self._log_floor = 0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, *, wait_s: float = 0.0) -> WatchCache:
        """Start the list-and-watch thread; with `wait_s`, wait that long for the first listing."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"watch-cache {self.prefix}", daemon=True)
            self._thread.start()
        if wait_s:
            self.wait_synced(wait_s)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        watch = self._watch
        if watch is not None:
            watch.close()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with self._cond:
            self._synced = False
            self._cond.notify_all()

    @property
    def synced(self) -> bool:
        return self._synced

    @property
    def revision(self) -> int:
        """The etcd revision up to which every change under the prefix has been applied."""
        return self._revision

    def wait_synced(self, timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._synced or self._stop.is_set(), timeout_s) and self._synced

    def wait_for(self, revision: int, timeout_s: float) -> bool:
        """Wait until the cache applied `revision` (True), or is out of step so that reads go to
        etcd anyway (True), or `timeout_s` passed (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._synced or self._revision >= revision, timeout_s)

    def wait_until(self, check: Callable[[WatchCache], bool], timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._synced or check(self), timeout_s)

    # -- reads --------------------------------------------------------------------------------
    def covers(self, key_or_prefix: str) -> bool:
        return key_or_prefix.startswith(self.prefix)

    def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    def list(self, prefix: str) -> list[Entry]:
        """Entries whose key starts with `prefix`, in key order (as etcd lists them)."""
        with self._cond:
            keys = self._keys
            i = bisect.bisect_left(keys, prefix)
            out = []
            while i < len(keys) and keys[i].startswith(prefix):
                out.append(self._entries[keys[i]])
                i += 1
            return out

    def __len__(self) -> int:
        return len(self._entries)

    def changed_since(self, revision: int) -> set[str] | None:
        """Keys put or deleted after `revision` (as far as the cache applied), or None when that
        cannot be told: out of step, listed again since (a compaction, a watch error) or the log
        no longer goes back that far. A controller then looks at everything."""
        with self._cond:
            if not self._synced or revision < self._log_floor:
                return None
            i = bisect.bisect_right(self._log, (revision, "\U0010ffff"))
            return {key for _, key in self._log[i:]}

    # -- the loop -----------------------------------------------------------------------------
    def _relist(self) -> None:
        entries, revision = self.store.list_at(self.prefix)
        with self._cond:
            self._entries = {e.key: e for e in entries}
            self._keys = sorted(self._entries)
            self._revision = revision
            self._synced = True
            self.listings += 1
            self._log, self._log_floor = [], revision
            self._cond.notify_all()

    def _apply(self, changes: Iterable[Change]) -> None:
        with self._cond:
            floor = self._revision  # one transaction's events share a revision: compare with the start
            for change in changes:
                if change.revision <= floor:
                    continue  # already in the listing
                if change.entry is None:
                    if self._entries.pop(change.key, None) is not None:
                        i = bisect.bisect_left(self._keys, change.key)
                        del self._keys[i]
                else:
                    if change.key not in self._entries:
                        bisect.insort(self._keys, change.key)
                    self._entries[change.key] = change.entry
                self._revision = change.revision
                self.events += 1
                self._log.append((change.revision, change.key))
            if len(self._log) > LOG_MAX:
                drop = len(self._log) - LOG_MAX // 2
                self._log_floor = self._log[drop - 1][0]
                del self._log[:drop]
            self._cond.notify_all()

    def _out_of_step(self) -> None:
        with self._cond:
            self._synced = False
            self._cond.notify_all()

    def _run(self) -> None:
        delay = self._min_backoff_s
        while not self._stop.is_set():
            try:
                self._relist()
                delay = self._min_backoff_s
                self._watch_on()
            except WatchCompacted as exc:
                log.info("cache %s: %s; listing again", self.prefix, exc)
                self._out_of_step()
                continue
            except SpaasError as exc:
                self._out_of_step()
                if self._stop.is_set():
                    break
                log.warning("cache %s: %s; listing again in %.1f s", self.prefix, exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self._max_backoff_s)
            except Exception:  # a bug must not leave a stale cache answering: reads go to etcd
                self._out_of_step()
                log.exception("cache %s: unexpected error; listing again in %.1f s", self.prefix, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self._max_backoff_s)

    def _watch_on(self) -> None:
        """Watch from the current revision until stopped. A stream that ends quietly (read timeout,
        etcd closed it) is opened again from where it was; an error opening it raises."""
        while not self._stop.is_set():
            watch = self.store.watch(self.prefix, self._revision + 1, read_timeout_s=self._read_timeout_s)
            self._watch = watch
            if self._stop.is_set():
                watch.close()
                return
            try:
                for changes in watch:
                    self._apply(changes)
            except WatchCompacted:
                raise
            except SpaasError as exc:
                if self._stop.is_set():
                    return
                log.debug("cache %s: watch ended (%s); watching again from %d", self.prefix, exc, self._revision)
            finally:
                self._watch = None


class CachedStore:
    """A `Store` whose reads under `prefixes` come from `WatchCache`s (see the module doc)."""

    # Every CachedStore started in this process and not stopped (tests stop what they started).
    live: weakref.WeakSet[CachedStore] = weakref.WeakSet()

    def __init__(self, store: EtcdStore, prefixes: Iterable[str], *, settle_s: float = 2.0,
                 read_timeout_s: float = 60.0) -> None:
        self.inner = store
        self.settle_s = settle_s
        self.caches = [WatchCache(store, p, read_timeout_s=read_timeout_s) for p in prefixes]
        self._local = threading.local()  # settle_once's deferred revision, per thread

    def start(self, *, wait_s: float = 10.0) -> CachedStore:
        CachedStore.live.add(self)
        for cache in self.caches:
            cache.start()
        deadline = time.monotonic() + wait_s
        for cache in self.caches:
            if not cache.wait_synced(max(0.0, deadline - time.monotonic())):
                log.warning("cache %s not in step yet; its reads go to etcd until it is", cache.prefix)
        return self

    def stop(self) -> None:
        CachedStore.live.discard(self)
        for cache in self.caches:
            cache.stop()

    def cache_for(self, key_or_prefix: str) -> WatchCache | None:
        for cache in self.caches:
            if cache.covers(key_or_prefix):
                return cache
        return None

    def _serving(self, key_or_prefix: str) -> WatchCache | None:
        cache = self.cache_for(key_or_prefix)
        return cache if cache is not None and cache.synced else None

    @contextlib.contextmanager
    def settle_once(self, timeout_s: float = 30.0) -> Iterator[None]:
        """Writes made by this thread inside return as soon as etcd answered; on leaving, wait
        once until every cache applied the last of them (bounded by `timeout_s`). For a writer
        of many keys (the scaler's pass): one wait instead of one per write; reads inside still
        show etcd's state up to the caches' latency, and the next reads after it show every write."""
        if getattr(self._local, "deferred", None) is not None:
            yield  # nested: the outer block waits
            return
        deferred: dict[WatchCache, int] = {}
        self._local.deferred = deferred
        try:
            yield
        finally:
            self._local.deferred = None
            deadline = time.monotonic() + timeout_s
            for cache, revision in deferred.items():  # only the caches written to (the others may lag behind)
                if not cache.wait_for(revision, max(0.0, deadline - time.monotonic())):
                    log.warning("cache %s did not reach revision %d within %.1f s", cache.prefix, revision, timeout_s)

    def wait_for(self, key: str, revision: int, timeout_s: float | None = None) -> bool:
        """Wait until the cache covering `key` applied `revision` (True at once if none covers it)."""
        cache = self.cache_for(key)
        if cache is None or revision <= 0:
            return True
        deferred = getattr(self._local, "deferred", None)
        if deferred is not None and timeout_s is None:
            deferred[cache] = max(deferred.get(cache, 0), revision)  # settle_once waits for it
            return True
        ok = cache.wait_for(revision, self.settle_s if timeout_s is None else timeout_s)
        if not ok:
            log.warning("cache %s did not reach revision %d within %.1f s; a read may not show %s yet",
                        cache.prefix, revision, self.settle_s, key)
        return ok

    def _catch_up(self, key: str) -> None:
        """After a lost compare-and-swap: wait until the cache shows `key` as etcd has it now."""
        cache = self._serving(key)
        if cache is None:
            return
        current = self.inner.get(key)
        if current is not None:
            cache.wait_for(current.mod_revision, self.settle_s)
        else:
            cache.wait_until(lambda c: c.get(key) is None, self.settle_s)

    # -- reads --------------------------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        cache = self._serving(key)
        return cache.get(key) if cache is not None else self.inner.get(key)

    def list(self, prefix: str) -> list[Entry]:
        cache = self._serving(prefix)
        return cache.list(prefix) if cache is not None else self.inner.list(prefix)

    # -- writes: through to etcd, then wait until the cache shows them -------------------------
    def create(self, key: str, value: dict[str, Any], *, lease: int = 0) -> Entry:
        try:
            entry = self.inner.create(key, value, lease=lease)
        except Conflict:
            self._catch_up(key)
            raise
        self.wait_for(key, entry.mod_revision)
        return entry

    def update(self, key: str, value: dict[str, Any], *, mod_revision: int, lease: int = 0) -> Entry:
        try:
            entry = self.inner.update(key, value, mod_revision=mod_revision, lease=lease)
        except Conflict:
            self._catch_up(key)
            raise
        self.wait_for(key, entry.mod_revision)
        return entry

    def put(self, key: str, value: dict[str, Any], *, lease: int = 0) -> Entry:
        entry = self.inner.put(key, value, lease=lease)
        self.wait_for(key, entry.mod_revision)
        return entry

    def delete(self, key: str, *, mod_revision: int | None = None) -> bool:
        deleted = self.inner.delete(key, mod_revision=mod_revision)
        if deleted:
            self.wait_for(key, self.inner.last_revision())
        elif mod_revision is not None:
            self._catch_up(key)
        return deleted

    def delete_prefix(self, prefix: str) -> int:
        n = self.inner.delete_prefix(prefix)
        if n:
            revision = self.inner.last_revision()
            for cache in self.caches:
                if cache.covers(prefix):
                    cache.wait_for(revision, self.settle_s)
                elif cache.prefix.startswith(prefix):
                    cache.wait_until(lambda c: len(c) == 0, self.settle_s)
        return n

    def write_many(self, writes: builtins.list[tuple[str, dict[str, Any] | None, int | None]]) -> builtins.list[int]:
        """`EtcdStore.write_many`, then wait until the caches show the writes made (and, for a
        failed compare, etcd's current value, so the caller's re-read sees it)."""
        done = self.inner.write_many(writes)
        for (key, _, _), revision in zip(writes, done):
            if revision:
                self.wait_for(key, revision)
            else:
                self._catch_up(key)
        return done

    def grant_lease(self, ttl_s: int) -> int:
        return self.inner.grant_lease(ttl_s)

    def keepalive(self, lease: int) -> int:
        return self.inner.keepalive(lease)

    def revoke(self, lease: int) -> None:
        self.inner.revoke(lease)

    def health(self) -> bool:
        return self.inner.health()

    def __getattr__(self, name: str) -> Any:
        # EtcdStore's other calls (`call`, `user`, `as_user`, ...) for adapters such as spaas.etcdauth.
        return getattr(self.inner, name)
