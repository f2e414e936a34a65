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

