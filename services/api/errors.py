"""One place that maps the error vocabulary to HTTP: `{"error": {"code", "message", "field"}}`."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from spaas.errors import (Conflict, Invalid, NotFound, PermanentError, SpaasError, TemporaryError, Unauthorized,
                          Unprocessable)

log = logging.getLogger(__name__)

class Forbidden(SpaasError):
    """A member of the tenant without the role the action needs (HTTP 403)."""

    code = "Forbidden"


class TooManyRequests(SpaasError):
    """Too many failed logins for a user name or from an address (HTTP 429 with Retry-After)."""

    code = "TooManyRequests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


STATUS: list[tuple[type[SpaasError], int]] = [
    (Forbidden, 403),
    (TooManyRequests, 429),
    (Unprocessable, 422),
    (Invalid, 422),
    (NotFound, 404),
    (Conflict, 409),
    (Unauthorized, 401),
    (TemporaryError, 503),
    (PermanentError, 500),
]


class BadRequest(Invalid):
    """The body is not what any endpoint could accept (not JSON, not an object)."""

    code = "BadRequest"


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
        status = 400 if isinstance(exc, BadRequest) else next((s for cls, s in STATUS if isinstance(exc, cls)), 500)
        if status >= 500:
            log.error("request failed: %s", exc.message)
        headers = {}
        if isinstance(exc, TooManyRequests):
            headers["Retry-After"] = str(exc.retry_after)
        elif isinstance(exc, TemporaryError):
            headers["Retry-After"] = str(max(1, int(exc.delay or 1)))
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
