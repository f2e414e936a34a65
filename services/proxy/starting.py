"""What the proxy answers while a server the caller may open is enabled but not routed yet (a
SIG's history server, a user's Jupyter server): 503 with `Retry-After`; for a browser a small
page that says what is starting and reloads itself (a meta refresh, no script). Pure.
"""

from __future__ import annotations

from html import escape

from services.proxy import routes

RETRY_AFTER_S = 3
REASON = "Starting"  # the JSON error's `reason`, the same for every kind of server

# code -> (page title, what is starting, by SIG name)
_WHAT = {
    routes.STARTING: ("Starting your notebook server", "Your Jupyter server on SIG {sig} is starting."),
    routes.HISTORY_STARTING: ("Starting the history server", "The Spark history server of SIG {sig} is starting "
                                                             "(it starts once the SIG's master is ready)."),
}


def page(code: str, tenant: str, sig: str) -> bytes:
    """The HTML a browser gets for a starting denial `code`; names are escaped (the router only lets
    DNS-label names through, but the page does not rely on it)."""
    title, text = _WHAT.get(code, ("Starting", "A server of SIG {sig} is starting."))
    what = escape(text.format(sig=f"{tenant}/{sig}"))
    return (f'<!doctype html>\n<html><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="{RETRY_AFTER_S}"><title>{escape(title)}</title></head>\n'
            f"<body><main><h1>{escape(title)}</h1>\n<p>{what} This page reloads by itself every "
            f"{RETRY_AFTER_S} seconds.</p></main></body></html>\n").encode()


def wants_html(accept: str) -> bool:
    """A browser navigating (what it sends for a page), as opposed to an API client."""
    return "text/html" in accept.lower()
