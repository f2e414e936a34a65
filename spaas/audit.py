"""The audit log: who did what to which resource, kept in etcd so it survives API restarts.

Records are keyed by day and time, `{p}/audit/{YYYYMMDD}/{ms:013d}-{rand}`, so keys sort by
time; a small marker `{p}/audit-days/{YYYYMMDD}` lists the days that have records. Reading walks
days newest first; pruning deletes whole days older than the retention (one prefix delete each),
which keeps the log bounded without listing it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from spaas.keys import Keys
from spaas.store import Store

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True)
class AuditRecord:
    principal: str
    action: str
    method: str
    resource: str
    status: int
    client: str
    time: float
    tenant: str | None = None


def day_of(ts: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(ts))


class AuditLog:
    def __init__(self, store: Store, keys: Keys, *, retention_days: int = 30,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._keys = keys
        self._retention_days = retention_days
        self._clock = clock
        self._last_prune = 0.0
        self._days_marked: set[str] = set()

    def record(self, rec: AuditRecord) -> None:
        day = day_of(rec.time)
        if day not in self._days_marked:
            self._store.put(self._keys.audit_day_marker(day), {"day": day})
            self._days_marked.add(day)
        key = f"{self._keys.audit_day(day)}{int(rec.time * 1000):013d}-{secrets.token_hex(3)}"
        self._store.put(key, asdict(rec))
        if self._clock() - self._last_prune > PRUNE_EVERY_S:
            self.prune()

    def prune(self) -> int:
        """Delete the days older than the retention; returns how many records went."""
        self._last_prune = self._clock()
        cutoff = day_of(self._clock() - self._retention_days * 86400)
        deleted = 0
        for marker in self._store.list(self._keys.audit_days()):
            day = str(marker.value.get("day", ""))
            if day and day < cutoff:
                deleted += self._store.delete_prefix(self._keys.audit_day(day))
                self._store.delete(marker.key)
                self._days_marked.discard(day)
        if deleted:
            log.info("audit: pruned %d records older than %d days", deleted, self._retention_days)
        return deleted

    def query(self, *, tenant: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first, at most `limit`, optionally only those addressed to `tenant`."""
        days = sorted((str(m.value.get("day", "")) for m in self._store.list(self._keys.audit_days())), reverse=True)
        out: list[dict[str, Any]] = []
        for day in days:
            for entry in reversed(self._store.list(self._keys.audit_day(day))):
                if tenant is None or entry.value.get("tenant") == tenant:
                    out.append(entry.value)
                    if len(out) >= limit:
                        return out
        return out
