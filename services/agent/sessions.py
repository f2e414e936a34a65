"""Relays Livy session statements between etcd and the session drivers' REPLs.

The API writes `stmts/{n}/code` (and `cancel`) below the session's application; each scan of the
master's agent copies new ones into the REPL's inbox (`<driver dir>/repl/in/{n}.json`, see
`services/agent/repl.py`), cancel requests into `repl/cancel/{n}`, the client's last heartbeat into
`repl/heartbeat`, and the REPL's results back to `stmts/{n}/result` (the agent owns that key).
Everything is idempotent: a file or key already as wanted is left alone.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spaas.keys import Keys
from spaas.store import Store

from services.agent.drivers import Driver

log = logging.getLogger(__name__)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class SessionRelay:
    def __init__(self, store: Store, keys: Keys, *, tenant: str, sig: str) -> None:
        self._store = store
        self._keys = keys
        self._tenant = tenant
        self._sig = sig

    def sync(self, drivers: Mapping[str, Driver]) -> None:
        for app_id, driver in list(drivers.items()):
            if driver.repl_dir is not None and driver.poll() is None and not driver.kill_requested:
                self.sync_one(app_id, driver.repl_dir)

    def sync_one(self, app_id: str, root: Path) -> None:
        for sub in ("in", "out", "cancel"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        prefix = self._keys.app_stmts(self._tenant, self._sig, app_id)
        parts: dict[int, dict[str, Any]] = {}
        for entry in self._store.list(prefix):
            n, _, part = entry.key[len(prefix):].partition("/")
            if n.isdigit():
                parts.setdefault(int(n), {})[part] = entry.value
        for n, p in sorted(parts.items()):
            inbox = root / "in" / f"{n}.json"
            if "code" in p and not inbox.exists():
                write_atomic(inbox, json.dumps({"code": p["code"].get("code", ""), "kind": p["code"].get("kind")}))
            cancel = root / "cancel" / str(n)
            if "cancel" in p and not cancel.exists():
                cancel.touch()
            out = root / "out" / f"{n}.json"
            try:
                result = json.loads(out.read_text())
            except (OSError, ValueError):
                continue
            if result != p.get("result"):
                self._store.put(self._keys.app_stmt(self._tenant, self._sig, app_id, n, "result"), result)
                log.info("session %s/%s/%s: statement %d %s", self._tenant, self._sig, app_id, n, result.get("state"))
        beat = self._store.get(self._keys.app_heartbeat(self._tenant, self._sig, app_id))
        if beat is not None:
            text = str(float(beat.value.get("at", 0)))
            path = root / "heartbeat"
            if not path.exists() or path.read_text() != text:
                write_atomic(path, text)
