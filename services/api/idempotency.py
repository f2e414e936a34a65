"""`Idempotency-Key` on creating requests (application submission, SIG creation).

The first request with a key records, under the tenant, a pending marker (put-if-absent: the
key is the lock) and then its answer; a repeat by the same principal with the same body gets
that answer again (200, header `Idempotent-Replayed: true`), with another body 422
`IdempotencyKeyReused`, while the first is still running 409 `IdempotencyKeyInFlight`. The
record is `sha256(principal, key)` (one caller's keys never meet another's) on a lease of
`idempotency_ttl_s`. A failed first request leaves nothing, so a retry runs again. A marker
left by a process that died mid-request is taken over after PENDING_S (the one case where a
request may run twice: the process died between writing the application and its answer).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from flask import request

from spaas import integrations
from spaas.errors import Conflict, Invalid

from services.api.deps import deps
from services.api.guard import current_principal

HEADER = "Idempotency-Key"
PENDING_S = 60.0


class KeyReused(Invalid):
    code = "IdempotencyKeyReused"


class InFlight(Conflict):
    code = "IdempotencyKeyInFlight"


def digest(principal: str, key: str) -> str:
    return hashlib.sha256(f"spaas-idempotency\0{principal}\0{key}".encode()).hexdigest()


def fingerprint(kind: str, sig: str, body: Any) -> str:
    return hashlib.sha256(json.dumps([kind, sig, body], sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def keyed(tenant: str, kind: str, sig: str, body: Any,
          run: Callable[[], tuple[dict[str, Any], int]]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Run `run` once per (principal, Idempotency-Key); without the header, just run it."""
    key = request.headers.get(HEADER)
    if key is None:
        result, status = run()
        return result, status, {}
    if not integrations.KEY_RE.match(key):
        raise Invalid("Idempotency-Key must be 1-200 printable ASCII characters", field=HEADER)
    d = deps()
    path = d.keys.idempotency(tenant, digest(current_principal().name, key))
    mine = fingerprint(kind, sig, body)
    for _ in range(3):
        entry = d.store.get(path)
        if entry is not None:
            value = entry.value
            if value.get("fingerprint") != mine:
                raise KeyReused(f"Idempotency-Key {key!r} was used for another request", field=HEADER)
            if isinstance(value.get("result"), dict):
                return value["result"], 200, {"Idempotent-Replayed": "true"}
            if time.time() - float(value.get("created_at", 0)) < PENDING_S:
                raise InFlight(f"a request with Idempotency-Key {key!r} is still running; retry", field=HEADER)
            d.store.delete(path, mod_revision=entry.mod_revision)  # its process died: take over
            continue
        lease = d.store.grant_lease(d.settings.idempotency_ttl_s)
        try:
            pending = d.store.create(path, {"fingerprint": mine, "created_at": time.time()}, lease=lease)
        except Conflict:
            d.store.revoke(lease)
            continue  # someone else's first request: read it
        try:
            result, status = run()
        except BaseException:
            d.store.delete(path, mod_revision=pending.mod_revision)
            raise
        d.store.update(path, {"fingerprint": mine, "created_at": pending.value["created_at"], "result": result,
                              "status": status}, mod_revision=pending.mod_revision, lease=lease)
        return result, status, {}
    raise InFlight(f"a request with Idempotency-Key {key!r} is still running; retry", field=HEADER)
