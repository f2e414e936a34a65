"""`/api/v1/tenants/{t}/sigs/{s}/applications`: Livy-shaped batch applications.

`app_or_404`, `record_app`, `request_kill` and `wake` are shared with the Livy routes (routes/livy.py)."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from flask import Blueprint, Response

from spaas import authz, messages, sparkconf
from spaas.errors import Conflict, NotFound, SpaasError, TemporaryError
from spaas.model import AppState, Application
from spaas.records import APP_ID_RE, AppRecords, AppSpecRecord, SessionSpec, SigRecords, app_from_entries, read_apps
from spaas.store import Entry

from services.api import follow, idempotency
from services.api.errors import Forbidden
from services.api.guard import action, current_principal, current_roles
from services.api.deps import deps, encoded, json_body, json_response
from services.api.records import (app_parts, app_view, get_sig, get_tenant, sig_of_entries, sig_ui_base, submitter_of,
                                  usable_spec)
from services.api.routes.sigs import _int_arg

log = logging.getLogger(__name__)
bp = Blueprint("applications", __name__)
# Most of a driver log the API reads for one request.
LOG_MAX_BYTES = 32 * 1024 * 1024


def _view(tenant: str, sig: str, app_id: str, parts: AppRecords, *, history: bool = False) -> dict[str, Any]:
    """The application's view; a running one's `ui_url` goes through the proxy when it is configured,
    and with `history` (the SIG runs a history server) a finished one's `history_url`."""
    return app_view(app_id, parts, ui_base=sig_ui_base(deps().settings.proxy_public_url, tenant, sig), history=history)


def _history_on(rec: SigRecords) -> bool:
    return bool(rec.spec and rec.spec.spec.history.enabled)


def new_app_id() -> str:
    """Time-ordered (the master starts them in this order) and unguessable."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(4)}"


def app_or_404(tenant: str, sig: str, app_id: str) -> AppRecords:
    """The application's records, if the caller may act on it (its own, or any for tenant admins)."""
    d = deps()
    return _may_touch(app_id, _found(tenant, sig, app_id, app_parts(d.store, d.keys, tenant, sig, app_id)))


def _found(tenant: str, sig: str, app_id: str, parts: AppRecords | None) -> AppRecords:
    if parts is None or not parts.has_spec:
        raise NotFound(f"application {app_id!r} not found in SIG {tenant}/{sig}", field="id")
    return parts


def _may_touch(app_id: str, parts: AppRecords) -> AppRecords:
    if not authz.may_touch_app(current_principal(), current_roles(), submitter_of(parts)):
        raise Forbidden(f"application {app_id!r} belongs to another user; only tenant admins act on it")
    return parts


def wake(tenant: str, sig: str, app_id: str, action: str) -> None:
    try:
        deps().bus.publish(messages.AppEvent(tenant=tenant, sig=sig, app_id=app_id, action=action))
    except TemporaryError as exc:
        log.warning("app %s/%s/%s: %s not announced (%s); the master's scan picks it up", tenant, sig, app_id, action, exc)


def record_app(tenant: str, sig: str, app: Application, *, session: dict[str, Any] | None = None) -> str:
    """Validate and record a submitted application (or Livy session); returns its id."""
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    parts = get_sig(d.store, d.keys, tenant, sig)
    if usable_spec(parts).deleting:
        raise Conflict(f"SIG {sig!r} is being deleted", field="sig")
    sparkconf.check(app.conf, field="conf")
    if session is None:
        d.storage.resolve(tenant, sig, app.file, field="file")
    for i, py_file in enumerate(app.pyFiles):
        d.storage.resolve(tenant, sig, py_file, field=f"pyFiles.{i}")
    app_id = new_app_id()
    d.store.create(d.keys.app_spec(tenant, sig, app_id), AppSpecRecord(
        request=app, submitter=current_principal().name, submitted_at=time.time(),
        session=SessionSpec.model_validate(session) if session is not None else None).to_value())
    log.info("app %s/%s/%s: submitted (%s)", tenant, sig, app_id, app.file)
    wake(tenant, sig, app_id, "submitted")
    try:
        # The scaler counts a sized application's cores before its driver even starts.
        d.bus.publish(messages.DemandChanged(tenant=tenant, sig=sig, app_id=app_id))
    except TemporaryError as exc:
        log.warning("app %s/%s/%s: demand not announced (%s)", tenant, sig, app_id, exc)
    return app_id


@bp.post("/tenants/<tenant>/sigs/<sig>/applications")
@action("app.submit")
def submit(tenant: str, sig: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    parts = get_sig(d.store, d.keys, tenant, sig)
    if usable_spec(parts).deleting:
        raise Conflict(f"SIG {sig!r} is being deleted", field="sig")
    body = json_body()

    def run() -> tuple[dict[str, Any], int]:
        app_id = record_app(tenant, sig, Application.model_validate(body))
        return {"id": app_id, "state": AppState.SUBMITTED.value}, 201

    # With an Idempotency-Key, a repeat answers the first submission's id (services/api/idempotency.py).
    return idempotency.keyed(tenant, "app.submit", sig, body, run)


@bp.get("/tenants/<tenant>/sigs/<sig>/applications")
@action("app.list")
def list_apps(tenant: str, sig: str) -> dict[str, Any]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    history = _history_on(get_sig(d.store, d.keys, tenant, sig))
    principal, roles = current_principal(), current_roles()
    return {"applications": [_view(tenant, sig, rec.app_id, rec, history=history) for rec in read_apps(d.store, d.keys, tenant, sig)
                             if rec.has_spec and authz.may_touch_app(principal, roles, submitter_of(rec))]}


@bp.get("/tenants/<tenant>/sigs/<sig>/applications/<app_id>")
@action("app.read")
def read_app(tenant: str, sig: str, app_id: str) -> Response:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    sig_entries = d.store.list(d.keys.sig(tenant, sig))
    app_entries = d.store.list(d.keys.app(tenant, sig, app_id)) if APP_ID_RE.match(app_id) else []
    n = len(sig_entries)

    def build(entries: tuple[Entry, ...]) -> tuple[AppRecords, bytes]:
        history = _history_on(sig_of_entries(entries[:n], d.keys, tenant, sig))
        parts = _found(tenant, sig, app_id, app_from_entries(list(entries[n:]), d.keys, tenant, sig))
        return parts, encoded(_view(tenant, sig, app_id, parts, history=history))

    # The records and their encoded view are kept while the SIG's and the application's entries
    # are the same (spaas/memo.py); who may see it is decided on every request.
    parts, body = d.views.get(("app", tenant, sig, app_id), [*sig_entries, *app_entries], build)
    _may_touch(app_id, parts)
    return json_response(body)


@bp.get("/tenants/<tenant>/sigs/<sig>/applications/<app_id>/log")
@action("app.log")
def app_log(tenant: str, sig: str, app_id: str) -> dict[str, Any] | Response:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    get_sig(d.store, d.keys, tenant, sig)
    app_or_404(tenant, sig, app_id)
    start = _int_arg("from", 0)
    size = _int_arg("size", 1000, lo=1, hi=100_000)
    # The log lives where the application's own code can write: read it without following links,
    # only if it is a regular file with one link, and only its first LOG_MAX_BYTES.
    if follow.wanted():
        d.storage.read_driver_log(tenant, sig, app_id, max_bytes=1)  # an unsafe file answers 409 up front

        def read(offset: int) -> tuple[list[str], str | None]:
            # The state first: lines written before it turned terminal are all read below.
            rec = app_parts(d.store, d.keys, tenant, sig, app_id)
            state = rec.state.state if rec is not None and rec.state is not None else None
            if rec is not None and rec.invalid is not None:
                state = AppState.FAILED
            try:
                data, _ = d.storage.read_driver_log(tenant, sig, app_id, max_bytes=LOG_MAX_BYTES)
            except SpaasError:
                data = b""  # swapped for something unsafe meanwhile: nothing more is served
            lines = data.decode(errors="replace").splitlines()[offset:offset + 1000]
            return lines, state.value if state is not None and state.terminal else None

        return follow.response(read, start, max_s=d.settings.follow_max_s)
    data, truncated = d.storage.read_driver_log(tenant, sig, app_id, max_bytes=LOG_MAX_BYTES)
    lines = data.decode(errors="replace").splitlines()
    result: dict[str, Any] = {"id": app_id, "from": start, "total": len(lines), "log": lines[start:start + size]}
    if truncated:
        result["truncated"] = True
    return result


def request_kill(tenant: str, sig: str, app_id: str, parts: AppRecords) -> bool:
    """Ask the master to end the application; False if it is already over (a malformed one counts as FAILED)."""
    d = deps()
    if parts.invalid is not None or (parts.state is not None and parts.state.state.terminal):
        return False
    try:
        d.store.create(d.keys.app_kill(tenant, sig, app_id), {"requested_at": time.time(),
                                                             "by": current_principal().name})
    except Conflict:
        pass  # already requested
    if "state" not in parts.entries:
        # Never started: record KILLED ourselves. Put-if-absent, so if the master claimed it a
        # moment ago we lose the race and the master kills the driver instead.
        try:
            d.store.create(d.keys.app_state(tenant, sig, app_id), {
                "state": AppState.KILLED.value, "reason": "KilledBeforeStart", "finished_at": time.time(),
                "agent": "api", "updated_at": time.time()})
        except Conflict:
            pass
    log.info("app %s/%s/%s: kill requested", tenant, sig, app_id)
    wake(tenant, sig, app_id, "kill")
    return True


@bp.delete("/tenants/<tenant>/sigs/<sig>/applications/<app_id>")
@action("app.kill")
def kill_app(tenant: str, sig: str, app_id: str) -> tuple[dict[str, Any], int]:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    get_sig(d.store, d.keys, tenant, sig)
    parts = app_or_404(tenant, sig, app_id)
    if not request_kill(tenant, sig, app_id, parts):
        return _view(tenant, sig, app_id, parts), 200
    return _view(tenant, sig, app_id, app_or_404(tenant, sig, app_id)), 202
