"""This container's entry in the host registry: written with a lease and kept alive."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from spaas.errors import TemporaryError
from spaas.keys import Keys
from spaas.loops import run_every
from spaas.store import Store

log = logging.getLogger(__name__)


class HostRegistration:
    """Owns `{p}/hosts/{t}/{s}/{container}`. If the lease is lost (etcd restarted, long pause)
    it grants a new one and writes the record again."""

    def __init__(self, store: Store, keys: Keys, tenant: str, sig: str, host: str, *, ttl_s: int = 10,
                 key: str = "") -> None:
        """`key`: another key than the SIG's host record (a pooled container's, see agent/pool.py)."""
        self._store = store
        self._key = key or keys.host(tenant, sig, host)
        self._ttl = ttl_s
        self._lease = 0
        self._record: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def record(self) -> dict[str, Any]:
        """What was published last (empty before the first publish)."""
        with self._lock:
            return dict(self._record)

    def publish(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._record = dict(record, registered_at=time.time())
            if not self._lease:
                self._lease = self._store.grant_lease(self._ttl)
            self._store.put(self._key, self._record, lease=self._lease)
        if self._thread is None:
            self._thread = threading.Thread(target=self._keepalive, name="host-keepalive", daemon=True)
            self._thread.start()

    def _renew(self) -> None:
        with self._lock:
            if self._store.keepalive(self._lease) <= 0:
                log.warning("host lease %s expired; registering again", self._key)
                self._lease = self._store.grant_lease(self._ttl)
                self._store.put(self._key, self._record, lease=self._lease)

    def _keepalive(self) -> None:
        # Renew at a third of the TTL; while etcd fails, retry sooner (1, 2, 4, 5 s) to keep the lease.
        period = max(1.0, self._ttl / 3)
        run_every(self._renew, self._stop, period, max_backoff_s=5.0, first_backoff_s=1.0, initial_delay_s=period,
                  name=f"renewal of host lease {self._key}")

    def withdraw(self) -> None:
        self._stop.set()
        with self._lock:
            if self._lease:
                try:
                    self._store.revoke(self._lease)
                except TemporaryError:
                    pass
                self._lease = 0
