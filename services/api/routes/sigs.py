"""`/api/v1/tenants/{t}/sigs`: SIG lifecycle, build log, files (upload, list, delete)."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from flask import Blueprint, Response, request

from spaas import messages, sparkconf
from spaas.errors import Conflict, Invalid, NotFound, TemporaryError, Unprocessable
from spaas.logstream import key_build_stream, sig_build_stream
from spaas.model import Quota, SigSpec, dump, history_usage, with_history_default
from spaas.records import InvalidRecord, SigRecords, SigSpecRecord, read_sigs, sigs_from_entries
from spaas.store import Entry

from services.api import follow, idempotency
from services.api.guard import action
from services.api.deps import Deps, deps, encoded, json_body, json_response
from services.api.records import (cas_update, get_sig, get_tenant, sig_of_entries, sig_parts, sig_ui_base, sig_view,
                                  tenant_quota, usable_spec)

log = logging.getLogger(__name__)
bp = Blueprint("sigs", __name__)


def view_of(tenant: str, sig: str, parts: SigRecords) -> dict[str, Any]:
    """The SIG's view, its `ui_url` through the proxy when SPAAS_PROXY_PUBLIC_URL is set."""
    return sig_view(tenant, sig, parts, ui_base=sig_ui_base(deps().settings.proxy_public_url, tenant, sig))


def _validated_spec(d: Deps, body: dict[str, Any]) -> SigSpec:
    # A spec that leaves history.enabled unset gets the platform's choice, stored with it.
    spec = SigSpec.model_validate(with_history_default(body, d.settings.history_default))
    if spec.spark_version not in d.settings.spark_versions:
        raise Unprocessable(
            f"Spark version {spec.spark_version!r} is not available; choose one of: {', '.join(d.settings.spark_versions)}",
            field="spark_version",
        )
    sparkconf.check(spec.spark_conf, field="spark_conf")
    return spec


def _check_quota(d: Deps, tenant: str, spec: SigSpec, quota: Quota) -> None:
    """The SIG's minimum (master + min_workers containers) must fit beside the tenant's other SIGs
    (a SIG whose spec cannot be read counts for nothing here; the scaler shows it as invalid)."""
    used = {"containers": 0, "cores": 0, "memory_mb": 0}
    for rec in read_sigs(d.store, d.keys, tenant):
        if rec.spec and rec.sig != spec.name and not rec.spec.deleting:
            other = rec.spec.spec
            n = 1 + other.scaling.min_workers
            h = history_usage(other.history.enabled)
            used["containers"] += n + h[0]
            used["cores"] += n * other.resources.cpu + h[1]
            used["memory_mb"] += n * other.resources.memory_mb + h[2]
    n = 1 + spec.scaling.min_workers
    h = history_usage(spec.history.enabled)
    wanted = {"containers": n + h[0], "cores": n * spec.resources.cpu + h[1],
              "memory_mb": n * spec.resources.memory_mb + h[2]}
    limits = {"containers": quota.max_containers, "cores": quota.cores, "memory_mb": quota.memory_mb}
    for what, need in wanted.items():
        if used[what] + need > limits[what]:
            raise Unprocessable(
                f"tenant quota exceeded: this SIG needs {need} {what} at its minimum, the tenant's other SIGs use "
                f"{used[what]} of {limits[what]}",
                field="scaling.min_workers" if what == "containers" else f"resources.{'cpu' if what == 'cores' else what}",
            )


def _announce(d: Deps, tenant: str, sig: str, generation: int, *, build: bool) -> None:
    """Events are hints: if the bus is down the controllers' resync still picks the change up."""
    try:
        d.bus.publish(messages.SigChanged(tenant=tenant, sig=sig, generation=generation))
        if build:
            d.bus.request_build(tenant, sig)
    except TemporaryError as exc:
        log.warning("sig %s/%s: change not announced (%s); controllers will resync", tenant, sig, exc)


@bp.post("/tenants/<tenant>/sigs")
@action("sig.create")
def create_sig(tenant: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    body = json_body()
    # With an Idempotency-Key, a repeat answers the first creation's view (services/api/idempotency.py).
    return idempotency.keyed(tenant, "sig.create", "", body, lambda: _create_sig(tenant, body))


def _create_sig(tenant: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    d = deps()
    tenant_entry = get_tenant(d.store, d.keys, tenant)
    spec = _validated_spec(d, body)
    _check_quota(d, tenant, spec, tenant_quota(tenant_entry))
    now = time.time()
    # The secret first: a SIG never exists without its own Spark secret.
    try:
        d.store.create(d.keys.secret(tenant, spec.name), {"secret": secrets.token_urlsafe(32)})
    except Conflict:
        pass  # left by an earlier attempt; reuse it
    try:
        d.store.create(d.keys.sig_spec(tenant, spec.name),
                       SigSpecRecord(spec=spec, generation=1, created_at=now, updated_at=now).to_value())
    except Conflict:
        raise Conflict(f"SIG {spec.name!r} already exists in tenant {tenant!r}", field="name") from None
    log.info("sig %s/%s: created (spark %s)", tenant, spec.name, spec.spark_version)
    _announce(d, tenant, spec.name, 1, build=True)
    return view_of(tenant, spec.name, get_sig(d.store, d.keys, tenant, spec.name)), 202


@bp.get("/tenants/<tenant>/sigs")
@action("sig.list")
def list_sigs(tenant: str) -> Response:
    d = deps()
    get_tenant(d.store, d.keys, tenant)

    def build(entries: tuple[Entry, ...]) -> bytes:
        return encoded({"sigs": [view_of(tenant, rec.sig, rec) for rec in sigs_from_entries(entries, d.keys)]})

    # The encoded listing is kept while the tenant's SIG entries are the same (spaas/memo.py).
    return json_response(d.views.get(("sigs", tenant), d.store.list(d.keys.sigs(tenant)), build))


@bp.get("/tenants/<tenant>/sigs/<sig>")
@action("sig.read")
def read_sig(tenant: str, sig: str) -> Response:
    d = deps()
    get_tenant(d.store, d.keys, tenant)

    def build(entries: tuple[Entry, ...]) -> bytes:
        return encoded(view_of(tenant, sig, sig_of_entries(entries, d.keys, tenant, sig)))

    return json_response(d.views.get(("sig", tenant, sig), d.store.list(d.keys.sig(tenant, sig)), build))


@bp.put("/tenants/<tenant>/sigs/<sig>")
@action("sig.update")
def update_sig(tenant: str, sig: str) -> tuple[dict[str, Any], int]:
    d = deps()
    tenant_entry = get_tenant(d.store, d.keys, tenant)
    parts = get_sig(d.store, d.keys, tenant, sig)
    body = json_body()
    body.setdefault("name", sig)
    spec = _validated_spec(d, body)
    if spec.name != sig:
        raise Invalid("the SIG name cannot be changed", field="name")
    if parts.deleting or parts.entries["spec"].value.get("deleting") is True:
        raise Conflict(f"SIG {sig!r} is being deleted", field="sig")
    _check_quota(d, tenant, spec, tenant_quota(tenant_entry))
    new = dump(spec)
    changed = {"value": False}
    # A spec that cannot be read is replaced by this one, past every generation seen.
    floor = max(parts.build.generation if parts.build else 0,
                parts.status.observed_generation if parts.status else 0)

    def apply(value: dict[str, Any]) -> dict[str, Any]:
        if value.get("deleting") is True:
            raise Conflict(f"SIG {sig!r} is being deleted", field="sig")
        try:
            current: SigSpecRecord | None = SigSpecRecord.from_value(d.keys.sig_spec(tenant, sig), value)
        except InvalidRecord:
            current = None
        changed["value"] = current is None or value["spec"] != new
        if changed["value"]:
            generation = max(current.generation if current else 0, floor) + 1
            created = current.created_at if current else time.time()
            return SigSpecRecord(spec=spec, generation=generation, created_at=created,
                                 updated_at=time.time()).to_value()
        return value

    entry = cas_update(d.store, d.keys.sig_spec(tenant, sig), apply)
    if changed["value"]:
        log.info("sig %s/%s: spec changed, generation %s", tenant, sig, entry.value["generation"])
        _announce(d, tenant, sig, int(entry.value["generation"]), build=True)
    return view_of(tenant, sig, get_sig(d.store, d.keys, tenant, sig)), 202 if changed["value"] else 200


@bp.delete("/tenants/<tenant>/sigs/<sig>")
@action("sig.delete")
def delete_sig(tenant: str, sig: str) -> tuple[dict[str, Any], int]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    parts = get_sig(d.store, d.keys, tenant, sig)

    def apply(value: dict[str, Any]) -> dict[str, Any]:
        value.update(deleting=True, updated_at=time.time())  # also marks a spec that cannot be read
        return value

    cas_update(d.store, d.keys.sig_spec(tenant, sig), apply)
    log.info("sig %s/%s: deletion requested", tenant, sig)
    _announce(d, tenant, sig, parts.spec.generation if parts.spec else 0, build=False)
    return view_of(tenant, sig, sig_parts(d.store, d.keys, tenant, sig)), 202


def _int_arg(name: str, default: int, *, lo: int = 0, hi: int = 1_000_000) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(f"{name} must be an integer", field=name) from None
    if not lo <= value <= hi:
        raise Invalid(f"{name} must be between {lo} and {hi}", field=name)
    return value


@bp.get("/tenants/<tenant>/sigs/<sig>/build/log")
@action("sig.build_log")
def build_log(tenant: str, sig: str) -> dict[str, Any] | Response:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    parts = get_sig(d.store, d.keys, tenant, sig)
    generation = _int_arg("generation", usable_spec(parts).generation, lo=1)
    start = _int_arg("from", 0)
    if follow.wanted():
        stream = sig_build_stream(tenant, sig, generation)

        def read(offset: int) -> tuple[list[str], str | None]:
            lines, _ = d.logs.read(stream, offset, 1000)
            now = sig_parts(d.store, d.keys, tenant, sig)
            build = now.build
            done = build is not None and build.generation == generation and build.state.value in ("SUCCEEDED", "FAILED")
            return lines, (build.state.value if done and build is not None else
                           "DELETED" if "spec" not in now.entries else None)

        return follow.response(read, start, max_s=d.settings.follow_max_s)
    size = _int_arg("size", 1000, lo=1, hi=10_000)
    lines, total = d.logs.read(sig_build_stream(tenant, sig, generation), start, size)
    build = parts.build.to_value() if parts.build else {}
    result: dict[str, Any] = {"generation": generation, "key": build.get("key"), "state": build.get("state"),
                              "from": start, "total": total, "log": lines}
    if build.get("joined") and build.get("key"):
        # A joined build's output was written to the build key's own stream.
        result["key_log"] = d.logs.read(key_build_stream(build["key"]), 0, 10_000)[0]
    return result


@bp.post("/tenants/<tenant>/sigs/<sig>/files")
@action("file.upload")
def upload_file(tenant: str, sig: str) -> tuple[dict[str, Any], int]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    parts = get_sig(d.store, d.keys, tenant, sig)
    if usable_spec(parts).deleting:
        raise Conflict(f"SIG {sig!r} is being deleted", field="sig")
    upload = request.files.get("file")
    if upload is None:
        raise Invalid("send the file as multipart/form-data field 'file'", field="file")
    data = upload.read()
    path = d.storage.save_file(tenant, sig, upload.filename or "", data)
    log.info("sig %s/%s: stored %s (%d bytes)", tenant, sig, path, len(data))
    return {"path": path, "size": len(data)}, 201


@bp.get("/tenants/<tenant>/sigs/<sig>/files")
@action("file.list")
def list_files(tenant: str, sig: str) -> dict[str, Any]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    get_sig(d.store, d.keys, tenant, sig)
    return {"files": d.storage.list_files(tenant, sig)}


@bp.delete("/tenants/<tenant>/sigs/<sig>/files/<name>")
@action("file.delete")
def delete_file(tenant: str, sig: str, name: str) -> dict[str, Any]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    get_sig(d.store, d.keys, tenant, sig)
    if not d.storage.delete_file(tenant, sig, name):
        raise NotFound(f"no file files/{name} in SIG {tenant}/{sig}", field="name")
    log.info("sig %s/%s: deleted files/%s", tenant, sig, name)
    return {"path": f"files/{name}", "deleted": True}
