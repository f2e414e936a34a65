"""The sweep: the pure `stale` decision as a table, and `sweep_once`/`sweep_loop` on a real etcd."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from spaas.errors import TemporaryError
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.store import Entry

from services.etcd_registry.sweep import stale, sweep_loop, sweep_once

K = Keys("/p")
LIVE = {("t1", "s1")}


def entry(key: str, lease: int = 7) -> Entry:
    return Entry(key=key, value={"ip": "127.0.0.1"}, mod_revision=5, create_revision=5, lease=lease)


@pytest.mark.parametrize("key, lease, is_stale", [
    ("/p/hosts/t1/s1/t1-s1-worker-0", 7, False),   # leased, SIG alive
    ("/p/hosts/t1/s1/t1-s1-worker-0", 0, True),    # no lease
    ("/p/hosts/t1/s2/t1-s2-worker-0", 7, True),    # SIG has no spec
    ("/p/hosts/t2/s1/t2-s1-worker-0", 7, True),    # same SIG name, other tenant
    ("/p/hosts/t1/s1", 0, False),                  # not a host key: left alone
    ("/p/hosts/t1/s1/h/extra", 0, False),          # not a host key: left alone
    ("/q/hosts/t1/s1/h", 0, False),                # another platform's prefix
])
def test_stale(key: str, lease: int, is_stale: bool) -> None:
    assert stale([entry(key, lease)], LIVE, K) == ([key] if is_stale else [])


def test_stale_keeps_order_and_handles_many() -> None:
    hosts = [entry("/p/hosts/t1/s1/a", 0), entry("/p/hosts/t1/s1/b"), entry("/p/hosts/t9/s9/c")]

    assert stale(hosts, LIVE, K) == ["/p/hosts/t1/s1/a", "/p/hosts/t9/s9/c"]
    assert stale([], LIVE, K) == []


# -- against etcd ------------------------------------------------------------------------
def put_host(store: EtcdStore, keys: Keys, tenant: str, sig: str, host: str, *, leased: bool = True) -> str:
    key = keys.host(tenant, sig, host)
    store.put(key, {"host": host, "ip": "127.0.0.1", "ports": {"spark": 40001}},
              lease=store.grant_lease(10) if leased else 0)
    return key


def test_sweep_once_removes_leaseless_and_orphaned_entries(store: EtcdStore, keys: Keys) -> None:
    store.put(keys.sig_spec("t1", "s1"), {"name": "s1"})
    store.put(keys.sig_status("t1", "gone"), {"phase": "DELETING"})  # a status without a spec is not alive
    live = put_host(store, keys, "t1", "s1", "t1-s1-master-0")
    leaseless = put_host(store, keys, "t1", "s1", "t1-s1-worker-0", leased=False)
    orphan = put_host(store, keys, "t1", "gone", "t1-gone-worker-0")

    assert sweep_once(store, keys) == 2

    assert store.get(live) is not None
    assert store.get(leaseless) is None
    assert store.get(orphan) is None
    assert sweep_once(store, keys) == 0


def test_sweep_once_with_nothing_registered(store: EtcdStore, keys: Keys) -> None:
    assert sweep_once(store, keys) == 0


class ReRegisterAfterList:
    """A store through which an agent re-registers its host right after the sweep listed it."""

    def __init__(self, store: EtcdStore, key: str, lease: int) -> None:
        self._store = store
        self._key = key
        self._lease = lease

    def list(self, prefix: str) -> list[Entry]:
        entries = self._store.list(prefix)
        if prefix.endswith("/hosts/"):
            self._store.put(self._key, {"host": "again"}, lease=self._lease)
        return entries

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_sweep_does_not_delete_an_entry_written_after_it_looked(store: EtcdStore, keys: Keys) -> None:
    store.put(keys.sig_spec("t1", "s1"), {"name": "s1"})
    key = put_host(store, keys, "t1", "s1", "t1-s1-worker-0", leased=False)
    racing = ReRegisterAfterList(store, key, store.grant_lease(10))

    assert sweep_once(racing, keys) == 0  # type: ignore[arg-type]

    assert store.get(key) is not None
    assert store.get(key).value == {"host": "again"}  # type: ignore[union-attr]


def test_sweep_loop_sweeps_until_stopped(store: EtcdStore, keys: Keys) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=sweep_loop, args=(store, keys, stop, 0.2), daemon=True)
    thread.start()
    try:
        key = put_host(store, keys, "t1", "s1", "t1-s1-worker-0", leased=False)
        deadline = time.monotonic() + 5
        while store.get(key) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.get(key) is None
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


class FailingStore:
    """etcd down for the first `failures` listings; records when each listing happened."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[float] = []

    def list(self, prefix: str) -> list[Entry]:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            raise TemporaryError("etcd unreachable")
        return []


def test_sweep_loop_backs_off_on_temporary_errors_and_recovers() -> None:
    store = FailingStore(failures=2)
    stop = threading.Event()
    thread = threading.Thread(target=sweep_loop, args=(store, K, stop, 0.1), daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while len(store.calls) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=5)

    assert not thread.is_alive()
    # fail (wait 0.2), fail (wait 0.4), succeed: two listings (hosts, specs), then the plain period.
    gaps = [b - a for a, b in zip(store.calls, store.calls[1:])]
    assert gaps[0] == pytest.approx(0.2, abs=0.08)
    assert gaps[1] == pytest.approx(0.4, abs=0.08)
    assert gaps[3] == pytest.approx(0.1, abs=0.08)
