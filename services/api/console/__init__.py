"""The management console: server-rendered pages under /platform, over the REST API.

Served by the API, reached through services/proxy (which turns the session cookie into a bearer
header and sends browsers without a session to /platform/login). Every page reads and changes
data only by calling the REST API in-process with the caller's token (`console.api`), so the
guard, validation and audit are the API's own. What a caller may not do is not offered; the API
refuses it anyway. Forms carry the session's CSRF token as a field, checked here on every change.
Live parts (phase, application states, build and driver logs) use a few lines of vanilla JS:
polling of HTML fragments and EventSource on the API's `?follow=true` log streams.
"""

from services.api.console.views import bp

__all__ = ["bp"]
