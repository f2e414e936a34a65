"""`/api/v1/tenants/{t}/integrations`: queue-based integrations (docs/integrations.md).

Creating one makes a Redis ACL user that may only push requests and read its own event and
reply queues, and binds its event queue to the tenant's lifecycle events. The password is
returned once; etcd keeps its SHA-256 (what Redis is given), so it can be re-applied after a
Redis restart but never shown again.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from flask import Blueprint

from spaas import integrations
from spaas.errors import Conflict, Invalid, NotFound, TemporaryError
from spaas.integration_redis import IntegrationRedis
from spaas.redisauth import url_with_user, without_credentials

from services.api.deps import deps, json_body
from services.api.guard import action, current_principal
from services.api.records import get_tenant

log = logging.getLogger(__name__)
bp = Blueprint("integrations", __name__)


def _redis() -> IntegrationRedis:
    d = deps()
    assert d.integrations is not None, "create_app always sets it"
    return d.integrations


def _view(tenant: str, value: dict[str, Any]) -> dict[str, Any]:
    """What anyone allowed may see again: no password, no hash."""
    d = deps()
    name = str(value.get("name", ""))
    return {
        "name": name, "tenant": tenant, "redis_user": _redis().user(tenant, name),
        "request_queue": d.settings.integration_queue,
        "reply_queue_prefix": integrations.reply_queue_prefix(tenant, name),
        "event_exchange": integrations.EVENT_EXCHANGE,
        "event_queue": integrations.event_queue(tenant, name),
        "patterns": list(value.get("patterns", [])),
        "created_by": value.get("created_by"), "created_at": value.get("created_at"),
    }


def _public_redis_url() -> str:
    d = deps()
    return without_credentials(d.settings.integration_redis_url or d.settings.redis_url)


@bp.post("/tenants/<tenant>/integrations")
@action("integration.create")
def create(tenant: str) -> tuple[dict[str, Any], int]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    body = json_body()
    extra = sorted(set(body) - {"name", "patterns"})
    if extra:
        raise Invalid(f"unknown field {extra[0]!r}", field=extra[0])
    name = body.get("name")
    if not isinstance(name, str) or not integrations.NAME_RE.match(name):
        raise Invalid("name must be a DNS label: 1-24 lower-case letters, digits or '-', starting with a letter",
                      field="name")
    try:
        patterns = integrations.check_patterns(tenant, body.get("patterns"))
    except integrations.BadRequestMessage as exc:
        raise Invalid(str(exc), field=exc.field) from None
    password = secrets.token_urlsafe(32)
    record = {"name": name, "patterns": patterns, "password_sha256": integrations.password_hash(password),
              "created_by": current_principal().name, "created_at": time.time()}
    try:
        d.store.create(d.keys.integration(tenant, name), record)
    except Conflict:
        raise Conflict(f"integration {name!r} already exists in tenant {tenant!r}", field="name") from None
    try:
        _redis().ensure(tenant, name, str(record["password_sha256"]), patterns)
    except Exception:
        d.store.delete(d.keys.integration(tenant, name))
        raise
    log.info("tenant %s: integration %s created by %s (%s)", tenant, name, current_principal().name, patterns)
    user = _redis().user(tenant, name)
    return {**_view(tenant, record), "password": password,
            "redis_url": url_with_user(_public_redis_url(), user, password)}, 201


@bp.get("/tenants/<tenant>/integrations")
@action("integration.list")
def list_integrations(tenant: str) -> dict[str, Any]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    return {"integrations": [_view(tenant, e.value) for e in d.store.list(d.keys.integrations(tenant))
                             if not e.error and "/" not in e.key[len(d.keys.integrations(tenant)):]]}


def _get(tenant: str, name: str) -> dict[str, Any]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    entry = d.store.get(d.keys.integration(tenant, name)) if integrations.NAME_RE.match(name) else None
    if entry is None or entry.error:
        raise NotFound(f"integration {name!r} not found in tenant {tenant!r}", field="name")
    return entry.value


@bp.get("/tenants/<tenant>/integrations/<name>")
@action("integration.read")
def read(tenant: str, name: str) -> dict[str, Any]:
    return _view(tenant, _get(tenant, name))


@bp.delete("/tenants/<tenant>/integrations/<name>")
@action("integration.delete")
def delete(tenant: str, name: str) -> dict[str, Any]:
    d = deps()
    value = _get(tenant, name)
    _redis().forget(tenant, name)  # first: a failure leaves the record, so a retry finishes the job
    d.store.delete(d.keys.integration(tenant, name))
    log.info("tenant %s: integration %s deleted by %s", tenant, name, current_principal().name)
    return {**_view(tenant, value), "deleted": True}


def forget_all(tenant: str) -> None:
    """A deleted tenant's integrations: Redis users and queues, then records. If Redis is away the
    worker's resync removes the users later (it keeps only integrations of existing tenants)."""
    d = deps()
    for entry in d.store.list(d.keys.integrations(tenant)):
        name = entry.key[len(d.keys.integrations(tenant)):]
        try:
            _redis().forget(tenant, name)
        except TemporaryError as exc:
            log.warning("tenant %s: integration %s left in Redis (%s); the worker's resync removes it",
                        tenant, name, exc)
    d.store.delete_prefix(d.keys.integrations(tenant))
