"""The Store port's contract, against a real etcd (`spaas.etcd.EtcdStore`).

What every caller relies on: `create` is put-if-absent (a deterministic key is a lock), `update` and
`delete(mod_revision=...)` are compare-and-swap on the entry's revision, leased keys vanish when the
lease is not renewed, listings are by prefix in key order, a value that is not a JSON object is
reported (not raised) and an unreachable etcd is a `TemporaryError`, never a `requests` exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from spaas.errors import Conflict, TemporaryError
from spaas.etcd import EtcdStore, _b64
from spaas.stack import free_port
from spaas.store import read_modify_write


def eventually(check: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_create_is_put_if_absent(store: EtcdStore, prefix: str) -> None:
    key = f"{prefix}/locks/build-ab12"
    first = store.create(key, {"owner": "a"})
    assert first.mod_revision == first.create_revision > 0
    with pytest.raises(Conflict):
        store.create(key, {"owner": "b"})
    entry = store.get(key)
    assert entry is not None and entry.value == {"owner": "a"}  # the loser changed nothing


def test_update_is_compare_and_swap(store: EtcdStore, prefix: str) -> None:
    key = f"{prefix}/sigs/t/s/spec"
    created = store.create(key, {"generation": 1})
    updated = store.update(key, {"generation": 2}, mod_revision=created.mod_revision)
    assert updated.mod_revision > created.mod_revision
    with pytest.raises(Conflict):  # a writer holding the old revision loses
        store.update(key, {"generation": 3}, mod_revision=created.mod_revision)
    entry = store.get(key)
    assert entry is not None and entry.value == {"generation": 2} and entry.mod_revision == updated.mod_revision
    with pytest.raises(Conflict):  # a key that is gone cannot be updated
        store.update(f"{prefix}/missing", {"x": 1}, mod_revision=updated.mod_revision)


def test_read_modify_write_retries_and_leaves_alone(store: EtcdStore, prefix: str) -> None:
    key = f"{prefix}/counter"
    for _ in range(3):
        read_modify_write(store, key, lambda v: {"n": (v or {}).get("n", 0) + 1})
    entry = store.get(key)
    assert entry is not None and entry.value == {"n": 3}
    assert read_modify_write(store, key, lambda v: None) == entry  # None: nothing written


def test_delete_at_revision(store: EtcdStore, prefix: str) -> None:
    key = f"{prefix}/hosts/t/s/h"
    old = store.create(key, {"ip": "10.0.0.1"})
    new = store.update(key, {"ip": "10.0.0.2"}, mod_revision=old.mod_revision)
    assert store.delete(key, mod_revision=old.mod_revision) is False  # changed since: kept
    assert store.get(key) is not None
    assert store.delete(key, mod_revision=new.mod_revision) is True
    assert store.get(key) is None
    assert store.delete(key) is False  # already gone: nothing deleted, no error


def test_list_is_by_prefix_in_key_order(store: EtcdStore, prefix: str) -> None:
    for name in ("b", "a", "c"):
        store.put(f"{prefix}/l/{name}", {"name": name})
    store.put(f"{prefix}/lx", {"name": "outside"})  # shares the string prefix, not the "directory"
    assert [e.value["name"] for e in store.list(f"{prefix}/l/")] == ["a", "b", "c"]
    assert store.delete_prefix(f"{prefix}/l/") == 3
    assert store.list(f"{prefix}/l/") == [] and store.get(f"{prefix}/lx") is not None


def test_a_value_that_is_not_a_json_object_is_reported(store: EtcdStore, prefix: str) -> None:
    key = f"{prefix}/broken"
    store.call("/v3/kv/put", {"key": _b64(key), "value": _b64("not json")})
    entry = store.get(key)
    assert entry is not None and entry.value == {} and entry.error
    assert [e.key for e in store.list(f"{prefix}/")] == [key]  # one bad key does not break a listing


def test_leased_key_lives_while_renewed_and_vanishes_after(store: EtcdStore, prefix: str) -> None:
    key = f"{prefix}/hosts/t/s/leased"
    lease = store.grant_lease(2)
    entry = store.create(key, {"ip": "10.0.0.3"}, lease=lease)
    assert entry.lease == lease and store.get(key) is not None
    for _ in range(3):  # renewed past its TTL: still there
        time.sleep(1)
        assert store.keepalive(lease) > 0
    assert store.get(key) is not None
    assert eventually(lambda: store.get(key) is None), "the leased key outlived its lease"
    assert store.keepalive(lease) == 0  # an expired lease renews to nothing


def test_revoke_removes_leased_keys_and_tolerates_unknown_leases(store: EtcdStore, prefix: str) -> None:
    lease = store.grant_lease(60)
    store.put(f"{prefix}/r", {"x": 1}, lease=lease)
    store.revoke(lease)
    assert store.get(f"{prefix}/r") is None
    store.revoke(lease)  # already gone: no error


def test_unreachable_etcd_is_a_temporary_error() -> None:
    down = EtcdStore(f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
    with pytest.raises(TemporaryError):
        down.get("/spaas/anything")
    assert down.health() is False
