"""The error vocabulary of spaas.

Adapters translate third-party exceptions into these, so nothing above an adapter sees a
`requests` or `redis` exception. The API maps each class to one HTTP status in one place
(`services/api/errors.py`).
"""

from __future__ import annotations


class SpaasError(Exception):
    """Base class. `code` is the stable machine-readable name sent to clients."""

    code = "Error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Invalid(SpaasError):
    """The request is malformed or a value is out of range (HTTP 400/422)."""

    code = "Invalid"


class Unprocessable(Invalid):
    """Well-formed but not acceptable, e.g. an unknown Spark version (HTTP 422)."""

    code = "Unprocessable"


class NotFound(SpaasError):
    code = "NotFound"


class Conflict(SpaasError):
    """Already exists, or a compare-and-swap lost against a newer revision (HTTP 409)."""

    code = "Conflict"


class Unauthorized(SpaasError):
    code = "Unauthorized"


class TemporaryError(SpaasError):
    """A dependency is unavailable; retrying may succeed. `delay` is when to retry, in seconds, if
    the failing side said so (a loop then waits that long; HTTP sends it as Retry-After); without
    one a loop backs off exponentially (`spaas.loops`)."""

    code = "Unavailable"

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(SpaasError):
    """Retrying will not help (e.g. a pip resolution failure in a build)."""

    code = "Failed"


class BadRequest(Invalid):
    """The request is not what any endpoint could accept: not JSON, not an object, a malformed name in
    a path (HTTP 400)."""

    code = "BadRequest"


class Forbidden(SpaasError):
    """A member of the tenant without the role the action needs (HTTP 403)."""

    code = "Forbidden"


class TooManyRequests(SpaasError):
    """Too many failed logins for a user name or from an address (HTTP 429 with Retry-After)."""

    code = "TooManyRequests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# The one HTTP status table (the API, its Livy routes and console, and the registry use it): the first
# class an error is an instance of decides, so subclasses come before their bases.
HTTP_STATUS: list[tuple[type[SpaasError], int]] = [
    (BadRequest, 400),
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


def http_status(exc: SpaasError) -> int:
    """The HTTP status an error answers with (500 for one the table does not know)."""
    return next((status for cls, status in HTTP_STATUS if isinstance(exc, cls)), 500)


def retry_after(exc: SpaasError) -> str | None:
    """The Retry-After header (seconds) an error answers with, if any."""
    if isinstance(exc, TooManyRequests):
        return str(exc.retry_after)
    if isinstance(exc, TemporaryError):
        return str(max(1, round(exc.delay or 1)))
    return None
