"""The console's views: thin, each a few SDK calls (`spaas.client`, in-process) and a template."""

from __future__ import annotations

import hmac
import time
from typing import Any
from urllib.parse import quote

from flask import Blueprint, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WResponse

from spaas import auth, authz
from spaas import notebooks as nb
from spaas.errors import SpaasError, http_status

from services.api.console import api, chart
from services.api.console.api import ApiError, error_of
from services.api.deps import deps
from services.api.errors import Forbidden
from services.api.guard import MUTATING, action, bearer_token, current_principal, current_roles

bp = Blueprint("console", __name__, template_folder="templates")

PHASE_COLOUR = {"READY": "ok", "FAILED": "bad", "DELETING": "warn", "PENDING": "wait", "BUILDING": "wait",
                "DEPLOYING": "wait", "UPDATING": "wait"}
STATE_COLOUR = {"FINISHED": "ok", "RUNNING": "run", "FAILED": "bad", "KILLED": "warn"}
TERMINAL = {"FINISHED", "FAILED", "KILLED"}


class CsrfError(SpaasError):
    code = "CsrfRequired"


@bp.before_request
def check_csrf() -> None:
    if request.method in MUTATING:
        token = bearer_token() or ""
        sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token", "")
        if not token or not sent or not hmac.compare_digest(sent, auth.csrf_token(token)):
            raise CsrfError("this form is stale or was not sent by the console; reload the page and try again")


@bp.app_template_global()
def csrf() -> str:
    return auth.csrf_token(bearer_token() or "")


@bp.app_template_filter("when")
def when(value: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(value)))
    except (TypeError, ValueError):
        return ""


@bp.errorhandler(SpaasError)
def spaas_error(exc: SpaasError) -> tuple[str, int]:
    status = 403 if isinstance(exc, CsrfError) else http_status(exc)
    return page("error.html", title=f"{status}", status=status, message=exc.message), status


@bp.errorhandler(ApiError)
def api_error(exc: ApiError) -> tuple[str, int]:
    return refused(exc)


def page(template: str, **context: Any) -> str:
    return render_template(template, me=g.get("principal"), tenants=context.pop("tenants", None), phase_colour=PHASE_COLOUR,
                           state_colour=STATE_COLOUR, **context)


def refused(exc: ApiError) -> tuple[str, int]:
    """What the API refused: its status and message, on a page."""
    return page("error.html", title=str(exc.status), status=exc.status, message=exc.message or "refused"), exc.status


def offer(action_name: str) -> None:
    """A form for something the caller may not do is not shown at all."""
    if not may(action_name):
        raise Forbidden(f"you may not {action_name.replace('.', ' ')} in this tenant")


def may(action_name: str) -> bool:
    """Whether to offer an action: the API decides again when it is used."""
    return authz.decide(action_name, current_principal(), current_roles()) is authz.Decision.ALLOW


def back(endpoint: str, **values: Any) -> WResponse:
    return redirect(url_for(endpoint, **values), code=303)


def flash_to(url: str, message: str) -> WResponse:
    return redirect(f"{url}{'&' if '?' in url else '?'}notice={quote(message)}", code=303)


# -- home, tenants, members ---------------------------------------------------------------------

@bp.get("/")
@action("console.page")
def home() -> str:
    tenants = api.client().list_tenants()
    return page("home.html", title="Tenants", tenant_list=tenants, error=request.args.get("error"))


@bp.post("/tenants")
@action("console.page")
def create_tenant() -> WResponse | tuple[str, int]:
    f = request.form
    quota = {k: _num(f.get(k, "")) for k in ("max_containers", "cores", "memory_mb", "gpus") if f.get(k, "").strip()}
    try:
        created = api.client().create_tenant(f.get("name", "").strip(), quota)
    except ApiError as exc:
        tenants = api.client().list_tenants()
        return page("home.html", title="Tenants", tenant_list=tenants, form=f, error=error_of(exc)), exc.status
    return flash_to(url_for("console.tenant", tenant=created["name"]), f"Tenant {created['name']} created.")


@bp.post("/t/<tenant>/delete")
@action("console.tenant")
def delete_tenant(tenant: str) -> WResponse | tuple[str, int]:
    api.client().delete_tenant(tenant)
    return flash_to(url_for("console.home"), f"Tenant {tenant} deleted.")


@bp.get("/t/<tenant>/")
@action("console.tenant")
def tenant(tenant: str) -> str:
    c = api.client()
    info = c.get_tenant(tenant)
    sigs = c.list_sigs(tenant)
    members = c.list_members(tenant) if may("member.list") else None
    return page("tenant.html", title=f"Tenant {tenant}", tenant=tenant, info=info, sigs=sigs, members=members,
                usage=info.get("usage") or {}, may_configure=may("sig.create"), may_delete=current_principal().cluster_admin,
                notice=request.args.get("notice"))


@bp.post("/t/<tenant>/quota")
@action("console.tenant")
def quota(tenant: str) -> WResponse | tuple[str, int]:
    f = request.form
    body = {k: _num(f[k]) for k in ("max_containers", "cores", "memory_mb", "gpus") if f.get(k, "").strip()}
    api.client().set_quota(tenant, body)
    return flash_to(url_for("console.tenant", tenant=tenant), "Quota changed.")


@bp.post("/t/<tenant>/members")
@action("console.tenant")
def grant(tenant: str) -> WResponse | tuple[str, int]:
    f = request.form
    kind, name = f.get("kind", "user"), f.get("name", "").strip()
    roles = f.getlist("roles")
    api.client().put_member(tenant, name, roles, kind=kind)
    return flash_to(url_for("console.tenant", tenant=tenant), f"{kind} {name}: {', '.join(roles) or 'no roles'}")


@bp.post("/t/<tenant>/members/<any(user, group):kind>/<name>/delete")
@action("console.tenant")
def revoke(tenant: str, kind: str, name: str) -> WResponse | tuple[str, int]:
    api.client().delete_member(tenant, name, kind=kind)
    return flash_to(url_for("console.tenant", tenant=tenant), f"{kind} {name} removed")


# -- SIGs ---------------------------------------------------------------------------------------------

def _num(raw: str) -> Any:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return raw  # the API names the field in its 422


def sig_form_body(f: Any) -> dict[str, Any]:
    conf = {k.strip(): v for k, v in zip(f.getlist("conf_key"), f.getlist("conf_value")) if k.strip()}
    return {
        "name": f.get("name", "").strip(),
        "spark_version": f.get("spark_version", ""),
        "spark_conf": conf,
        "python_packages": [line.strip() for line in f.get("python_packages", "").splitlines() if line.strip()],
        # An empty field takes the API's default.
        "resources": {k: _num(f[f"resources.{k}"]) for k in ("cpu", "memory_mb", "max_cpu", "max_memory_mb")
                      if f.get(f"resources.{k}", "").strip()},
        "scaling": {k: _num(f[f"scaling.{k}"]) for k in ("min_workers", "max_workers", "allocation_unit",
                                                          "interval_s", "idle_timeout_s")
                    if f.get(f"scaling.{k}", "").strip()},
        # A checkbox: absent when unticked, so an edit keeps what the form shows.
        "history": {"enabled": f.get("history.enabled") == "true"},
        "notebooks": {"jupyter": dict({"enabled": f.get("notebooks.jupyter.enabled") == "true"},
                                      **({"idle_timeout_s": _num(f["notebooks.jupyter.idle_timeout_s"])}
                                         if f.get("notebooks.jupyter.idle_timeout_s", "").strip() else {}))},
    }


DEFAULT_SPEC: dict[str, Any] = {"name": "", "spark_conf": {}, "python_packages": [],
                                "resources": {"cpu": 2, "memory_mb": 2048, "max_cpu": 4, "max_memory_mb": 6144},
                                "scaling": {"min_workers": 1, "max_workers": 10, "allocation_unit": 1,
                                            "interval_s": 15, "idle_timeout_s": 120},
                                "history": {"enabled": False},
                                "notebooks": {"jupyter": {"enabled": False, "idle_timeout_s": 3600}}}


def sig_form(tenant: str, spec: dict[str, Any], *, editing: bool, error: dict[str, Any] | None = None,
             status: int = 200) -> tuple[str, int]:
    return page("sig_form.html", title=("Edit SIG " + spec["name"]) if editing else "New SIG", tenant=tenant,
                spec=spec, editing=editing, error=error or {}, versions=deps().settings.spark_versions), status


@bp.route("/t/<tenant>/sigs/new", methods=["GET", "POST"])
@action("console.tenant")
def new_sig(tenant: str) -> WResponse | tuple[str, int]:
    if request.method == "GET":
        offer("sig.create")
        spec = dict(DEFAULT_SPEC, spark_version=deps().settings.spark_versions[0],
                    history={"enabled": deps().settings.history_default})
        return sig_form(tenant, spec, editing=False)
    body = sig_form_body(request.form)
    try:
        api.client().create_sig(tenant, body)
    except ApiError as exc:
        return sig_form(tenant, body, editing=False, error=error_of(exc), status=exc.status)
    return back("console.sig", tenant=tenant, sig=body["name"])


@bp.route("/t/<tenant>/sigs/<sig>/edit", methods=["GET", "POST"])
@action("console.tenant")
def edit_sig(tenant: str, sig: str) -> WResponse | tuple[str, int]:
    if request.method == "GET":
        offer("sig.update")
        return sig_form(tenant, api.client().get_sig(tenant, sig)["spec"] or {}, editing=True)
    body = sig_form_body(request.form)
    body["name"] = sig
    try:
        api.client().update_sig(tenant, sig, body)
    except ApiError as exc:
        return sig_form(tenant, body, editing=True, error=error_of(exc), status=exc.status)
    return back("console.sig", tenant=tenant, sig=sig)


@bp.post("/t/<tenant>/sigs/<sig>/delete")
@action("console.tenant")
def delete_sig(tenant: str, sig: str) -> WResponse | tuple[str, int]:
    api.client().delete_sig(tenant, sig)
    return flash_to(url_for("console.tenant", tenant=tenant), f"SIG {sig} is being deleted.")


# A notebook server's state as its user reads it (the API's states: requested, waiting, quota,
# starting, ready, stopping; no server at all is "stopped").
SERVER_STATE = {"ready": "running", "requested": "starting", "waiting": "starting", "starting": "starting",
                "quota": "waiting for quota", "stopping": "stopping"}
SERVER_COLOUR = {"running": "ok", "starting": "wait", "waiting for quota": "warn", "stopping": "warn", "stopped": ""}


def _notebook_servers(tenant: str, sig: str, view: Any) -> list[Any] | None:
    """The SIG's notebook servers the caller may see (all for admins, else their own), or None when
    the SIG has notebooks off and reports no server."""
    status = view["status"].get("notebooks") or {}
    jupyter = ((view.get("spec") or {}).get("notebooks") or {}).get("jupyter") or {}
    if not jupyter.get("enabled") and not status.get("servers"):
        return None
    return api.client().list_notebooks(tenant, sig)


def _jupyter(tenant: str, sig: str, view: Any, servers: list[Any] | None) -> dict[str, Any] | None:
    """The caller's own JupyterLab: its URL through the proxy and its server's state."""
    jupyter = ((view.get("spec") or {}).get("notebooks") or {}).get("jupyter") or {}
    if not jupyter.get("enabled"):
        return None
    me = nb.fold(current_principal().name)
    own = next((s for s in servers or [] if s.get("user") == me), None)
    state = SERVER_STATE.get(own.get("state") or "", "starting") if own else "stopped"
    return {"url": nb.base_url(tenant, sig, me), "state": state, "colour": SERVER_COLOUR.get(state, ""),
            "open": view["status"].get("phase") in ("READY", "UPDATING"),
            "idle_timeout_s": jupyter.get("idle_timeout_s")}


def _sig_context(tenant: str, sig: str) -> dict[str, Any]:
    c = api.client()
    view = c.get_sig(tenant, sig)
    scaling = c.scaling(tenant, sig, limit=200)
    workers = view["status"].get("workers") or {}
    demand = scaling.get("demand") or {}
    now = {"t": time.time(), "desired": float(workers.get("desired") or 0), "ready": float(workers.get("ready") or 0),
           "demand": float(demand.get("cores_wanted") or 0)}
    servers = _notebook_servers(tenant, sig, view)
    return {"view": view, "scaling": scaling, "chart": chart.svg(scaling.get("decisions") or [], now),
            "may_configure": may("sig.update"), "servers": servers, "jupyter": _jupyter(tenant, sig, view, servers),
            "sees_all": authz.sees_all_apps(current_principal(), current_roles()), "tenant_info": c.get_tenant(tenant)}


@bp.get("/t/<tenant>/sigs/<sig>/")
@action("console.tenant")
def sig(tenant: str, sig: str) -> str:
    return page("sig.html", title=f"SIG {sig}", tenant=tenant, sig=sig, apps=_apps(tenant, sig),
                notice=request.args.get("notice"), submit_error={}, **_sig_context(tenant, sig))


@bp.get("/t/<tenant>/sigs/<sig>/live")
@action("console.tenant")
def sig_live(tenant: str, sig: str) -> str:
    """The status block of the SIG page, polled by the page."""
    return render_template("sig_status.html", tenant=tenant, sig=sig, phase_colour=PHASE_COLOUR,
                           **_sig_context(tenant, sig))


@bp.get("/t/<tenant>/sigs/<sig>/notebooks")
@action("console.tenant")
def notebooks(tenant: str, sig: str) -> str:
    """The notebook servers table of the SIG page, polled by the page."""
    return render_template("notebooks_table.html", tenant=tenant, sig=sig, servers=api.client().list_notebooks(tenant, sig),
                           sees_all=authz.sees_all_apps(current_principal(), current_roles()))


@bp.post("/t/<tenant>/sigs/<sig>/notebooks/<user>/stop")
@action("console.tenant")
def stop_notebook(tenant: str, sig: str, user: str) -> WResponse | tuple[str, int]:
    """Stop a user's Jupyter server through the API (which allows the user and the tenant's admins)."""
    stopped = api.client().stop_notebook(tenant, sig, user)
    return flash_to(url_for("console.sig", tenant=tenant, sig=sig), f"The notebook server of {stopped['user']} is stopping.")


def _apps(tenant: str, sig: str) -> list[Any]:
    return list(reversed(api.client().list_apps(tenant, sig)))


@bp.get("/t/<tenant>/sigs/<sig>/apps")
@action("console.tenant")
def apps(tenant: str, sig: str) -> str:
    """The applications table of the SIG page, polled by the page."""
    return render_template("apps_table.html", tenant=tenant, sig=sig, apps=_apps(tenant, sig),
                           state_colour=STATE_COLOUR)


@bp.post("/t/<tenant>/sigs/<sig>/apps")
@action("console.tenant")
def submit(tenant: str, sig: str) -> WResponse | tuple[str, int]:
    f = request.form
    upload = request.files.get("file")
    path = f.get("path", "").strip()
    error: dict[str, Any] = {}
    if upload is not None and upload.filename:
        try:
            path = api.client().upload_file(tenant, sig, upload.stream, name=upload.filename)["path"]
        except ApiError as exc:
            error = dict(error_of(exc), field="file")
    if not error:
        body: dict[str, Any] = {"file": path,
                                "args": [a for a in f.get("args", "").splitlines() if a.strip()],
                                "conf": {k.strip(): v for k, v in zip(f.getlist("conf_key"), f.getlist("conf_value"))
                                         if k.strip()}}
        if f.get("name", "").strip():
            body["name"] = f["name"].strip()
        try:
            submitted = api.client().submit_app(tenant, sig, body)
            return back("console.app", tenant=tenant, sig=sig, app_id=submitted["id"])
        except ApiError as exc:
            error = error_of(exc)
    return page("sig.html", title=f"SIG {sig}", tenant=tenant, sig=sig, apps=_apps(tenant, sig), notice=None,
                submit_error=error, **_sig_context(tenant, sig)), 422 if error else 200


@bp.get("/t/<tenant>/sigs/<sig>/apps/<app_id>")
@action("console.tenant")
def app(tenant: str, sig: str, app_id: str) -> str:
    view = api.client().get_app(tenant, sig, app_id)
    return page("app.html", title=f"Application {app_id}", tenant=tenant, sig=sig, app=view, terminal=TERMINAL,
                notice=request.args.get("notice"))


@bp.get("/t/<tenant>/sigs/<sig>/apps/<app_id>/live")
@action("console.tenant")
def app_live(tenant: str, sig: str, app_id: str) -> str:
    view = api.client().get_app(tenant, sig, app_id)
    return render_template("app_status.html", tenant=tenant, sig=sig, app=view, terminal=TERMINAL,
                           state_colour=STATE_COLOUR)


@bp.post("/t/<tenant>/sigs/<sig>/apps/<app_id>/kill")
@action("console.tenant")
def kill(tenant: str, sig: str, app_id: str) -> WResponse | tuple[str, int]:
    api.client().kill_app(tenant, sig, app_id)
    return flash_to(url_for("console.app", tenant=tenant, sig=sig, app_id=app_id), "Kill requested.")


# -- personal API tokens -------------------------------------------------------------------------------

@bp.route("/tokens", methods=["GET", "POST"])
@action("console.page")
def tokens() -> str | tuple[str, int]:
    created: Any = None
    error: dict[str, Any] = {}
    if request.method == "POST":
        days = request.form.get("days", "").strip()
        # Not a number of days: sent as it is, for the API to name the field in its 422.
        expires: Any = (int(days) * 86400 if days.isdigit() else days) if days else None
        try:
            created = api.client().create_token(request.form.get("name", "").strip(), expires_in_s=expires)
        except ApiError as exc:
            error = error_of(exc)
    listed = api.client().list_tokens()
    return page("tokens.html", title="API tokens", tokens=listed, created=created, error=error,
                notice=request.args.get("notice")), 422 if error else 200


@bp.post("/tokens/<token_id>/delete")
@action("console.page")
def revoke_token(token_id: str) -> WResponse | tuple[str, int]:
    api.client().delete_token(token_id)
    return flash_to(url_for("console.tokens"), "Token revoked.")
