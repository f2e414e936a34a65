"""The OpenAPI paths and shapes of the Livy routes (`/api/v1/tenants/{t}/sigs/{s}/livy/...`),
merged into the API's document by `services.api.openapi`."""

from __future__ import annotations

from typing import Any

NULL_STR: dict[str, Any] = {"type": ["string", "null"]}
STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
STR_LIST: dict[str, Any] = {"type": "array", "items": STR}
LIVY_STATES = ["not_started", "starting", "running", "idle", "busy", "shutting_down", "error", "dead", "killed",
               "success"]
STATEMENT_STATES = ["waiting", "running", "available", "error", "cancelling", "cancelled"]


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: list[str] | None = None, *, extra: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props,
                           "required": list(props) if required is None else required}
    if not extra:
        out["additionalProperties"] = False
    return out


STR_MAP = {"type": "object", "additionalProperties": STR}
COMMON_REQUEST = {
    "proxyUser": NULL_STR, "pyFiles": STR_LIST, "jars": {"type": "array", "maxItems": 0},
    "files": {"type": "array", "maxItems": 0}, "archives": {"type": "array", "maxItems": 0},
    "driverMemory": {"type": "string", "pattern": "^[0-9]{1,6}[kmgtKMGT]?$"},
    "driverCores": {"type": "integer", "minimum": 1, "maximum": 64},
    "executorMemory": {"type": "string", "pattern": "^[0-9]{1,6}[kmgtKMGT]?$"},
    "executorCores": {"type": "integer", "minimum": 1, "maximum": 256},
    "numExecutors": {"type": "integer", "minimum": 1, "maximum": 10000},
    "queue": NULL_STR, "name": {"type": "string", "maxLength": 128}, "conf": STR_MAP,
}
SCHEMAS: dict[str, Any] = {
    "LivyError": _obj({"msg": STR, "error": _obj({"code": STR, "message": STR, "field": NULL_STR}, ["code", "message"])},
                       ["msg"]),
    "LivyVersion": _obj({"version": STR, "commit": STR}, ["version"]),
    "LivyBatchRequest": _obj({"file": {"type": "string", "minLength": 1, "maxLength": 512}, "className": STR,
                              "args": STR_LIST, **COMMON_REQUEST}, ["file"]),
    "LivySessionRequest": _obj({"kind": {"enum": ["pyspark", "sql", "spark"]},
                                "heartbeatTimeoutInSecond": {"type": "integer", "minimum": 0}, **COMMON_REQUEST}, []),
    "LivyAppInfo": _obj({"driverLogUrl": NULL_STR, "sparkUiUrl": NULL_STR}),
    "LivyBatch": _obj({"id": STR, "name": NULL_STR, "owner": NULL_STR, "proxyUser": NULL_STR,
                       "state": {"enum": LIVY_STATES}, "appId": NULL_STR, "appInfo": _ref("LivyAppInfo"),
                       "log": STR_LIST}),
    "LivyBatchList": _obj({"from": INT, "total": INT, "sessions": {"type": "array", "items": _ref("LivyBatch")}}),
    "LivyState": _obj({"id": STR, "state": {"enum": LIVY_STATES}}),
    "LivyLog": _obj({"id": STR, "from": INT, "total": INT, "log": STR_LIST}),
    "LivyDeleted": _obj({"msg": STR}),
    "LivySession": _obj({"id": STR, "name": NULL_STR, "owner": NULL_STR, "proxyUser": NULL_STR,
                         "kind": {"enum": ["pyspark", "sql"]}, "state": {"enum": LIVY_STATES}, "appId": NULL_STR,
                         "appInfo": _ref("LivyAppInfo"), "log": STR_LIST, "ttl": {"type": "null"},
                         "heartbeatTimeoutInSecond": INT}),
    "LivySessionList": _obj({"from": INT, "total": INT,
                             "sessions": {"type": "array", "items": _ref("LivySession")}}),
    "LivyStatementRequest": _obj({"code": {"type": "string", "minLength": 1},
                                  "kind": {"enum": ["pyspark", "python", "pyspark3", "sql"]}}, ["code"]),
    "LivyStatement": _obj({
        "id": INT, "code": STR, "state": {"enum": STATEMENT_STATES}, "progress": {"type": "number"},
        "started": INT, "completed": INT,
        "output": {"type": ["object", "null"], "properties": {
            "status": {"enum": ["ok", "error"]}, "execution_count": INT, "data": {"type": "object"},
            "ename": STR, "evalue": STR, "traceback": STR_LIST}}}),
    "LivyStatementList": _obj({"total_statements": INT,
                               "statements": {"type": "array", "items": _ref("LivyStatement")}}),
}


def op(action_name: str, summary: str, ok: dict[int, str], *, params: list[dict[str, Any]],
       body: str | None = None, location: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": "livy_" + summary.lower().replace(" ", "_").replace("'", ""),
                                 "summary": summary, "x-spaas-action": action_name, "parameters": params,
                                 "security": [{"bearer": []}, {"basic": []}]}
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    responses: dict[str, Any] = {}
    for code, name in ok.items():
        responses[str(code)] = {"description": name, "content": {"application/json": {"schema": _ref(name)}}}
        if location and code == 201:
            responses[str(code)]["headers"] = {"Location": {"schema": STR, "required": True}}
    responses["default"] = {"description": "error ({msg} as Livy has it, and the platform's error object)",
                            "content": {"application/json": {"schema": _ref("LivyError")}}}
    operation["responses"] = responses
    return operation


def paths(tenant: dict[str, Any], sig: dict[str, Any], page: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`tenant`, `sig`: the path parameters; `page`: the `from` and `size` query parameters."""
    base = "/api/v1/tenants/{tenant}/sigs/{sig}/livy"
    ts = [tenant, sig]
    stmt = [{"name": "stmt", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}, "example": 0}]
    bid = [{"name": "id", "in": "path", "required": True, "schema": STR, "example": "0000deadbeef00000000"}]
    return {
        f"{base}/version": {"get": op("livy.version", "Livy version", {200: "LivyVersion"}, params=ts)},
        f"{base}/batches": {
            "post": op("app.submit", "Submit a batch", {201: "LivyBatch"}, params=ts, body="LivyBatchRequest",
                       location=True),
            "get": op("app.list", "List batches", {200: "LivyBatchList"}, params=ts + page)},
        f"{base}/batches/{{id}}": {
            "get": op("app.read", "Get a batch", {200: "LivyBatch"}, params=ts + bid),
            "delete": op("app.kill", "Kill a batch", {200: "LivyDeleted"}, params=ts + bid)},
        f"{base}/batches/{{id}}/state": {"get": op("app.read", "Batch state", {200: "LivyState"}, params=ts + bid)},
        f"{base}/batches/{{id}}/log": {"get": op("app.log", "Batch log", {200: "LivyLog"}, params=ts + bid + page)},
        f"{base}/sessions": {
            "post": op("app.submit", "Start an interactive session", {201: "LivySession"}, params=ts,
                       body="LivySessionRequest", location=True),
            "get": op("app.list", "List sessions", {200: "LivySessionList"}, params=ts + page)},
        f"{base}/sessions/{{id}}": {
            "get": op("app.read", "Get a session", {200: "LivySession"}, params=ts + bid),
            "delete": op("app.kill", "End a session", {200: "LivyDeleted"}, params=ts + bid)},
        f"{base}/sessions/{{id}}/state": {"get": op("app.read", "Session state", {200: "LivyState"}, params=ts + bid)},
        f"{base}/sessions/{{id}}/log": {"get": op("app.log", "Session log", {200: "LivyLog"},
                                                   params=ts + bid + page)},
        f"{base}/sessions/{{id}}/statements": {
            "post": op("statement.run", "Run a statement", {201: "LivyStatement"}, params=ts + bid,
                       body="LivyStatementRequest", location=True),
            "get": op("app.read", "List statements", {200: "LivyStatementList"}, params=ts + bid)},
        f"{base}/sessions/{{id}}/statements/{{stmt}}": {
            "get": op("app.read", "Get a statement", {200: "LivyStatement"}, params=ts + bid + stmt)},
        f"{base}/sessions/{{id}}/statements/{{stmt}}/cancel": {
            "post": op("statement.cancel", "Cancel a statement", {200: "LivyDeleted"}, params=ts + bid + stmt)},
    }
