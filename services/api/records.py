"""Reading and writing the API's records in etcd, and shaping them for responses.

Every read goes through `spaas.records` (typed, validated records): a malformed record shows up as
what it is (an application FAILED with reason InvalidRecord, a SIG FAILED with reason
InvalidRecord) and never fails a listing of the others."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from spaas.errors import Conflict, NotFound
from spaas.keys import Keys
from spaas.model import AppState, Phase, Quota, dump, history_usage
from spaas.records import (SIG_PARTS, AppRecords, BadRecord, SigRecords, SigSpecRecord, TenantRecord, decode, read_app,
                           read_sigs, report, sig_records, sigs_from_entries)
from spaas.store import Entry, Store


def get_tenant(store: Store, keys: Keys, tenant: str) -> Entry:
    entry = store.get(keys.tenant(tenant))
    if entry is None:
        raise NotFound(f"tenant {tenant!r} not found", field="tenant")
    return entry


def tenant_record(entry: Entry) -> TenantRecord | BadRecord:
    """The tenant's validated record, or why it cannot be read (reported once)."""
    record = decode(TenantRecord, entry)
    if isinstance(record, TenantRecord) and record.name != entry.key.rsplit("/", 1)[-1]:
        return report(BadRecord(entry.key, "tenant", f"record names tenant {record.name!r}", entry))
    return record


def tenant_quota(entry: Entry) -> Quota:
    """The quota a SIG must fit in; a tenant record that cannot be read refuses new SIGs (409)."""
    record = tenant_record(entry)
    if isinstance(record, BadRecord):
        raise Conflict(f"the record of this tenant is invalid ({record.reason}); a cluster admin must recreate it",
                       field="tenant")
    return record.quota


def tenant_view(record: TenantRecord | BadRecord) -> dict[str, Any]:
    if isinstance(record, BadRecord):
        return {"name": record.key.rsplit("/", 1)[-1], "quota": None, "created_at": None,
                "invalid": f"InvalidRecord: {record.reason}"}
    return {"name": record.name, "quota": dump(record.quota), "created_at": record.created_at}


def sig_records_of(store: Store, keys: Keys, tenant: str, sig: str) -> SigRecords | None:
    listing = read_sigs(store, keys, tenant, sig)
    return listing.records[0] if listing.records else None


def sig_parts(store: Store, keys: Keys, tenant: str, sig: str) -> SigRecords:
    """The SIG's records, even if its spec is gone (a SIG being forgotten)."""
    found = sig_records_of(store, keys, tenant, sig)
    if found is None:
        found = sig_records(tenant, sig, {e.key.rsplit("/", 1)[1]: e for e in store.list(keys.sig(tenant, sig))
                                          if e.key.rsplit("/", 1)[1] in SIG_PARTS})
    return found


def get_sig(store: Store, keys: Keys, tenant: str, sig: str) -> SigRecords:
    found = sig_records_of(store, keys, tenant, sig)
    if found is None:
        raise NotFound(f"SIG {sig!r} not found in tenant {tenant!r}", field="sig")
    return found


def sig_of_entries(entries: Sequence[Entry], keys: Keys, tenant: str, sig: str) -> SigRecords:
    """`get_sig` over the entries already listed under `keys.sig(tenant, sig)`."""
    listing = sigs_from_entries(entries, keys)
    if not listing.records:
        raise NotFound(f"SIG {sig!r} not found in tenant {tenant!r}", field="sig")
    return listing.records[0]


def tenant_usages(store: Store, keys: Keys, tenant: str | None = None) -> dict[str, dict[str, int]]:
    """What each tenant's SIGs hold now (one listing): a master and the desired workers each (at
    least min_workers), and a history server where enabled. A SIG whose spec cannot be read counts nothing (its status says why)."""
    usages: dict[str, dict[str, int]] = {}
    for rec in read_sigs(store, keys, tenant):
        used = usages.setdefault(rec.tenant, {"containers": 0, "cores": 0, "memory_mb": 0, "gpus": 0})
        for what, n in sig_usage(rec).items():
            if what in used:
                used[what] += n
    return usages


def sig_usage(rec: SigRecords) -> dict[str, Any]:
    """What one SIG counts toward its tenant's quota now (the SIG view's `status.usage`): its master,
    desired workers (at least min_workers) and running or starting notebook servers, each the size of
    one of its containers, plus its history server where enabled; `by_role` counts the containers."""
    by_role = {"master": 0, "worker": 0, "notebook": 0, "history": 0}
    if rec.spec is None or rec.spec.deleting:
        return {"containers": 0, "cores": 0, "memory_mb": 0, "gpus": 0, "by_role": by_role}
    spec = rec.spec.spec
    desired = rec.status.workers.desired if rec.status else 0
    by_role.update(master=1, worker=max(desired, spec.scaling.min_workers),
                   notebook=_notebook_servers(rec.status.to_value() if rec.status else {}))
    n = by_role["master"] + by_role["worker"] + by_role["notebook"]
    h_containers, h_cores, h_memory = history_usage(spec.history.enabled)
    by_role["history"] = h_containers
    return {"containers": n + h_containers, "cores": n * spec.resources.cpu + h_cores,
            "memory_mb": n * spec.resources.memory_mb + h_memory, "gpus": n * spec.resources.gpu, "by_role": by_role}


def _notebook_servers(status: dict[str, Any]) -> int:
    """Notebook servers a SIG runs or starts (each the size of one of its containers)."""
    servers = (status.get("notebooks") or {}).get("servers") if isinstance(status.get("notebooks"), dict) else None
    return sum(1 for s in servers or [] if isinstance(s, dict) and s.get("state") in ("starting", "ready"))


def tenant_usage(store: Store, keys: Keys, tenant: str) -> dict[str, int]:
    return tenant_usages(store, keys, tenant).get(tenant, {"containers": 0, "cores": 0, "memory_mb": 0, "gpus": 0})


def sig_ui_base(public_url: str, tenant: str, sig: str) -> str:
    """The SIG's Spark UI through services/proxy ("" when no proxy URL is configured)."""
    return f"{public_url.rstrip('/')}/sig/{tenant}/{sig}/" if public_url else ""


def usable_spec(rec: SigRecords) -> SigSpecRecord:
    """The SIG's spec for an action that needs it; 409 if it cannot be read (PUT a new one)."""
    if rec.spec is None:
        bad = rec.invalid
        raise Conflict(f"the spec of SIG {rec.sig!r} is invalid ({bad.reason if bad else 'unreadable'}); "
                       f"PUT a new spec or delete the SIG", field="sig")
    return rec.spec


def sig_view(tenant: str, sig: str, rec: SigRecords, *, ui_base: str = "") -> dict[str, Any]:
    """The SIG as users see it: spec + status (phase, build, workers, endpoints). A spec that
    cannot be read shows as FAILED with reason InvalidRecord. With `ui_base` (see `sig_ui_base`)
    `ui_url` points through the proxy, never at an internal host."""
    spec = rec.spec
    build = rec.build.to_value() if rec.build else {}
    status = rec.status.to_value() if rec.status else {}
    generation = spec.generation if spec else 0
    phase = status.get("phase") or Phase.PENDING.value
    reason, message = status.get("reason"), status.get("message")
    raw = rec.entries["spec"].value if "spec" in rec.entries else {}
    if spec is None and "spec" in rec.entries:
        bad = rec.invalid
        if raw.get("deleting") is True:
            phase, reason, message = Phase.DELETING.value, "Deleting", "deletion requested"
        else:
            phase, reason, message = Phase.FAILED.value, "InvalidRecord", bad.message if bad else "invalid spec"
    elif spec and spec.deleting:
        phase = Phase.DELETING.value
        reason, message = reason or "Deleting", message or "deletion requested"
    elif build and int(build.get("generation") or 0) == generation and build.get("state") == "FAILED":
        phase, reason, message = Phase.FAILED.value, "BuildFailed", build.get("message")
    elif not status and build:
        phase = Phase.BUILDING.value
    build_view = rec.build.model_dump(mode="json", exclude_unset=True) if rec.build else {}
    build_view = {k: build_view.get(k) for k in ("key", "state", "generation", "cache_hit", "joined", "started_at",
                                                "finished_at", "message") if k in build_view}
    workers = status.get("workers") or {}
    history = status.get("history") or {} if phase != Phase.DELETING.value else {}
    return {
        "tenant": tenant,
        "name": sig,
        "spec": dump(spec.spec) if spec else None,
        "generation": generation,
        "created_at": spec.created_at if spec else None,
        "updated_at": spec.updated_at if spec else None,
        "status": {
            "phase": phase,
            "reason": reason,
            "message": message,
            "generation": generation,
            "observed_generation": int(status.get("observed_generation") or 0),
            "build_key": build.get("key"),
            "build": build_view,
            "workers": {"desired": workers.get("desired", 0), "ready": workers.get("ready", 0)},
            "master_url": status.get("master_url"),
            "ui_url": (ui_base if status.get("ui_url") else None) if ui_base else status.get("ui_url"),
            # The SIG's history server (spec history.enabled), through the proxy like ui_url.
            "history": {"enabled": bool(spec and spec.spec.history.enabled), "ready": bool(history.get("ready")),
                        "ui_url": ((ui_base + "history/") if ui_base else history.get("ui_url"))
                        if history.get("ready") else None},
            "since": status.get("since"),
            "invalid_records": list(status.get("invalid_records") or []),
            # Per-user Jupyter servers as the scaler reports them (never their tokens).
            "notebooks": _notebooks_view(status.get("notebooks")),
            # What the SIG counts toward the tenant's quota (notebook and history servers included).
            "usage": sig_usage(rec),
        },
    }


def _notebooks_view(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {"enabled": False, "servers": []}
    servers = [{k: s.get(k) for k in ("user", "state", "url", "container")}
               for s in value.get("servers") or [] if isinstance(s, dict)]
    out: dict[str, Any] = {"enabled": bool(value.get("enabled")), "servers": servers}
    if isinstance(value.get("idle_timeout_s"), int):
        out["idle_timeout_s"] = value["idle_timeout_s"]
    return out


def app_parts(store: Store, keys: Keys, tenant: str, sig: str, app_id: str) -> AppRecords | None:
    return read_app(store, keys, tenant, sig, app_id)


def submitter_of(rec: AppRecords) -> str | None:
    """Who submitted it; for an unreadable spec, what it claims (else only tenant admins see it)."""
    if rec.spec is not None:
        return rec.spec.submitter
    raw = rec.entries["spec"].value.get("submitter") if "spec" in rec.entries else None
    return raw if isinstance(raw, str) else None


def app_view(app_id: str, rec: AppRecords, *, ui_base: str = "", history: bool = False) -> dict[str, Any]:
    """The application as users see it; a malformed spec or state shows as FAILED/InvalidRecord.
    With the SIG's `ui_base` a running one has `ui_url`, its Spark UI through the proxy, and with
    `history` (the SIG runs a history server) a finished one has `history_url`, its page there."""
    spec = rec.spec
    state = rec.state.to_value() if rec.state else {}
    bad = rec.invalid
    if bad is not None and not (rec.state and rec.state.reason == "InvalidRecord"):
        state = dict(state, state=AppState.FAILED.value, reason="InvalidRecord", message=bad.message)
    running = state.get("state") == AppState.RUNNING.value and state.get("spark_app_id")
    ended = state.get("state") in {s.value for s in AppState if s.terminal} and state.get("spark_app_id")
    return {
        "id": app_id,
        "name": spec.request.name if spec else None,
        "state": state.get("state") or AppState.SUBMITTED.value,
        "reason": state.get("reason"),
        "message": state.get("message"),
        "exit_code": state.get("exit_code"),
        "spark_app_id": state.get("spark_app_id"),
        "ui_url": f"{ui_base}proxy/{state['spark_app_id']}/" if ui_base and running else None,
        "history_url": f"{ui_base}history/history/{state['spark_app_id']}/jobs/" if ui_base and history and ended
        else None,
        "submitter": submitter_of(rec),
        "submitted_at": spec.submitted_at if spec else None,
        "started_at": state.get("started_at"),
        "finished_at": state.get("finished_at"),
        "kill_requested": rec.kill,
        "request": dump(spec.request) if spec else None,
    }


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
