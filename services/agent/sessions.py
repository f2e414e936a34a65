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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spaas import safefs
from spaas.keys import Keys
from spaas.records import read_app
from spaas.store import Store

from services.agent.drivers import Driver

log = logging.getLogger(__name__)


RESULT_MAX_BYTES = 16 * 1024 * 1024


def _exists(root: Path, rel: list[str]) -> bool:
    try:
        safefs.check_regular(root, rel)
    except FileNotFoundError:
        return False
    return True


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

    def sync_one(self, app_id: str, repl_dir: Path) -> None:
        """The driver runs tenant code that can change its own directory: every file here is
        reached through `spaas.safefs` beneath the driver directory, no link followed."""
        base, sub = repl_dir.parent, repl_dir.name
        # One read of the application's records (spaas.records: heartbeat typed, statements raw).
        rec = read_app(self._store, self._keys, self._tenant, self._sig, app_id)
        if rec is None:
            return
        parts: dict[int, dict[str, Any]] = {}
        for key, entry in rec.statements.items():
            _, num, part = key.split("/", 2)
            if not entry.error and isinstance(entry.value, dict):
                parts.setdefault(int(num), {})[part] = entry.value
        try:
            for n, p in sorted(parts.items()):
                if "code" in p and not _exists(base, [sub, "in", f"{n}.json"]):
                    body = {"code": p["code"].get("code", ""), "kind": p["code"].get("kind")}
                    safefs.write_atomic(base, [sub, "in", f"{n}.json"], json.dumps(body).encode(), mode=0o600)
                if "cancel" in p and not _exists(base, [sub, "cancel", str(n)]):
                    safefs.write_atomic(base, [sub, "cancel", str(n)], b"", mode=0o600)
                try:
                    data, _ = safefs.read_bytes(base, [sub, "out", f"{n}.json"], max_bytes=RESULT_MAX_BYTES,
                                                single_link=False)
                    result = json.loads(data)
                except (FileNotFoundError, ValueError):
                    continue
                if isinstance(result, dict) and result != p.get("result"):
                    self._store.put(self._keys.app_stmt(self._tenant, self._sig, app_id, n, "result"), result)
                    log.info("session %s/%s/%s: statement %d %s", self._tenant, self._sig, app_id, n,
                             result.get("state"))
            if rec.heartbeat is not None:
                text = str(float(rec.heartbeat.at)).encode()
                try:
                    current, _ = safefs.read_bytes(base, [sub, "heartbeat"], max_bytes=64, single_link=False)
                except FileNotFoundError:
                    current = b""
                if current != text:
                    safefs.write_atomic(base, [sub, "heartbeat"], text, mode=0o600)
        except safefs.UnsafeFile as exc:
            log.warning("session %s/%s/%s: REPL files refused: %s", self._tenant, self._sig, app_id, exc.message)
