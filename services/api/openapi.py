"""The OpenAPI 3.1 document of the API, served publicly at `/api/v1/openapi.json`.

Request bodies come from the domain models (`model_json_schema`), responses from the shapes below;
every operation documents its success statuses and, as `default`, the error body
`{"error": {"code", "message", "field"?}}`. `tests/api/test_openapi.py` checks that every Flask
route is documented and runs schemathesis against this document.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from flask import Blueprint
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from spaas.model import Application, LoginRequest, MemberRoles, Phase, SigSpec, TenantSpec, TokenRequest

from services.api import livy_openapi
from services.api.guard import action

bp = Blueprint("openapi", __name__)

REF = "#/components/schemas/{model}"
NULL_STR: dict[str, Any] = {"type": ["string", "null"]}
NULL_NUM: dict[str, Any] = {"type": ["number", "null"]}
NULL_INT: dict[str, Any] = {"type": ["integer", "null"]}
STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
NUM: dict[str, Any] = {"type": "number"}
STR_LIST: dict[str, Any] = {"type": "array", "items": STR}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": REF.format(model=name)}


def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props) if required is None else required}


WORKERS = obj({"desired": INT, "ready": INT})
RESPONSES: dict[str, Any] = {
    "Error": obj({"error": obj({"code": STR, "message": STR, "field": NULL_STR}, ["code", "message"])}),
    "Health": obj({"status": {"enum": ["ok", "unhealthy"]}, "etcd": {"type": "boolean"}}),
    "Tenant": obj({"name": STR, "quota": {"anyOf": [ref("Quota"), {"type": "null"}]}, "created_at": NULL_NUM,
                   "invalid": STR,  # an unreadable record, and why
                   "usage": obj({"containers": INT, "cores": INT, "memory_mb": INT, "gpus": INT})},
                  ["name", "quota", "created_at"]),
    "TenantList": obj({"tenants": {"type": "array", "items": ref("Tenant")}}),
    "TenantDeleted": obj({"name": STR, "deleted": {"type": "boolean"}}),
    "Sig": obj({
        "tenant": STR, "name": STR, "spec": {"anyOf": [ref("SigSpec"), {"type": "null"}]}, "generation": INT,
        "created_at": NULL_NUM, "updated_at": NULL_NUM,
        "status": obj({
            "phase": {"enum": [p.value for p in Phase]}, "reason": NULL_STR, "message": NULL_STR,
            "generation": INT, "observed_generation": INT, "build_key": NULL_STR, "build": {"type": "object"},
            "workers": WORKERS, "master_url": NULL_STR, "ui_url": NULL_STR, "since": NULL_NUM,
            "invalid_records": STR_LIST,
            "history": obj({"enabled": {"type": "boolean"}, "ready": {"type": "boolean"}, "ui_url": NULL_STR}),
            "notebooks": obj({"enabled": {"type": "boolean"}, "idle_timeout_s": INT,
                              "servers": {"type": "array", "items": obj({"user": STR, "state": STR, "url": STR,
                                                                         "container": STR})}}, ["enabled", "servers"]),
            # What the SIG counts toward the tenant's quota now, notebook and history servers included.
            "usage": obj({"containers": INT, "cores": INT, "memory_mb": INT, "gpus": INT,
                          "by_role": obj({"master": INT, "worker": INT, "notebook": INT, "history": INT})})},
            ["phase", "reason", "message", "generation", "observed_generation", "build_key", "build", "workers",
             "master_url", "ui_url", "since", "invalid_records"]),
    }),
    "SigList": obj({"sigs": {"type": "array", "items": ref("Sig")}}),
    "BuildLog": obj({"generation": INT, "key": NULL_STR, "state": NULL_STR, "from": INT, "total": INT,
                     "log": STR_LIST, "key_log": STR_LIST}, ["generation", "key", "state", "from", "total", "log"]),
    "StoredFile": obj({"path": STR, "size": INT}),
    "FileList": obj({"files": {"type": "array", "items": obj({"path": STR, "size": INT, "modified_at": NUM})}}),
    "FileDeleted": obj({"path": STR, "deleted": {"type": "boolean"}}),
    "Submitted": obj({"id": STR, "state": STR}),
    "ApplicationView": obj({
        "id": STR, "name": NULL_STR, "state": {"enum": ["SUBMITTED", "STARTING", "RUNNING", "FINISHED", "FAILED",
                                                       "KILLED"]},
        "reason": NULL_STR, "message": NULL_STR, "exit_code": NULL_INT, "spark_app_id": NULL_STR, "ui_url": NULL_STR,
        "history_url": NULL_STR, "submitter": NULL_STR, "submitted_at": NULL_NUM, "started_at": NULL_NUM, "finished_at": NULL_NUM,
        "kill_requested": {"type": "boolean"}, "request": {"anyOf": [ref("Application"), {"type": "null"}]}}),
    "ApplicationList": obj({"applications": {"type": "array", "items": ref("ApplicationView")}}),
    "ApplicationLog": obj({"id": STR, "from": INT, "total": INT, "log": STR_LIST}),
    "ScalingView": obj({"policy": ref("Scaling"), "workers": WORKERS, "phase": STR, "reason": NULL_STR,
                        "message": NULL_STR, "demand": {"type": ["object", "null"]},
                        "decisions": {"type": "array", "items": {"type": "object"}}}),
    "LoginResponse": obj({"token": STR, "expires_at": NUM, "user": STR, "groups": STR_LIST}),
    "Revoked": obj({"revoked": {"type": "boolean"}}),
    "TokenCreated": obj({"id": STR, "name": STR, "token": STR, "created_at": NUM, "expires_at": NUM}),
    "TokenList": obj({"tokens": {"type": "array", "items": obj({"id": STR, "name": STR, "created_at": NUM,
                                                                  "expires_at": NUM})}}),
    "TokenRevoked": obj({"id": STR, "revoked": {"type": "boolean"}}),
    "Member": obj({"kind": {"enum": ["user", "group"]}, "name": STR, "roles": STR_LIST}),
    "MemberList": obj({"members": {"type": "array", "items": ref("Member")}}),
    "MemberDeleted": obj({"kind": {"enum": ["user", "group"]}, "name": STR, "deleted": {"type": "boolean"}}),
    "AuditList": obj({"entries": {"type": "array", "items": obj({
        "principal": STR, "action": STR, "method": STR, "resource": STR, "status": INT, "client": STR,
        "time": NUM, "tenant": NULL_STR})}}),
    "OpenApi": {"type": "object"},
    "IntegrationRequest": obj({"name": STR, "patterns": STR_LIST}, ["name"]),
    "Integration": obj({"name": STR, "tenant": STR, "redis_user": STR, "request_queue": STR,
                        "reply_queue_prefix": STR, "event_exchange": STR, "event_queue": STR, "patterns": STR_LIST,
                        "created_by": NULL_STR, "created_at": NULL_NUM}),
    "IntegrationCreated": obj({"name": STR, "tenant": STR, "redis_user": STR, "request_queue": STR,
                               "reply_queue_prefix": STR, "event_exchange": STR, "event_queue": STR,
                               "patterns": STR_LIST, "password": STR, "redis_url": STR,
                               "created_by": NULL_STR, "created_at": NULL_NUM}),
    "IntegrationList": obj({"integrations": {"type": "array", "items": ref("Integration")}}),
    "NotebookServer": obj({"user": STR, "state": {"enum": ["requested", "waiting", "quota", "starting", "ready",
                                                             "stopping"]},
                           "container": STR, "url": STR, "requested_at": NULL_NUM, "last_activity": NULL_NUM}),
    "NotebookList": obj({"notebooks": {"type": "array", "items": ref("NotebookServer")}}),
}


def _param(name: str, where: str = "path", schema: dict[str, Any] | None = None, example: Any = None) -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "in": where, "required": where == "path", "schema": schema or STR}
    if example is not None:
        p["example"] = example
    return p


TENANT = _param("tenant", example="acme")
SIG = _param("sig", example="s1")
APP = _param("id", example="0000deadbeef00000000")
KIND = _param("kind", schema={"enum": ["user", "group"]}, example="user")
NAME = _param("name", example="alice")
IDEMPOTENCY_KEY = _param("Idempotency-Key", "header", {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
                         example="nightly-2026-11-29")


def _q(name: str, lo: int = 0, hi: int = 1_000_000) -> dict[str, Any]:
    return _param(name, "query", {"type": "integer", "minimum": lo, "maximum": hi})


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(action_name: str, summary: str, ok: dict[int, str], *, params: list[dict[str, Any]] | None = None,
        body: str | None = None, public: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": action_name.replace(".", "_"), "summary": summary,
                          "x-spaas-action": action_name, "parameters": params or []}
    if body == "multipart":
        op["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": obj(
            {"file": {"type": "string", "format": "binary"}})}}}
    elif body:
        op["requestBody"] = {"required": True, **_json(ref(body))}
    responses: dict[str, Any] = {str(code): {"description": name, **_json(ref(name))} for code, name in ok.items()}
    responses["default"] = {"description": "error", **_json(ref("Error"))}
    op["responses"] = responses
    if public:
        op["security"] = []
    return op


FOLLOW = ("With follow=true the answer is text/event-stream: one event per line (`id:` the offset of the next "
          "line, `data:` the line), then `event: end` with `{\"state\"}` once the build or application is over. "
          "A stream closes after SPAAS_FOLLOW_MAX_S; EventSource reconnects with Last-Event-ID (wins over from).")


def _follow(op: dict[str, Any]) -> dict[str, Any]:
    """A log endpoint that also streams (see services/api/follow.py)."""
    op["description"] = FOLLOW
    op["parameters"] = op["parameters"] + [_param("follow", "query", {"type": "boolean"}),
                                           _param("Last-Event-ID", "header", {"type": "string", "pattern": "^[0-9]{1,9}$"})]
    op["responses"]["200"]["content"]["text/event-stream"] = {"schema": {"type": "string"}}
    return op


def _paths() -> dict[str, dict[str, Any]]:
    t, s, a = "/api/v1/tenants/{tenant}", "/api/v1/tenants/{tenant}/sigs/{sig}", \
        "/api/v1/tenants/{tenant}/sigs/{sig}/applications/{id}"
    ts = [TENANT, SIG]
    return {
        "/api/v1/healthz": {"get": _op("health.read", "Health of the API and its etcd", {200: "Health", 503: "Health"},
                                       public=True)},
        "/api/v1/openapi.json": {"get": _op("openapi.read", "This document", {200: "OpenApi"}, public=True)},
        "/metrics": {"get": {"operationId": "metrics_read", "summary": "Prometheus metrics", "security": [],
                             "x-spaas-action": "metrics.read",
                             "responses": {"200": {"description": "metrics", "content": {"text/plain": {
                                 "schema": STR}}}}}},
        "/api/v1/login": {
            "post": _op("login.create", "Log in with an LDAP user name and password", {200: "LoginResponse"},
                        body="LoginRequest", public=True),
            "delete": _op("login.delete", "Revoke the presented token", {200: "Revoked"})},
        "/api/v1/tokens": {
            "post": _op("token.create", "Create a personal API token (shown once)", {201: "TokenCreated"},
                        body="TokenRequest"),
            "get": _op("token.list", "The caller's personal API tokens, without secrets", {200: "TokenList"})},
        "/api/v1/tokens/{id}": {"delete": _op("token.delete", "Revoke a personal API token", {200: "TokenRevoked"},
                                              params=[_param("id", example="0123456789abcdef")])},
        "/api/v1/audit": {"get": _op("audit.read", "The audit log, newest first (cluster admins)", {200: "AuditList"},
                                     params=[_param("tenant", "query"), _q("limit", 1, 1000)])},
        "/api/v1/tenants": {
            "post": _op("tenant.create", "Create a tenant with its quota", {201: "Tenant"}, body="TenantSpec"),
            "get": _op("tenant.list", "The tenants the caller is a member of (all for cluster admins)",
                       {200: "TenantList"})},
        t: {"get": _op("tenant.read", "A tenant", {200: "Tenant"}, params=[TENANT]),
            "delete": _op("tenant.delete", "Delete a tenant without SIGs", {200: "TenantDeleted"}, params=[TENANT])},
        f"{t}/quota": {"put": _op("tenant.update", "Change the tenant's quota (cluster admins)", {200: "Tenant"},
                                  params=[TENANT], body="Quota")},
        f"{t}/members": {"get": _op("member.list", "Users and groups with roles in the tenant", {200: "MemberList"},
                                    params=[TENANT])},
        f"{t}/members/{{kind}}/{{name}}": {
            "put": _op("member.put", "Grant roles to a user or group (replaces its roles)", {200: "Member"},
                       params=[TENANT, KIND, NAME], body="MemberRoles"),
            "delete": _op("member.delete", "Remove a user's or group's roles", {200: "MemberDeleted"},
                          params=[TENANT, KIND, NAME])},
        f"{t}/integrations": {
            "post": _op("integration.create", "Create a queue integration: Redis credentials (password shown "
                        "once) that push requests and read the tenant's events (docs/integrations.md)",
                        {201: "IntegrationCreated"}, params=[TENANT], body="IntegrationRequest"),
            "get": _op("integration.list", "The tenant's integrations, without secrets", {200: "IntegrationList"},
                       params=[TENANT])},
        f"{t}/integrations/{{name}}": {
            "get": _op("integration.read", "An integration, without secrets", {200: "Integration"},
                       params=[TENANT, _param("name", example="pipeline")]),
            "delete": _op("integration.delete", "Delete an integration: its Redis user and event queue",
                          {200: "Integration"}, params=[TENANT, _param("name", example="pipeline")])},
        f"{t}/sigs": {
            "post": _op("sig.create", "Create a SIG (202: it builds; with Idempotency-Key a repeat answers 200 "
                        "with the first answer)", {200: "Sig", 202: "Sig"}, params=[TENANT, IDEMPOTENCY_KEY],
                        body="SigSpec"),
            "get": _op("sig.list", "The tenant's SIGs", {200: "SigList"}, params=[TENANT])},
        s: {"get": _op("sig.read", "A SIG: spec and status", {200: "Sig"}, params=ts),
            "put": _op("sig.update", "Change a SIG (202 if it changed)", {200: "Sig", 202: "Sig"}, params=ts,
                       body="SigSpec"),
            "delete": _op("sig.delete", "Delete a SIG (202; 404 once gone)", {202: "Sig"}, params=ts)},
        f"{s}/build/log": {"get": _follow(_op("sig.build_log", "Build output (follow=true: server-sent events)",
                                              {200: "BuildLog"},
                                              params=ts + [_q("generation", 1), _q("from"), _q("size", 1, 10_000)]))},
        f"{s}/scaling": {"get": _op("sig.scaling", "Scaling policy, workers, demand and decisions",
                                    {200: "ScalingView"}, params=ts + [_q("limit", 1, 200)])},
        f"{s}/files": {"post": _op("file.upload", "Store a file in the SIG's storage", {201: "StoredFile"},
                                   params=ts, body="multipart"),
                       "get": _op("file.list", "The files in the SIG's storage", {200: "FileList"}, params=ts)},
        f"{s}/files/{{name}}": {"delete": _op("file.delete", "Delete a file of the SIG's storage", {200: "FileDeleted"},
                                              params=ts + [_param("name", example="job.py")])},
        f"{s}/applications": {
            "post": _op("app.submit", "Submit a Livy-shaped batch application (with Idempotency-Key a repeat "
                        "answers 200 with the same id; another body under the key 422)",
                        {200: "Submitted", 201: "Submitted"}, params=ts + [IDEMPOTENCY_KEY], body="Application"),
            "get": _op("app.list", "Applications (the caller's own unless a tenant admin)", {200: "ApplicationList"},
                       params=ts)},
        a: {"get": _op("app.read", "An application", {200: "ApplicationView"}, params=ts + [APP]),
            "delete": _op("app.kill", "Kill an application (200 if already over)",
                          {200: "ApplicationView", 202: "ApplicationView"}, params=ts + [APP])},
        f"{a}/log": {"get": _follow(_op("app.log", "Driver output (follow=true: server-sent events)",
                                        {200: "ApplicationLog"}, params=ts + [APP, _q("from"), _q("size", 1, 100_000)]))},
        f"{s}/notebooks": {"get": _op("notebook.list", "Jupyter servers (the caller's own unless a tenant admin)",
                                      {200: "NotebookList"}, params=ts)},
        f"{s}/notebooks/{{user}}": {"delete": _op("notebook.stop", "Stop a user's Jupyter server (the next visit "
                                                                   "starts a new one)", {200: "NotebookServer"},
                                                  params=ts + [_param("user", example="alice")])},
        **livy_openapi.paths(TENANT, SIG, [_q("from"), _q("size", 0, 10_000)]),
    }


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Literal["validation"]]] = [
        (m, "validation") for m in (TenantSpec, SigSpec, Application, LoginRequest, TokenRequest, MemberRoles)]
    _, defs = models_json_schema(models, ref_template=REF)
    schemas = dict(defs.get("$defs", {}))
    schemas.update(RESPONSES)
    schemas.update(livy_openapi.SCHEMAS)
    return {
        "openapi": "3.1.0",
        "info": {"title": "spaas API", "version": "1",
                 "description": "Multi-tenant Spark as a service. Authenticate with `Authorization: Bearer <token>` "
                                "(bootstrap admin token, a login token from POST /api/v1/login, or a personal "
                                "API token)."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                           "basic": {"type": "http", "scheme": "basic"}}},
    }


@bp.get("/openapi.json")
@action("openapi.read")
def openapi_json() -> dict[str, Any]:
    return document()
