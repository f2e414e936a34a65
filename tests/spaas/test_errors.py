"""The error vocabulary's one HTTP status table (`spaas.errors.http_status`), used by the API, its Livy
routes and console, and the registry."""

from __future__ import annotations

import pytest

from spaas.errors import (BadRequest, Conflict, Forbidden, Invalid, NotFound, PermanentError, SpaasError,
                          TemporaryError, TooManyRequests, Unauthorized, Unprocessable, http_status, retry_after)


@pytest.mark.parametrize("exc, status", [
    (BadRequest("not JSON"), 400),
    (Invalid("cpu: must be > 0", field="cpu"), 422),
    (Unprocessable("unknown Spark version"), 422),
    (Unauthorized("no token"), 401),
    (Forbidden("needs sig_configure"), 403),
    (NotFound("no SIG etl"), 404),
    (Conflict("changed since revision 7"), 409),
    (TooManyRequests("slow down", retry_after=30), 429),
    (TemporaryError("etcd unreachable"), 503),
    (PermanentError("pip failed"), 500),
    (SpaasError("unclassified"), 500),
])
def test_status(exc: SpaasError, status: int) -> None:
    assert http_status(exc) == status


@pytest.mark.parametrize("exc, header", [
    (TooManyRequests("slow down", retry_after=30), "30"),
    (TemporaryError("etcd unreachable"), "1"),
    (TemporaryError("busy", delay=7.4), "7"),
    (TemporaryError("busy", delay=0.2), "1"),
    (NotFound("x"), None),
])
def test_retry_after(exc: SpaasError, header: str | None) -> None:
    assert retry_after(exc) == header


def test_api_names_stay_importable() -> None:
    from services.api import errors as api_errors
    assert api_errors.Forbidden is Forbidden and api_errors.BadRequest is BadRequest
    assert api_errors.TooManyRequests is TooManyRequests
