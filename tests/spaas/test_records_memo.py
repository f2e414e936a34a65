"""Decoded records are kept with their etcd entry (`Entry.memo`, `spaas.records.decode`): read
through a watch cache, an unchanged entry is validated once and turned into a dict once
(`Record.as_value`); a changed entry is decoded again, a deleted key takes its record with it, and
a malformed value shows as invalid on every read. Real etcd."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from spaas.cache import CachedStore
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.records import BadRecord, HostRecord, SigSpecRecord, decode, read_hosts, read_sigs
from spaas.store import Entry

HOST = {"role": "worker", "index": 0, "ip": "10.0.0.5", "config_hash": "abc", "ready": True, "ports": {"ui": 8081}}


@pytest.fixture
def cached(store: EtcdStore, keys: Keys) -> Iterator[CachedStore]:
    c = CachedStore(store, (keys.all_hosts(), keys.all_sigs())).start(wait_s=10)
    yield c
    c.stop()


def bad_count(family: str) -> float:
    return REGISTRY.get_sample_value("spaas_bad_records_total", {"family": family}) or 0.0


def test_an_entry_is_validated_once_and_dumped_once() -> None:
    e = Entry(key="/p/hosts/t/s/t-s-worker-0", value=HOST, mod_revision=5, create_revision=5)
    first = decode(HostRecord, e)
    assert isinstance(first, HostRecord)
    assert decode(HostRecord, e) is first
    assert first.as_value() is first.as_value() and first.as_value() == first.to_value()
    mine = first.to_value()
    mine["ip"] = "10.9.9.9"  # to_value is the caller's copy: the shared one is untouched
    assert first.as_value()["ip"] == "10.0.0.5"
    # Another entry object (another read from etcd) is validated on its own.
    again = decode(HostRecord, Entry(key=e.key, value=dict(HOST), mod_revision=5, create_revision=5))
    assert again is not first and again == first


def test_a_host_is_named_after_its_key_and_a_copy_has_its_own_value() -> None:
    e = Entry(key="/p/hosts/t/s/t-s-worker-0", value=dict(HOST, host="elsewhere"), mod_revision=5, create_revision=5)
    record = decode(HostRecord, e)
    assert isinstance(record, HostRecord) and record.host == "t-s-worker-0" and record.entry is e
    assert record.as_value()["host"] == "t-s-worker-0"
    moved = record.model_copy(update={"ip": "10.1.1.1"})
    assert moved.as_value()["ip"] == "10.1.1.1" and record.as_value()["ip"] == "10.0.0.5"


def test_a_changed_entry_is_decoded_again(cached: CachedStore, store: EtcdStore, keys: Keys) -> None:
    key = keys.host("t", "s", "t-s-worker-0")
    cached.put(key, HOST)
    (first,) = read_hosts(cached, keys)
    assert read_hosts(cached, keys).records[0] is first  # the same entry: no validation
    cached.put(key, dict(HOST, ip="10.0.0.6", ready=False))
    (second,) = read_hosts(cached, keys)
    assert second is not first and second.ip == "10.0.0.6" and second.ready is False
    assert second.as_value()["ip"] == "10.0.0.6" and first.as_value()["ip"] == "10.0.0.5"
    assert second.entry is not None and second.entry.mod_revision == store.get(key).mod_revision  # type: ignore[union-attr]


def test_a_deleted_key_takes_its_record_with_it(cached: CachedStore, keys: Keys) -> None:
    key = keys.sig_spec("t", "gone")
    cached.put(key, {"spec": {"name": "gone", "spark_version": "3.5.9"}, "generation": 1})
    (rec,) = read_sigs(cached, keys, "t")
    assert isinstance(rec.spec, SigSpecRecord) and rec.spec.as_value()["generation"] == 1
    held = cached.get(key)
    assert held is not None and held.memo.get(SigSpecRecord) is rec.spec  # the record lives with its entry
    entry_ref, record_ref = weakref.ref(held), weakref.ref(rec.spec)
    del rec, held
    cached.delete(key)
    assert read_sigs(cached, keys, "t").records == []
    gc.collect()
    assert entry_ref() is None and record_ref() is None, "nothing else keeps a deleted key's record"


def test_a_malformed_record_is_invalid_on_every_read(cached: CachedStore, keys: Keys) -> None:
    key = keys.host("t", "s", "t-s-worker-1")
    cached.put(key, {"role": "worker"})  # no ip
    before = bad_count("host")
    for _ in range(3):
        listing = read_hosts(cached, keys)
        assert listing.records == [] and [b.key for b in listing.bad] == [key]
    entry = cached.get(key)
    assert entry is not None and not entry.memo  # a bad value is not kept
    assert isinstance(decode(HostRecord, entry), BadRecord)
    assert bad_count("host") == before + 1, "logged and counted once per key revision"
    cached.put(key, HOST)  # repaired: valid from the next read on
    assert [h.host for h in read_hosts(cached, keys)] == ["t-s-worker-1"] and not read_hosts(cached, keys).bad
