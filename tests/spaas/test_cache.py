"""Watch-backed caches against the session's real etcd: list + watch applies puts and deletes in
order, a watch that resumes past etcd's compaction lists again, stop ends the thread and hands reads
back to etcd, and writes through `CachedStore` are read back at once (read-your-writes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from spaas.cache import CachedStore, WatchCache
from spaas.errors import Conflict
from spaas.etcd import EtcdStore, Watch


def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def cache(store: EtcdStore, prefix: str) -> Iterator[WatchCache]:
    store.put(f"{prefix}/c/a", {"n": 1})
    c = WatchCache(store, f"{prefix}/c/").start(wait_s=10)
    yield c
    c.stop()


def test_lists_then_applies_puts_and_deletes_in_order(cache: WatchCache, store: EtcdStore, prefix: str) -> None:
    assert cache.synced and [e.value for e in cache.list(f"{prefix}/c/")] == [{"n": 1}]
    for i in range(20):
        store.put(f"{prefix}/c/b", {"n": i})
    store.put(f"{prefix}/c/aa", {"n": "x"})
    store.delete(f"{prefix}/c/a")
    store.put(f"{prefix}/other", {"n": 0})  # outside the prefix: never seen
    last = store.put(f"{prefix}/c/z", {"n": 9})
    assert cache.wait_for(last.mod_revision, 10)
    assert [(e.key.rsplit("/", 1)[1], e.value) for e in cache.list(f"{prefix}/c/")] == \
        [("aa", {"n": "x"}), ("b", {"n": 19}), ("z", {"n": 9})]
    assert cache.get(f"{prefix}/c/a") is None and cache.get(f"{prefix}/other") is None
    entry = cache.get(f"{prefix}/c/b")
    assert entry is not None and entry == store.get(f"{prefix}/c/b")  # same mod_revision: CAS works on it
    assert cache.listings == 1  # one listing, the rest came by the watch


class GatedStore(EtcdStore):
    """The real store, whose watch calls wait while the test holds the gate (a network that is down)."""

    gate = threading.Event()

    def watch(self, prefix: str, start_revision: int, *, read_timeout_s: float = 60.0) -> Watch:
        assert self.gate.wait(20)
        return super().watch(prefix, start_revision, read_timeout_s=read_timeout_s)


def test_watch_resumed_past_a_compaction_lists_again(etcd_url: str, store: EtcdStore, prefix: str) -> None:
    gated = GatedStore(etcd_url)
    gated.gate.set()
    store.put(f"{prefix}/c/gone", {"n": 1})
    cache = WatchCache(gated, f"{prefix}/c/").start(wait_s=10)
    try:
        eventually(lambda: cache._watch is not None)
        gated.gate.clear()
        cache._watch.close()  # the connection drops; the cache cannot watch again until the gate opens
        store.put(f"{prefix}/c/new", {"n": 2})
        store.delete(f"{prefix}/c/gone")
        revision = store.put(f"{prefix}/unrelated", {"n": 3}).mod_revision
        resp = requests.post(etcd_url + "/v3/kv/compaction", json={"revision": str(revision), "physical": True},
                             timeout=10)
        assert resp.ok, resp.text
        gated.gate.set()
        eventually(lambda: cache.listings == 2 and cache.synced)
        assert [e.key.rsplit("/", 1)[1] for e in cache.list(f"{prefix}/c/")] == ["new"]
        # and it watches again from the new listing
        later = store.put(f"{prefix}/c/later", {"n": 4})
        assert cache.wait_for(later.mod_revision, 10) and cache.get(f"{prefix}/c/later") is not None
    finally:
        gated.gate.set()
        cache.stop()


def test_stop_ends_the_thread_and_reads_go_to_etcd(etcd_url: str, store: EtcdStore, prefix: str) -> None:
    cached = CachedStore(EtcdStore(etcd_url), [f"{prefix}/c/"]).start(wait_s=10)
    cache = cached.caches[0]
    started = time.monotonic()
    cached.stop()
    assert time.monotonic() - started < 5
    assert cache._thread is not None and not cache._thread.is_alive() and not cache.synced
    store.put(f"{prefix}/c/after", {"n": 1})
    assert [e.value for e in cached.list(f"{prefix}/c/")] == [{"n": 1}]  # not from the stopped cache


def test_writes_through_the_cached_store_are_read_back_at_once(etcd_url: str, store: EtcdStore,
                                                               prefix: str) -> None:
    cached = CachedStore(EtcdStore(etcd_url), [f"{prefix}/c/"]).start(wait_s=10)
    try:
        for i in range(30):
            entry = cached.put(f"{prefix}/c/k{i}", {"n": i})
            seen = cached.get(f"{prefix}/c/k{i}")
            assert seen is not None and (seen.value, seen.mod_revision) == ({"n": i}, entry.mod_revision)
            assert len(cached.list(f"{prefix}/c/")) == i + 1
        created = cached.create(f"{prefix}/c/new", {"n": 0})
        updated = cached.update(f"{prefix}/c/new", {"n": 1}, mod_revision=created.mod_revision)
        current = cached.get(f"{prefix}/c/new")
        assert current is not None and current.value == {"n": 1} and current.mod_revision == updated.mod_revision
        assert cached.delete(f"{prefix}/c/new") and cached.get(f"{prefix}/c/new") is None
        # Someone else changed a key: the lost compare-and-swap leaves the cache showing the winner.
        theirs = store.put(f"{prefix}/c/k0", {"n": "theirs"})
        with pytest.raises(Conflict):
            cached.update(f"{prefix}/c/k0", {"n": "mine"}, mod_revision=theirs.mod_revision - 1)
        seen = cached.get(f"{prefix}/c/k0")
        assert seen is not None and seen.value == {"n": "theirs"}
        assert cached.delete_prefix(f"{prefix}/c/") == 30 and cached.list(f"{prefix}/c/") == []
        assert cached.caches[0].listings == 1
    finally:
        cached.stop()


def test_a_cache_on_an_etcd_with_authentication(root_store: EtcdStore, prefix: str) -> None:
    root_store.put(f"{prefix}/c/a", {"n": 1})
    cache = WatchCache(root_store, f"{prefix}/c/").start(wait_s=10)
    try:
        assert cache.synced and [e.value for e in cache.list(f"{prefix}/c/")] == [{"n": 1}]
        later = root_store.put(f"{prefix}/c/b", {"n": 2})
        assert cache.wait_for(later.mod_revision, 10) and cache.get(f"{prefix}/c/b") is not None
    finally:
        cache.stop()
