"""The scaler's full pass over records shared between passes (`spaas.records`: a record decoded
once per key revision, its dict made once, a SIG's records kept while its entries are the same):
the full pass still plans every SIG and writes what differs, and it never changes the shared
values it reads. Real etcd and Redis; the runtime of tests/scaler/test_incremental.py."""

from __future__ import annotations

from pathlib import Path

from spaas.cache import CachedStore
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.records import read_hosts, read_sigs

from tests.scaler.test_incremental import cached, ready_scaler, settle  # noqa: F401 (cached: a fixture)


def test_a_steady_full_pass_plans_every_sig_and_leaves_the_shared_records_as_read(
        etcd_url: str, cached: CachedStore, keys: Keys, redis_url: str, tmp_path: Path) -> None:  # noqa: F811
    store = EtcdStore(etcd_url)
    sigs = [("acme", "etl"), ("acme", "bi"), ("beta", "ml")]
    scaler, runtime = ready_scaler(cached, store, keys, redis_url, tmp_path, sigs)
    listed = {(r.tenant, r.sig): r for r in read_sigs(cached, keys)}
    revision = store.last_revision()
    scaler.reconcile_all(full=True)
    assert scaler.last_pass == (True, 3)  # every SIG planned, none skipped
    assert store.last_revision() == revision  # and nothing differed, so nothing was written
    again = {(r.tenant, r.sig): r for r in read_sigs(cached, keys)}
    assert all(again[ident] is listed[ident] for ident in listed)  # the same entries: the same records
    for rec in again.values():
        for part in (rec.spec, rec.build, rec.status):
            assert part is not None and part.as_value() == part.to_value(), "a pass changed a shared value"
    for host in read_hosts(cached, keys):
        assert host.as_value() == host.to_value()

    # A status that differs from what is planned is written back by the next full pass.
    status = store.get(keys.sig_status("acme", "bi"))
    assert status is not None
    store.put(keys.sig_status("acme", "bi"), dict(status.value, phase="DEPLOYING", reason="Deploying"))
    settle(cached, store, [keys.sig_status("acme", "bi")])
    scaler.reconcile_all(full=True)
    fixed = store.get(keys.sig_status("acme", "bi"))
    assert fixed is not None and fixed.value["phase"] == "READY" and fixed.value["reason"] is None
    assert {(r.tenant, r.sig): r for r in read_sigs(cached, keys)}[("acme", "bi")] is not listed[("acme", "bi")]
    assert sorted(c.name for c in runtime.containers.values()) == sorted(
        f"{t}-{s}-{role}-0" for t, s in sigs for role in ("master", "worker"))
