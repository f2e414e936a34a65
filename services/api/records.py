"""Reading and writing the API's records in etcd, and shaping them for responses."""

from __future__ import annotations

import time
from typing import Any

from spaas.errors import Conflict, NotFound
from spaas.keys import Keys
from spaas.model import AppState, Phase
from spaas.store import Entry, Store


def get_tenant(store: Store, keys: Keys, tenant: str) -> Entry:
    entry = store.get(keys.tenant(tenant))
    if entry is None:
        raise NotFound(f"tenant {tenant!r} not found", field="tenant")
    return entry


def sig_parts(store: Store, keys: Keys, tenant: str, sig: str) -> dict[str, Entry]:
    parts = {}
    for entry in store.list(keys.sig(tenant, sig)):
        parts[entry.key.rsplit("/", 1)[1]] = entry
    return parts


def get_sig(store: Store, keys: Keys, tenant: str, sig: str) -> dict[str, Entry]:
    parts = sig_parts(store, keys, tenant, sig)
    if "spec" not in parts:
        raise NotFound(f"SIG {sig!r} not found in tenant {tenant!r}", field="sig")
    return parts


def sig_view(tenant: str, sig: str, parts: dict[str, Entry]) -> dict[str, Any]:
    """The SIG as users see it: spec + status (phase, build, workers, endpoints)."""
    spec = parts["spec"].value
    build = parts["build"].value if "build" in parts else {}
    status = parts["status"].value if "status" in parts else {}
    generation = int(spec["generation"])
    phase = status.get("phase", Phase.PENDING.value)
    reason, message = status.get("reason"), status.get("message")
    if spec.get("deleting"):
        phase = Phase.DELETING.value
        reason, message = reason or "Deleting", message or "deletion requested"
    elif build and int(build.get("generation", 0)) == generation and build.get("state") == "FAILED":
        phase, reason, message = Phase.FAILED.value, "BuildFailed", build.get("message")
    elif not status and build:
        phase = Phase.BUILDING.value
    build_view = {k: build.get(k) for k in ("key", "state", "generation", "cache_hit", "joined", "started_at",
                                           "finished_at", "message") if k in build}
    workers = status.get("workers", {})
    return {
        "tenant": tenant,
        "name": sig,
        "spec": spec["spec"],
        "generation": generation,
        "created_at": spec.get("created_at"),
        "updated_at": spec.get("updated_at"),
        "status": {
            "phase": phase,
            "reason": reason,
            "message": message,
            "generation": generation,
            "observed_generation": int(status.get("observed_generation", 0)),
            "build_key": build.get("key"),
            "build": build_view,
            "workers": {"desired": workers.get("desired", 0), "ready": workers.get("ready", 0)},
            "master_url": status.get("master_url"),
            "ui_url": status.get("ui_url"),
            "since": status.get("since"),
        },
    }


def app_parts(store: Store, keys: Keys, tenant: str, sig: str, app_id: str) -> dict[str, Entry]:
    """The application's keys by their path below it: spec, state, kill, and for Livy sessions
    session, heartbeat and stmts/{n}/{code|cancel|result}."""
    prefix = keys.app(tenant, sig, app_id)
    return {e.key[len(prefix):]: e for e in store.list(prefix)}


def app_view(app_id: str, parts: dict[str, Entry]) -> dict[str, Any]:
    spec = parts["spec"].value
    state = parts["state"].value if "state" in parts else {}
    return {
        "id": app_id,
        "name": spec["request"].get("name"),
        "state": state.get("state", AppState.SUBMITTED.value),
        "reason": state.get("reason"),
        "message": state.get("message"),
        "exit_code": state.get("exit_code"),
        "spark_app_id": state.get("spark_app_id"),
        "submitter": spec.get("submitter"),
        "submitted_at": spec.get("submitted_at"),
        "started_at": state.get("started_at"),
        "finished_at": state.get("finished_at"),
        "kill_requested": "kill" in parts,
        "request": spec["request"],
    }


def group_apps(entries: list[Entry], keys: Keys, tenant: str, sig: str) -> dict[str, dict[str, Entry]]:
    grouped: dict[str, dict[str, Entry]] = {}
    for entry in entries:
        app_id, part = keys.split_app_key(entry.key, tenant, sig)
        grouped.setdefault(app_id, {})[part] = entry
    return grouped


def cas_update(store: Store, key: str, change: Any, *, attempts: int = 5) -> Entry:
    """Read-modify-write with compare-and-swap, retried on conflict."""
    for _ in range(attempts):
        entry = store.get(key)
        if entry is None:
            raise NotFound(f"{key} is gone")
        value = change(dict(entry.value))
        try:
            return store.update(key, value, mod_revision=entry.mod_revision)
        except Conflict:
            time.sleep(0.05)
    raise Conflict(f"{key} kept changing; try again")
