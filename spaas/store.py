"""The Store port: etcd as the system of record.

Values are JSON objects. Every entry carries its `mod_revision`, and `update` is a
compare-and-swap on it, so two writers never silently overwrite each other (the loser gets
`Conflict`, re-reads and decides again). `create` is put-if-absent: a deterministic key is
also a lock. Leases give keys a lifetime that a live owner keeps extending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Entry:
    key: str
    value: dict[str, Any]
    mod_revision: int
    create_revision: int
    lease: int = 0


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
