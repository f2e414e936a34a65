"""The collaborators of the API, built once by `create_app` and reached by views via `deps()`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from flask import Response, current_app, request

from spaas.audit import AuditLog
from spaas.auth import Authenticator, Tokens
from spaas.bus import Bus
from spaas.demand import DemandStore
from spaas.integration_redis import IntegrationRedis
from spaas.keys import Keys
from spaas.logstream import LogStreams
from spaas.memo import EntryMemo
from spaas.settings import ApiSettings
from spaas.storage import SigStorage
from spaas.store import Store

from services.api.errors import BadRequest
from services.api.ratelimit import LoginLimiter


@dataclass
class Deps:
    settings: ApiSettings
    store: Store
    bus: Bus
    logs: LogStreams
    keys: Keys
    storage: SigStorage
    demand: DemandStore
    tokens: Tokens
    authenticator: Authenticator
    limiter: LoginLimiter
    audit: AuditLog
    token_hash: str = ""
    # Redis users and event queues of integrations (routes/integrations.py).
    integrations: IntegrationRedis | None = None
    # Derived from the records read on every request, kept while those records are unchanged
    # (spaas/memo.py): a caller's roles in a tenant (by its grant entries), and the encoded JSON
    # of SIG and application views.
    roles: EntryMemo[frozenset[str]] = field(default_factory=lambda: EntryMemo(max_items=20_000))
    views: EntryMemo[Any] = field(default_factory=lambda: EntryMemo(max_items=20_000))


def deps() -> Deps:
    return cast(Deps, current_app.extensions["spaas"])


def json_body() -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says why not."""
    try:
        data = request.get_json(force=True, silent=True)
    except RecursionError:  # absurdly nested JSON; silent=True only swallows ValueError
        data = None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object", field="body")
    return data


def encoded(obj: Any) -> bytes:
    """The JSON body Flask would send for `obj` (what `json_response` serves again)."""
    return (current_app.json.dumps(obj, separators=(",", ":")) + "\n").encode()


def json_response(body: bytes, status: int = 200) -> Response:
    return current_app.response_class(body, status=status, mimetype="application/json")
