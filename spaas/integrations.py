"""The public queue contract of spaas (docs/integrations.md), version 1: pure declarations and
parsing, no I/O.

    request queue     spaas.integrations.requests        integrations LPUSH, the worker consumes
    reply queues      spaas.replies.<tenant>.<integration>.<anything>   the worker LPUSHes, the
                      integration BRPOPs (named by the request's `reply_to`)
    event exchange    spaas.lifecycle (topic)             the publisher publishes
    event queue       spaas.lifecycle.<tenant>.<integration>  bound by the platform to the
                      integration's patterns (`app.<tenant>.#`, `sig.<tenant>.#` by default)

A request is either a plain JSON message

    {"version": 1, "type": "app.submit", "token": "...", "tenant": "acme", "sig": "s1",
     "body": {...}, "idempotency_key": "..."}            (+ properties reply_to, correlation_id)

or a Celery task (protocol 2) named `spaas.<type>` whose kwargs are the same fields without
`type`. Replies are `{"version": 1, "ok": bool, "status": <HTTP status>, "type": ...,
"result": {...}}` or `{..., "ok": false, "error": {"code", "field", "message"}}`, with the
request's correlation id (a Celery task's id).

Events: `{"version": 1, "type": "app.state", "tenant", "sig", "id", "state", "reason",
"revision", "at"}` on `app.<tenant>.<sig>.<STATE>` and `{"version": 1, "type": "sig.phase",
"tenant", "sig", "phase", "reason", "revision", "at"}` on `sig.<tenant>.<sig>.<PHASE>`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

VERSION = 1
REQUEST_QUEUE = "spaas.integrations.requests"
EVENT_EXCHANGE = "spaas.lifecycle"
REPLY_PREFIX = "spaas.replies."
EVENT_QUEUE_PREFIX = "spaas.lifecycle."
CELERY_PREFIX = "spaas."
KOMBU_SEP = "\x06\x16"

# type -> (needs a SIG name, needs a body, needs an application id)
REQUEST_TYPES: dict[str, tuple[bool, bool, bool]] = {
    "sig.create": (False, True, False),
    "sig.update": (True, True, False),
    "sig.delete": (True, False, False),
    "app.submit": (True, True, False),
    "app.kill": (True, False, True),
}
NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,22}[a-z0-9])?$")
APP_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
KEY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")
# Event patterns an integration may ask for: `app|sig`, its own tenant, then SIG/state words or # / *.
PATTERN_WORD_RE = re.compile(r"^([a-z0-9][-a-z0-9]{0,62}|[A-Z]{1,20}|\*|#)$")
MAX_PATTERNS = 20


class BadRequestMessage(ValueError):
    """A request that cannot be executed; `code` and `field` go into the reply."""

    def __init__(self, message: str, *, code: str = "BadMessage", field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


@dataclass(frozen=True)
class Request:
    type: str
    token: str = ""
    tenant: str = ""
    sig: str = ""
    app_id: str = ""
    body: dict[str, Any] | None = None
    idempotency_key: str = ""

    def __repr__(self) -> str:  # never show the token
        return f"Request(type={self.type!r}, tenant={self.tenant!r}, sig={self.sig!r}, app_id={self.app_id!r})"


def parse_request(data: Any, *, type_: str | None = None) -> Request:
    """Validate a request's fields (a plain message, or a Celery task's kwargs with `type_`). Pure."""
    if not isinstance(data, dict):
        raise BadRequestMessage("the message must be a JSON object", field="body")
    version = data.get("version", VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version != VERSION:
        raise BadRequestMessage(f"unsupported version {version!r}; this platform speaks version {VERSION}",
                                code="UnsupportedVersion", field="version")
    kind = type_ if type_ is not None else data.get("type")
    if kind not in REQUEST_TYPES:
        raise BadRequestMessage(f"unknown request type {kind!r}; one of {', '.join(REQUEST_TYPES)}", field="type")
    allowed = {"version", "type", "token", "tenant", "sig", "id", "body", "idempotency_key"}
    extra = sorted(set(data) - allowed)
    if extra:
        raise BadRequestMessage(f"unknown field {extra[0]!r}", field=extra[0])
    token = data.get("token")
    if not isinstance(token, str) or not token or len(token) > 512:
        raise BadRequestMessage("a spaas token is required", code="Unauthenticated", field="token")
    tenant = data.get("tenant")
    if not isinstance(tenant, str) or not NAME_RE.match(tenant):
        raise BadRequestMessage("tenant must be a tenant name", field="tenant")
    needs_sig, needs_body, needs_id = REQUEST_TYPES[kind]
    sig = data.get("sig", "")
    if needs_sig and (not isinstance(sig, str) or not NAME_RE.match(sig)):
        raise BadRequestMessage("sig must be a SIG name", field="sig")
    app_id = data.get("id", "")
    if needs_id and (not isinstance(app_id, str) or not APP_ID_RE.match(app_id)):
        raise BadRequestMessage("id must be an application id", field="id")
    body = data.get("body")
    if needs_body and not isinstance(body, dict):
        raise BadRequestMessage("body must be a JSON object", field="body")
    key = data.get("idempotency_key") or ""
    if not isinstance(key, str) or (key and not KEY_RE.match(key)):
        raise BadRequestMessage("idempotency_key must be 1-200 printable ASCII characters", field="idempotency_key")
    return Request(type=kind, token=token, tenant=tenant, sig=sig if needs_sig else "",
                   app_id=app_id if needs_id else "", body=body if needs_body else None, idempotency_key=key)


def decode_message(body: Any, headers: dict[str, Any] | None) -> tuple[Request | None, BadRequestMessage | None]:
    """A raw message (plain JSON or a Celery protocol-2 task) -> the request, or why not. Pure."""
    headers = headers or {}
    try:
        if isinstance(body, (bytes, str)):
            try:
                body = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise BadRequestMessage("the message is not JSON", field="body") from None
        task = headers.get("task")
        if task is not None:
            if not isinstance(task, str) or not task.startswith(CELERY_PREFIX):
                raise BadRequestMessage(f"unknown task {task!r}", field="task")
            if not (isinstance(body, list) and len(body) >= 2 and isinstance(body[1], dict)):
                raise BadRequestMessage("a task's arguments must be keyword arguments", field="kwargs")
            if body[0]:
                raise BadRequestMessage("pass the request as keyword arguments, not positional ones", field="args")
            return parse_request(body[1], type_=task[len(CELERY_PREFIX):]), None
        return parse_request(body), None
    except BadRequestMessage as exc:
        return None, exc


def reply_queue_prefix(tenant: str, integration: str) -> str:
    return f"{REPLY_PREFIX}{tenant}.{integration}."


def reply_allowed(reply_to: str) -> bool:
    """Replies go only to reply queues (`spaas.replies.<tenant>.<integration>.<suffix>`), never to
    another key the worker could write (an agent's or the scaler's queue). A sender may name any
    integration's reply queue (its tenant need not be the request's: one integration may serve a
    user with roles in several tenants); the reply then holds only what the sender's own token got. Pure."""
    parts = reply_to.split(".", 4) if reply_to.startswith(REPLY_PREFIX) else []
    if len(parts) != 5 or not NAME_RE.match(parts[2]) or not NAME_RE.match(parts[3]) or not parts[4]:
        return False
    return len(reply_to) <= 200 and KOMBU_SEP not in reply_to and not any(c in reply_to for c in "*?[]\\ ")


def event_queue(tenant: str, integration: str) -> str:
    return f"{EVENT_QUEUE_PREFIX}{tenant}.{integration}"


def default_patterns(tenant: str) -> list[str]:
    return [f"app.{tenant}.#", f"sig.{tenant}.#"]


def check_patterns(tenant: str, patterns: Any) -> list[str]:
    """Event patterns an integration asked for, each confined to its tenant (`app|sig.<tenant>.…`). Pure."""
    if patterns is None:
        return default_patterns(tenant)
    if not isinstance(patterns, list) or not patterns or len(patterns) > MAX_PATTERNS:
        raise BadRequestMessage(f"patterns must be a list of 1-{MAX_PATTERNS} routing key patterns", field="patterns")
    out: list[str] = []
    for i, pattern in enumerate(patterns):
        words = pattern.split(".") if isinstance(pattern, str) else []
        if (len(words) < 3 or len(words) > 4 or words[0] not in ("app", "sig") or words[1] != tenant
                or not all(PATTERN_WORD_RE.match(w) for w in words[2:])):
            raise BadRequestMessage(f"pattern {pattern!r} must be app.{tenant}.<sig|*|#>[.<STATE|*|#>] or "
                                    f"sig.{tenant}.<sig|*|#>[.<PHASE|*|#>]", field=f"patterns.{i}")
        out.append(pattern)
    return sorted(set(out))


def app_routing_key(tenant: str, sig: str, state: str) -> str:
    return f"app.{tenant}.{sig}.{state}"


def sig_routing_key(tenant: str, sig: str, phase: str) -> str:
    return f"sig.{tenant}.{sig}.{phase}"


def reply(status: int, *, type_: str | None, result: dict[str, Any] | None = None,
          code: str = "", field: str | None = None, message: str = "") -> dict[str, Any]:
    ok = 200 <= status < 300
    out: dict[str, Any] = {"version": VERSION, "ok": ok, "status": status, "type": type_}
    if ok:
        out["result"] = result or {}
    else:
        out["error"] = {"code": code or "Error", "field": field, "message": message}
    return out


def app_event(tenant: str, sig: str, app_id: str, state: str, reason: str | None, revision: int,
              at: float) -> dict[str, Any]:
    return {"version": VERSION, "type": "app.state", "tenant": tenant, "sig": sig, "id": app_id,
            "state": state, "reason": reason, "revision": revision, "at": at}


def sig_event(tenant: str, sig: str, phase: str, reason: str | None, revision: int, at: float) -> dict[str, Any]:
    return {"version": VERSION, "type": "sig.phase", "tenant": tenant, "sig": sig, "phase": phase,
            "reason": reason, "revision": revision, "at": at}


# -- Redis ACL of an integration's user ---------------------------------------------------------
CONNECTION_COMMANDS = ("+ping", "+client|setname", "+client|getname", "+client|id")


def integration_user(platform_prefix: str, tenant: str, integration: str) -> str:
    platform = platform_prefix.strip("/").replace("/", ".") or "spaas"
    return f"{platform}.integration.{tenant}.{integration}"


def password_hash(password: str) -> str:
    """What Redis is given (`#<sha256>`) and etcd keeps: the password itself is stored nowhere."""
    return hashlib.sha256(password.encode()).hexdigest()


def acl_rules(tenant: str, integration: str, request_queue: str = REQUEST_QUEUE) -> tuple[str, ...]:
    """`ACL SETUSER` rules (after the password) of one integration's user. Pure.

    It may LPUSH requests, and BRPOP/LLEN only its own event queue and reply queues: no binding
    sets, no other key, no pub/sub, no admin command."""
    events = event_queue(tenant, integration)
    replies = reply_queue_prefix(tenant, integration)
    return (
        "resetkeys", "resetchannels", "clearselectors", "-@all", *CONNECTION_COMMANDS,
        f"~{events}", f"~{events}{KOMBU_SEP}*", f"~{replies}*", "+brpop", "+llen",
        f"(~{request_queue} ~{request_queue}{KOMBU_SEP}* +lpush)",
    )
