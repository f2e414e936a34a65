"""The Store port: etcd as the system of record.

Values are JSON objects (an entry whose stored bytes are not one has `error` set and an empty
`value`; `spaas.records` validates and reports it). Every entry carries its `mod_revision`, and `update` is a
compare-and-swap on it, so two writers never silently overwrite each other (the loser gets
`Conflict`, re-reads and decides again). `create` is put-if-absent: a deterministic key is
also a lock. Leases give keys a lifetime that a live owner keeps extending.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from spaas.errors import Conflict


@dataclass(frozen=True)
class Entry:
    key: str
    value: dict[str, Any]
    mod_revision: int
    create_revision: int
    lease: int = 0
    # Why the stored bytes are not a JSON object ("" when they are); `value` is then {}. Only
    # `spaas.records` looks at it: one undecodable key must not break a whole listing.
    error: str = ""
    # What was derived from this very entry (`spaas.records.decode`: its validated record, by
    # model). It lives as long as the entry: in a watch cache (spaas/cache.py), until the key
    # changes or goes. Not part of the entry's identity.
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


class Store(Protocol):
    def get(self, key: str) -> Entry | None: ...

    def list(self, prefix: str) -> list[Entry]:
        """Every entry whose key starts with `prefix`, in key order."""
        ...

    def create(self, key: str, value: dict[str, Any], *, lease: int = 0) -> Entry:
        """Put if absent; `Conflict` if the key exists."""
        ...

    def update(self, key: str, value: dict[str, Any], *, mod_revision: int, lease: int = 0) -> Entry:
        """Replace only if the key is still at `mod_revision`; `Conflict` otherwise (or if gone)."""
        ...

    def put(self, key: str, value: dict[str, Any], *, lease: int = 0) -> Entry:
        """Unconditional write; only for keys with a single writer (e.g. an agent's own host key)."""
        ...

    def delete(self, key: str, *, mod_revision: int | None = None) -> bool:
        """True if something was deleted. With `mod_revision`, only if unchanged."""
        ...

    def delete_prefix(self, prefix: str) -> int: ...

    def grant_lease(self, ttl_s: int) -> int: ...

    def keepalive(self, lease: int) -> int:
        """Extend the lease; returns the remaining TTL, 0 if the lease is gone."""
        ...

    def revoke(self, lease: int) -> None: ...

    def health(self) -> bool: ...


def read_modify_write(store: Store, key: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
                      *, attempts: int = 5) -> Entry | None:
    """Compare-and-swap loop: `change` gets the current value (None if the key is absent) and
    returns the value to write, or None to leave the key as it is. Retried on `Conflict`;
    returns the entry written (or the one left alone)."""
    for _ in range(attempts):
        entry = store.get(key)
        value = change(dict(entry.value) if entry else None)
        if value is None:
            return entry
        try:
            if entry is None:
                return store.create(key, value)
            return store.update(key, value, mod_revision=entry.mod_revision)
        except Conflict:
            continue
    raise Conflict(f"{key} kept changing; gave up after {attempts} attempts")
