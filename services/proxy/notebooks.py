"""The proxy's side of notebook servers: it records demand and activity in etcd
(`{p}/notebooks/{t}/{s}/{user}` = {requested_at, last_activity}), throttled, off the event loop.

The scaler starts a user's server when a record appears and culls it when `last_activity` (or
Jupyter's own, from the server's host record) is older than the SIG's idle timeout. A lost write
costs latency only: the next request writes again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from spaas import notebooks as nb
from spaas.errors import SpaasError
from spaas.keys import Keys

from services.proxy.table import RouteTable

log = logging.getLogger(__name__)

# A record the scaler deleted (culled) is written again at once; this only absorbs the route
# table's refresh lag.
NEW_DEMAND_THROTTLE_S = 2.0
# A kernel's WebSocket handshake waits for the kernel (and its Spark session) to be ready.
NOTEBOOK_WS_TIMEOUT_S = 600.0


class NotebookTracker:
    def __init__(self, put: Callable[[str, dict[str, Any]], Any] | None, keys: Keys, *,
                 clock: Callable[[], float] = time.time) -> None:
        """`put(key, value)`: a blocking etcd write (run in a thread); None disables recording."""
        self._put = put
        self._keys = keys
        self._clock = clock
        self._written: dict[tuple[str, str, str], float] = {}

    def plan(self, table: RouteTable, tenant: str, sig: str, user: str) -> dict[str, Any] | None:
        """The record to write now, or None (pure apart from the clock and what this replica wrote)."""
        ident = (tenant, sig, user)
        record = table.notebook_demand.get(ident)
        throttle = nb.touch_throttle(table.notebook_sigs.get((tenant, sig), 3600))
        if record is None:
            throttle = min(throttle, NEW_DEMAND_THROTTLE_S)
        now = self._clock()
        if not nb.should_touch(nb.last_seen(dict(record) if record else None), self._written.get(ident, 0.0), now,
                               throttle_s=throttle):
            return None
        self._written[ident] = now
        requested = record.get("requested_at") if record else None
        return {"requested_at": requested if isinstance(requested, (int, float)) else now, "last_activity": now}

    def touch(self, table: RouteTable, tenant: str, sig: str, user: str) -> None:
        """Record demand/activity for the user's server in the background (never blocks a request)."""
        if self._put is None:
            return
        value = self.plan(table, tenant, sig, user)
        if value is None:
            return
        key = self._keys.notebook(tenant, sig, user)
        asyncio.get_running_loop().run_in_executor(None, self._write, key, value)

    def _write(self, key: str, value: dict[str, Any]) -> None:
        try:
            assert self._put is not None
            self._put(key, value)
        except SpaasError as exc:
            log.warning("notebook activity %s not recorded: %s", key, exc)
