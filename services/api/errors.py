"""One place that maps the error vocabulary to HTTP: `{"error": {"code", "message", "field"}}`."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from spaas.errors import HTTP_STATUS, BadRequest, Forbidden, SpaasError, TooManyRequests, http_status, retry_after

__all__ = ["STATUS", "BadRequest", "Forbidden", "TooManyRequests", "error_response", "field_of", "register"]

log = logging.getLogger(__name__)

# The API's own errors live with the rest of the vocabulary (spaas/errors.py), and so does the one
# status table; the names stay importable from here.
STATUS = HTTP_STATUS


def error_response(code: str, message: str, status: int, field: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[Response, int]:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    resp = jsonify({"error": body})
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="spaas"'
    return resp, status


def field_of(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) if loc else "body"


def register(app: Flask) -> None:
    @app.errorhandler(SpaasError)
    def _spaas(exc: SpaasError) -> tuple[Response, int]:
        status = http_status(exc)
        if status >= 500:
            log.error("request failed: %s", exc.message)
        after = retry_after(exc)
        headers = {"Retry-After": after} if after is not None else {}
        return error_response(exc.code, exc.message, status, exc.field, headers=headers)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> tuple[Response, int]:
        errors = exc.errors(include_url=False)
        first = errors[0]
        loc = tuple(first.get("loc", ()))
        message = "; ".join(f"{field_of(tuple(e.get('loc', ())))}: {e.get('msg')}" for e in errors[:10])
        return error_response("Invalid", message, 422, field_of(loc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        allow = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        return error_response(exc.name.replace(" ", ""), exc.description or exc.name, status, headers=allow)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error")
        return error_response("InternalError", "unexpected server error; see the API log", 500)
