"""Execute one integration request as the REST call it stands for, with the message's own token.

Authorisation is therefore the API's, unchanged: roles, tenant isolation, quota, conf filtering
and validation all happen there. The answer (or the API's error) becomes the reply. A request
without its own idempotency key uses its correlation id (a Celery task's id), so a redelivered
or re-sent message is answered from the first run instead of running twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spaas import integrations
from spaas.client import ApiError, Client
from spaas.integrations import Request

ClientFactory = Callable[[str], Client]


def execute(request: Request, client_for: ClientFactory, *, correlation_id: str = "") -> dict[str, Any]:
    """The reply to `request` (never raises for what the API answers)."""
    client = client_for(request.token)
    key = request.idempotency_key or (f"msg-{correlation_id}" if correlation_id else "")
    key = key if integrations.KEY_RE.match(key) else ""
    try:
        result, status = _call(client, request, key or None)
    except ApiError as exc:
        return integrations.reply(exc.status or 503, type_=request.type, code=exc.code, field=exc.field,
                                  message=exc.message)
    return integrations.reply(status, type_=request.type, result=result)


def _call(client: Client, request: Request, key: str | None) -> tuple[dict[str, Any], int]:
    t, s = request.tenant, request.sig
    if request.type == "app.submit":
        resp = client.request("POST", f"/tenants/{t}/sigs/{s}/applications", json_body=request.body,
                              headers={"Idempotency-Key": key} if key else None)
    elif request.type == "app.kill":
        resp = client.request("DELETE", f"/tenants/{t}/sigs/{s}/applications/{request.app_id}")
    elif request.type == "sig.create":
        resp = client.request("POST", f"/tenants/{t}/sigs", json_body=request.body,
                              headers={"Idempotency-Key": key} if key else None)
    elif request.type == "sig.update":
        resp = client.request("PUT", f"/tenants/{t}/sigs/{s}", json_body=request.body)
    elif request.type == "sig.delete":
        resp = client.request("DELETE", f"/tenants/{t}/sigs/{s}")
    else:  # parse_request admits only the types above
        raise ApiError(400, "BadMessage", "type", f"unknown request type {request.type!r}")
    return resp.json(), resp.status_code
