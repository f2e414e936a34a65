"""Values derived from etcd entries, kept while those entries stay the same.

The API reads the same few records on every request from its watch-backed caches
(`spaas/cache.py`) and derived the same things from them every time: the verified token record,
the caller's grants in a tenant, the JSON of a SIG or an application. `EntryMemo` keeps such a
derived value beside the exact entries it was derived from; a request first reads the entries
(from memory, as before) and gets the value back only if they are the very same (same keys,
values and revisions). So a memo adds no staleness of its own: a revoked token, a removed grant,
a changed status show exactly as soon as the store shows them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

from spaas.store import Entry

T = TypeVar("T")


def same_entries(a: Sequence[Entry], b: Sequence[Entry]) -> bool:
    """The same etcd entries: the very objects a watch cache holds (fast), or equal ones (a read
    from etcd while a cache is out of step builds new objects)."""
    # Tuple equality compares element by element, each by identity first: C speed for the usual case.
    return tuple(a) == tuple(b)


class EntryMemo(Generic[T]):
    """`get(ident, entries, compute)` answers `compute(entries)`, from memory when `ident` was
    last computed from the same entries.

    `compute` must derive its value from the entries it is given alone (and from what never
    changes in the process, such as settings): a hit is then exactly what computing again would
    give. Exceptions are not kept (a 404 is computed each time). Bounded: past `max_items`
    idents it starts again empty. Safe across threads (a race computes twice; each value stays
    beside the entries it was computed from)."""

    def __init__(self, max_items: int = 10_000) -> None:
        self._max_items = max_items
        self._items: dict[Hashable, tuple[tuple[Entry, ...], T]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, ident: Hashable, entries: Sequence[Entry], compute: Callable[[tuple[Entry, ...]], T]) -> T:
        stamp = tuple(entries)
        found = self._items.get(ident)
        if found is not None and found[0] == stamp:  # `same_entries`
            self.hits += 1
            return found[1]
        self.misses += 1
        value = compute(stamp)
        with self._lock:
            if len(self._items) >= self._max_items:
                self._items.clear()
            self._items[ident] = (stamp, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
