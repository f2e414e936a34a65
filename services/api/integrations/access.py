"""Keeps every integration's Redis user and event queue as etcd records them: Redis holds ACL users
in memory only, so a restarted Redis gets them back within one resync, and a user whose
integration record is gone (deleted while Redis was away, or by hand) is removed."""

from __future__ import annotations

import logging
import threading

from spaas.errors import SpaasError
from spaas.integration_redis import IntegrationRedis
from spaas.keys import Keys
from spaas.store import Store

log = logging.getLogger(__name__)


def resync(store: Store, keys: Keys, access: IntegrationRedis) -> int:
    """Re-apply every integration; delete stray integration users. Returns how many exist."""
    wanted: set[str] = set()
    root = keys.all_integrations()
    for entry in store.list(root):
        parts = entry.key[len(root):].split("/")
        value = entry.value
        if entry.error or len(parts) != 2 or not isinstance(value.get("password_sha256"), str):
            log.warning("integration record %s is malformed; it grants nothing", entry.key)
            continue
        tenant, name = parts
        if store.get(keys.tenant(tenant)) is None:
            continue  # the tenant was deleted: its integrations grant nothing (the API removes the records)
        wanted.add(access.user(tenant, name))
        access.ensure(tenant, name, value["password_sha256"], list(value.get("patterns", [])))
    for user in access.users() - wanted:
        access.delete_user(user)
        log.info("redis user %s has no integration record: removed", user)
    return len(wanted)


def run(store: Store, keys: Keys, access: IntegrationRedis, stop: threading.Event, *, every_s: float) -> None:
    backoff = 0.5
    while not stop.is_set():
        try:
            resync(store, keys, access)
            backoff = 0.5
            stop.wait(every_s)
        except (SpaasError, OSError) as exc:
            log.warning("integration resync failed (%s); retrying in %.1fs", exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)
