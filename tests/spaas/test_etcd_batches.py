"""EtcdStore's paged listings and batched writes (spaas/etcd.py), against a real etcd: a listing
larger than one page is whole, in key order and at one revision; `write_many` keeps each write's
own compare-and-swap, and `CachedStore.write_many` (with `settle_once`) shows the writes once done."""

from __future__ import annotations

import pytest

from spaas import etcd
from spaas.cache import CachedStore
from spaas.etcd import EtcdStore


def test_a_listing_larger_than_a_page_is_whole_and_in_key_order(store: EtcdStore, prefix: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(etcd, "PAGE_KEYS", 3)
    for i in range(10):
        store.put(f"{prefix}/p/{i:02d}", {"n": i})
    store.put(f"{prefix}/q", {"n": 99})  # after the prefix's range: never listed
    entries, revision = store.list_at(f"{prefix}/p/")
    assert [e.value["n"] for e in entries] == list(range(10))
    assert revision >= max(e.mod_revision for e in entries)
    assert [e.key for e in store.list(f"{prefix}/p/")] == [e.key for e in entries]


def test_write_many_makes_each_write_on_its_own_compare(store: EtcdStore, prefix: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(etcd, "TXN_OPS", 2)
    current = store.put(f"{prefix}/cas", {"v": 1})
    store.put(f"{prefix}/gone", {"v": 1})
    store.put(f"{prefix}/exists", {"v": 1})
    done = store.write_many([
        (f"{prefix}/new", {"v": 2}, 0),                                # create: absent, made
        (f"{prefix}/exists", {"v": 2}, 0),                             # create: present, refused
        (f"{prefix}/cas", {"v": 2}, current.mod_revision),             # compare-and-swap: current, made
        (f"{prefix}/cas", {"v": 3}, current.mod_revision),             # the same compare again: stale now
        (f"{prefix}/put", {"v": 2}, None),                             # unconditional
        (f"{prefix}/gone", None, None),                                # delete
    ])
    assert [bool(r) for r in done] == [True, False, True, False, True, True]
    assert {e.key.rsplit("/", 1)[1]: e.value["v"] for e in store.list(f"{prefix}/")} == \
        {"new": 2, "exists": 1, "cas": 2, "put": 2}


def test_cached_writes_show_once_the_settle_once_block_ends(etcd_url: str, store: EtcdStore, prefix: str) -> None:
    cached = CachedStore(EtcdStore(etcd_url), [f"{prefix}/c/", f"{prefix}/d/"]).start(wait_s=10)
    try:
        with cached.settle_once():
            cached.write_many([(f"{prefix}/c/{i}", {"n": i}, 0) for i in range(100)])
            cached.put(f"{prefix}/d/x", {"n": 1})
        assert len(cached.list(f"{prefix}/c/")) == 100 and cached.get(f"{prefix}/d/x") is not None
        stale = cached.get(f"{prefix}/c/7")
        assert stale is not None
        store.put(f"{prefix}/c/7", {"n": "elsewhere"})
        assert cached.write_many([(f"{prefix}/c/7", {"n": "mine"}, stale.mod_revision)]) == [0]
        assert cached.get(f"{prefix}/c/7").value == {"n": "elsewhere"}  # type: ignore[union-attr]
    finally:
        cached.stop()
