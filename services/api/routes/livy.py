"""`/api/v1/tenants/{t}/sigs/{s}/livy`: Apache Livy's REST API over a SIG, for clients that speak it
(sparkmagic, pylivy, Airflow's LivyOperator).

Batches are the SIG's applications (one record, two views: `/applications` in spaas's shape,
`/livy/batches` in Livy's). Interactive sessions are applications too: their driver runs the
platform's REPL (`services/agent/repl.py`), and their statements live in etcd below the
application (`stmts/{n}/code|cancel|result`), so a session outlives any API replica.

Errors on these routes carry Livy's `{"msg": ...}` next to the platform's `{"error": {...}}`.
State mapping (application -> Livy):

    SUBMITTED -> not_started      STARTING -> starting
    RUNNING   -> running (batch) | idle / busy (session: busy while a statement waits or runs)
    FINISHED  -> success (batch) | dead (session: it ended by itself, e.g. idle timeout)
    FAILED    -> dead             KILLED -> killed
    a kill requested but not yet done -> shutting_down
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import ValidationError

from spaas import authz
from spaas.errors import Conflict, Invalid, NotFound, SpaasError, http_status
from spaas.model import AppState, Application
from spaas.records import AppRecords, read_apps

from services.api.deps import deps, json_body
from services.api.errors import field_of
from services.api.guard import action, current_principal, current_roles
from services.api.records import get_sig, get_tenant, submitter_of
from services.api.routes.applications import LOG_MAX_BYTES, app_or_404, record_app, request_kill, wake
from services.api.routes.sigs import _int_arg

log = logging.getLogger(__name__)
bp = Blueprint("livy", __name__)
BASE = "/tenants/<tenant>/sigs/<sig>/livy"
LIVY_VERSION = "0.8.0-spaas"
LOG_TAIL = 100  # lines of log in GET batch / session, as Livy shows
# Livy request fields that spaas takes as they are (the Application model's fields).
PASSED = ("file", "className", "args", "pyFiles", "conf", "name", "driverMemory", "executorMemory",
          "executorCores", "numExecutors")
# Livy request fields spaas has no use for: accepted when empty, refused (400) otherwise.
UNSUPPORTED = ("jars", "files", "archives", "queue")


# -- errors in Livy's shape ---------------------------------------------------------------------

def _livy_error(message: str, status: int, code: str, field: str | None = None) -> tuple[Response, int]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    resp = jsonify({"msg": message, "error": error})
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Basic realm="spaas", charset="UTF-8"'
    return resp, status


@bp.errorhandler(SpaasError)
def _spaas_error(exc: SpaasError) -> tuple[Response, int]:
    status = http_status(exc)
    if status == 422:
        status = 400  # Livy answers every bad request with 400
    if status >= 500:
        log.error("livy request failed: %s", exc.message)
    return _livy_error(exc.message, status, exc.code, exc.field)


@bp.errorhandler(ValidationError)
def _validation(exc: ValidationError) -> tuple[Response, int]:
    errors = exc.errors(include_url=False)
    message = "; ".join(f"{field_of(tuple(e.get('loc', ())))}: {e.get('msg')}" for e in errors[:10])
    return _livy_error(message, 400, "Invalid", field_of(tuple(errors[0].get("loc", ()))))


# -- shared ---------------------------------------------------------------------------------------

def _sig(tenant: str, sig: str) -> None:
    d = deps()
    get_tenant(d.store, d.keys, tenant)
    get_sig(d.store, d.keys, tenant, sig)


def _url(path: str) -> str:
    return request.url_root.rstrip("/") + path


def app_request(body: dict[str, Any], *, default_file: str | None = None) -> Application:
    """A Livy batch/session request as a spaas application; 400 naming what spaas does not take."""
    for name in UNSUPPORTED:
        if body.get(name):
            raise Invalid(f"{name} is not supported: upload files to the SIG (POST .../files) and name them "
                          f"in file / pyFiles", field=name)
    proxy_user = body.get("proxyUser")
    if proxy_user not in (None, "", current_principal().name):
        raise Invalid("proxyUser may only name the caller: spaas runs every application as its submitter",
                      field="proxyUser")
    fields = {k: body[k] for k in PASSED if body.get(k) is not None}
    if default_file is not None:
        fields["file"] = default_file
    conf = fields.get("conf", {})
    if isinstance(conf, dict):
        # Livy clients send numbers and booleans as conf values; Spark reads them as strings.
        conf = {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in conf.items()}
        cores = body.get("driverCores")
        if cores is not None:
            if isinstance(cores, bool) or not isinstance(cores, int) or not 1 <= cores <= 64:
                raise Invalid("driverCores must be an integer from 1 to 64", field="driverCores")
            conf["spark.driver.cores"] = str(cores)
        fields["conf"] = conf
    return Application.model_validate(fields)


def _state(parts: AppRecords) -> AppState:
    """The application's state; a malformed spec or state counts as FAILED (InvalidRecord)."""
    if parts.invalid is not None:
        return AppState.FAILED
    return parts.state.state if parts.state is not None else AppState.SUBMITTED


def _session_of(parts: AppRecords) -> dict[str, Any] | None:
    """The Livy session part of the spec (None for a batch); read raw only if the spec is malformed."""
    if parts.spec is not None:
        return parts.spec.session.to_value() if parts.spec.session is not None else None
    raw = parts.entries["spec"].value.get("session") if "spec" in parts.entries else None
    return raw if isinstance(raw, dict) and raw else None


def livy_state(parts: AppRecords, *, session: bool) -> str:
    """Livy's state of an application or session (see the module docstring)."""
    state = _state(parts)
    if state is AppState.KILLED:
        return "killed"
    if state is AppState.FAILED:
        return "dead"
    if state is AppState.FINISHED:
        return "dead" if session else "success"
    if parts.kill:
        return "shutting_down"
    if state is AppState.SUBMITTED:
        return "not_started"
    if state is AppState.STARTING:
        return "starting"
    if not session:
        return "running"
    return "busy" if any(s["state"] in ("waiting", "running", "cancelling")
                         for s in statements(parts, ended=False)) else "idle"


def _log_lines(tenant: str, sig: str, app_id: str) -> list[str]:
    # The log lives where the application's own code can write: read as /applications/{id}/log does.
    data, _ = deps().storage.read_driver_log(tenant, sig, app_id, max_bytes=LOG_MAX_BYTES)
    return data.decode(errors="replace").splitlines()


def _log_tail(tenant: str, sig: str, app_id: str, size: int = LOG_TAIL) -> list[str]:
    return _log_lines(tenant, sig, app_id)[-size:]


def livy_view(tenant: str, sig: str, app_id: str, parts: AppRecords, *, with_log: bool = True) -> dict[str, Any]:
    session = _session_of(parts)
    spark_id = parts.state.spark_app_id if parts.state is not None and parts.invalid is None else None
    kind = "sessions" if session else "batches"
    view: dict[str, Any] = {
        "id": app_id,
        "name": parts.spec.request.name if parts.spec is not None else None,
        "owner": submitter_of(parts),
        "proxyUser": submitter_of(parts),
        "state": livy_state(parts, session=bool(session)),
        "appId": spark_id,
        "appInfo": {
            "driverLogUrl": _url(f"/api/v1/tenants/{tenant}/sigs/{sig}/livy/{kind}/{app_id}/log"),
            "sparkUiUrl": _url(f"/sig/{tenant}/{sig}/proxy/{spark_id}/") if spark_id else None,
        },
        "log": _log_tail(tenant, sig, app_id) if with_log else [],
    }
    if session:
        view["kind"] = session.get("kind")
        view["ttl"] = None
        view["heartbeatTimeoutInSecond"] = session.get("heartbeatTimeoutInSecond", 0)
    return view


def statements(parts: AppRecords, *, ended: bool) -> list[dict[str, Any]]:
    """The session's statements in Livy's shape; `ended`: the session is over, so a statement
    that never finished is shown cancelled. Statement keys are read raw (records.py keeps them
    in the layout but gives them no model); a malformed one is left out."""
    by_id: dict[int, dict[str, Any]] = {}
    for key, entry in parts.statements.items():
        if entry.error or not isinstance(entry.value, dict):
            continue
        _, num, part = key.split("/", 2)
        by_id.setdefault(int(num), {})[part] = entry.value
    out = []
    for n, p in sorted(by_id.items()):
        if not isinstance(p.get("code", {}).get("code"), str):
            continue
        result = p.get("result") or {}
        state = result.get("state", "waiting")
        if state in ("waiting", "running") and "cancel" in p:
            state = "cancelling"
        if ended and state in ("waiting", "running", "cancelling"):
            state = "cancelled"
        out.append({"id": n, "code": p["code"]["code"], "state": state, "output": result.get("output"),
                    "progress": 1.0 if state in ("available", "error", "cancelled") else float(result.get("progress", 0.0)),
                    "started": int(result.get("started", 0) * 1000), "completed": int(result.get("completed", 0) * 1000)})
    return out


def _mine(tenant: str, sig: str, *, sessions: bool) -> list[tuple[str, AppRecords]]:
    d = deps()
    principal, roles = current_principal(), current_roles()
    return [(rec.app_id, rec) for rec in read_apps(d.store, d.keys, tenant, sig)
            if rec.has_spec and bool(_session_of(rec)) == sessions
            and authz.may_touch_app(principal, roles, submitter_of(rec))]


def _paged(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    start = _int_arg("from", 0)
    size = _int_arg("size", 100, lo=0, hi=10_000)
    return {"from": start, "total": len(items), key: items[start:start + size]}


def _one(tenant: str, sig: str, app_id: str, *, session: bool) -> AppRecords:
    """The caller's batch or session (404 if the id names the other kind)."""
    _sig(tenant, sig)
    parts = app_or_404(tenant, sig, app_id)
    if bool(_session_of(parts)) != session:
        what = "session" if session else "batch"
        raise NotFound(f"{what} {app_id!r} not found", field="id")
    return parts


def _log(tenant: str, sig: str, app_id: str) -> dict[str, Any]:
    """`size` lines (default 100) from `from`; without `from`, the last `size` lines, as Livy pages."""
    size = _int_arg("size", 100, lo=0, hi=100_000)
    lines = _log_lines(tenant, sig, app_id)
    start = _int_arg("from", max(0, len(lines) - size))
    return {"id": app_id, "from": start, "total": len(lines), "log": lines[start:start + size]}


def _created(view: dict[str, Any], kind: str, tenant: str, sig: str) -> tuple[Response, int]:
    resp = jsonify(view)
    resp.headers["Location"] = f"/api/v1/tenants/{tenant}/sigs/{sig}/livy/{kind}/{view['id']}"
    return resp, 201


# -- version and batches ---------------------------------------------------------------------------

@bp.get(f"{BASE}/version")
@action("livy.version")
def version(tenant: str, sig: str) -> dict[str, Any]:
    _sig(tenant, sig)
    return {"version": LIVY_VERSION, "commit": "spaas", "branch": "", "user": "", "date": "", "url": ""}


@bp.post(f"{BASE}/batches")
@action("app.submit")
def create_batch(tenant: str, sig: str) -> tuple[Response, int]:
    body = json_body()
    _sig(tenant, sig)
    if not body.get("file"):
        raise Invalid("file is required: a path in the SIG's storage, e.g. files/job.py", field="file")
    app_id = record_app(tenant, sig, app_request(body))
    parts = app_or_404(tenant, sig, app_id)
    return _created(livy_view(tenant, sig, app_id, parts), "batches", tenant, sig)


@bp.get(f"{BASE}/batches")
@action("app.list")
def list_batches(tenant: str, sig: str) -> dict[str, Any]:
    _sig(tenant, sig)
    views = [livy_view(tenant, sig, app_id, parts, with_log=False) for app_id, parts in _mine(tenant, sig, sessions=False)]
    return _paged(views, "sessions")


@bp.get(f"{BASE}/batches/<app_id>")
@action("app.read")
def read_batch(tenant: str, sig: str, app_id: str) -> dict[str, Any]:
    return livy_view(tenant, sig, app_id, _one(tenant, sig, app_id, session=False))


@bp.get(f"{BASE}/batches/<app_id>/state")
@action("app.read")
def batch_state(tenant: str, sig: str, app_id: str) -> dict[str, Any]:
    return {"id": app_id, "state": livy_state(_one(tenant, sig, app_id, session=False), session=False)}


@bp.get(f"{BASE}/batches/<app_id>/log")
@action("app.log")
def batch_log(tenant: str, sig: str, app_id: str) -> dict[str, Any]:
    _one(tenant, sig, app_id, session=False)
    return _log(tenant, sig, app_id)


@bp.delete(f"{BASE}/batches/<app_id>")
@action("app.kill")
def delete_batch(tenant: str, sig: str, app_id: str) -> dict[str, Any]:
    request_kill(tenant, sig, app_id, _one(tenant, sig, app_id, session=False))
    return {"msg": "deleted"}


# -- interactive sessions ----------------------------------------------------------------------------

SESSION_KINDS = ("pyspark", "sql")
STATEMENT_KINDS = ("pyspark", "python", "pyspark3", "sql")
MAX_CODE = 1_000_000
HEARTBEAT_EVERY_S = 5.0


def _kind_error(kind: Any, field: str) -> Invalid:
    return Invalid(f"{field} {kind!r} is not supported: this SIG runs pyspark and sql sessions "
                   f"(supported kinds: {', '.join(SESSION_KINDS)})", field=field)


def _heartbeat(tenant: str, sig: str, app_id: str, parts: AppRecords) -> None:
    """A client reading its session keeps it alive (Livy's heartbeat); written at most every few seconds."""
    now = time.time()
    beat = parts.heartbeat
    if beat is None or now - beat.at > HEARTBEAT_EVERY_S:
        deps().store.put(deps().keys.app_heartbeat(tenant, sig, app_id), {"at": now})


def _ended(parts: AppRecords) -> bool:
    return _state(parts).terminal


@bp.post(f"{BASE}/sessions")
@action("app.submit")
def create_session(tenant: str, sig: str) -> tuple[Response, int]:
    d = deps()
    body = json_body()
    _sig(tenant, sig)
    kind = body.get("kind") or "pyspark"
    if kind not in SESSION_KINDS:
        raise _kind_error(kind, "kind")
    beat = body.get("heartbeatTimeoutInSecond") or 0
    if isinstance(beat, bool) or not isinstance(beat, int) or beat < 0:
        raise Invalid("heartbeatTimeoutInSecond must be a non-negative integer", field="heartbeatTimeoutInSecond")
    limit = d.settings.livy_session_timeout_s
    session = {"kind": kind, "heartbeatTimeoutInSecond": beat, "idle_timeout_s": min(beat, limit) if beat else limit}
    app_id = record_app(tenant, sig, app_request(body, default_file="livy-session"), session=session)
    parts = app_or_404(tenant, sig, app_id)
    return _created(livy_view(tenant, sig, app_id, parts), "sessions", tenant, sig)


@bp.get(f"{BASE}/sessions")
@action("app.list")
def list_sessions(tenant: str, sig: str) -> dict[str, Any]:
    _sig(tenant, sig)
    views = [livy_view(tenant, sig, app_id, parts, with_log=False) for app_id, parts in _mine(tenant, sig, sessions=True)]
    return _paged(views, "sessions")


@bp.get(f"{BASE}/sessions/<app_id>")
@action("app.read")
def read_session(tenant: str, sig: str, app_id: str) -> dict[str, Any]:
    parts = _one(tenant, sig, app_id, session=True)
    _heartbeat(tenant, sig, app_id, parts)
    return livy_view(tenant, sig, app_id, parts)


@bp.get(f"{BASE}/sessions/<app_id>/state")
@action("app.read")
def session_state(tenant: str, sig: str, app_id: str) -> dict[str, Any]:
    parts = _one(tenant, sig, app_id, session=True)
    _heartbeat(tenant, sig, app_id, parts)
    return {"id": app_id, "state": livy_state(parts, session=True)}


@bp.get(f"{BASE}/sessions/<app_id>/log")
@action("app.log")
def session_log(tenant: str, sig: str, app_id: str) -> dict[str, Any]:
    _one(tenant, sig, app_id, session=True)
    return _log(tenant, sig, app_id)


@bp.delete(f"{BASE}/sessions/<app_id>")
@action("app.kill")
def delete_session(tenant: str, sig: str, app_id: str) -> dict[str, Any]:
    request_kill(tenant, sig, app_id, _one(tenant, sig, app_id, session=True))
    return {"msg": "deleted"}


@bp.post(f"{BASE}/sessions/<app_id>/statements")
@action("statement.run")
def create_statement(tenant: str, sig: str, app_id: str) -> tuple[Response, int]:
    d = deps()
    body = json_body()
    parts = _one(tenant, sig, app_id, session=True)
    code = body.get("code")
    if not isinstance(code, str) or not code.strip() or len(code) > MAX_CODE:
        raise Invalid(f"code must be a non-empty string of at most {MAX_CODE} characters", field="code")
    kind = body.get("kind")
    if kind is not None and kind not in STATEMENT_KINDS:
        raise _kind_error(kind, "kind")
    if kind is None and (_session_of(parts) or {}).get("kind") == "sql":
        kind = "sql"
    if _ended(parts) or parts.kill:
        raise Conflict(f"session {app_id!r} is {livy_state(parts, session=True)}; start a new one", field="id")
    for _ in range(20):
        numbers = [int(k.split("/")[1]) for k in app_or_404(tenant, sig, app_id).statements]
        n = max(numbers, default=-1) + 1
        try:
            d.store.create(d.keys.app_stmt(tenant, sig, app_id, n, "code"),
                           {"code": code, "kind": kind, "submitted_at": time.time(), "by": current_principal().name})
            break
        except Conflict:
            continue  # another statement took that number; take the next
    else:
        raise Conflict("too many statements submitted at once; try again", field="code")
    wake(tenant, sig, app_id, "statement")
    stmt = _statement(tenant, sig, app_id, n)
    resp = jsonify(stmt)
    resp.headers["Location"] = f"/api/v1/tenants/{tenant}/sigs/{sig}/livy/sessions/{app_id}/statements/{n}"
    return resp, 201


def _statement(tenant: str, sig: str, app_id: str, n: int) -> dict[str, Any]:
    parts = app_or_404(tenant, sig, app_id)
    found = [s for s in statements(parts, ended=_ended(parts)) if s["id"] == n]
    if not found:
        raise NotFound(f"statement {n} not found in session {app_id!r}", field="statement")
    return found[0]


@bp.get(f"{BASE}/sessions/<app_id>/statements")
@action("app.read")
def list_statements(tenant: str, sig: str, app_id: str) -> dict[str, Any]:
    parts = _one(tenant, sig, app_id, session=True)
    _heartbeat(tenant, sig, app_id, parts)
    stmts = statements(parts, ended=_ended(parts))
    return {"total_statements": len(stmts), "statements": stmts}


def _number(stmt: str, app_id: str) -> int:
    # Matched as a string so a malformed id gets Livy's 404 body from this blueprint too.
    if not stmt.isdigit() or len(stmt) > 9:
        raise NotFound(f"statement {stmt!r} not found in session {app_id!r}", field="statement")
    return int(stmt)


@bp.get(f"{BASE}/sessions/<app_id>/statements/<stmt>")
@action("app.read")
def read_statement(tenant: str, sig: str, app_id: str, stmt: str) -> dict[str, Any]:
    parts = _one(tenant, sig, app_id, session=True)
    _heartbeat(tenant, sig, app_id, parts)
    return _statement(tenant, sig, app_id, _number(stmt, app_id))


@bp.post(f"{BASE}/sessions/<app_id>/statements/<stmt>/cancel")
@action("statement.cancel")
def cancel_statement(tenant: str, sig: str, app_id: str, stmt: str) -> dict[str, Any]:
    d = deps()
    _one(tenant, sig, app_id, session=True)
    n = _number(stmt, app_id)
    current = _statement(tenant, sig, app_id, n)
    if current["state"] in ("waiting", "running"):
        try:
            d.store.create(d.keys.app_stmt(tenant, sig, app_id, n, "cancel"),
                           {"requested_at": time.time(), "by": current_principal().name})
        except Conflict:
            pass
        wake(tenant, sig, app_id, "cancel")
    return {"msg": "canceled"}
