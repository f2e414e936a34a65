"""The console's only data path: the Python SDK (`spaas.client.Client`) with the caller's token,
over a transport that serves each request from the API's own WSGI app in-process.

`client()` builds one `Client` per page request whose `requests.Session` has a `WSGIAdapter`
mounted for every URL: a call becomes a WSGI environ (method, path, query, headers, body, and the
page's REMOTE_ADDR so audit and rate limits see the browser's address) that runs through the same
stack as an HTTP request (the guard, validation, errors, audit), with no socket and no second copy
of any rule. The SDK turns the API's error answers into `ApiError(status, code, field, message)`,
which the views render. The inner request shares Flask's `g` with the page's request (the same app
context); the adapter restores what the guard put there.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import current_app, g, request
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from werkzeug.test import EnvironBuilder, run_wsgi_app

from spaas.client import ApiError, Client

__all__ = ["ApiError", "WSGIAdapter", "client", "error_of"]

_GUARD_KEYS = ("principal", "tenant_roles", "login_name")


class WSGIAdapter(BaseAdapter):
    """A `requests` transport adapter that answers from a WSGI app in the same process.

    The answer is buffered (the console reads JSON, never an event stream). `remote_addr` becomes
    the inner request's REMOTE_ADDR; the API's guard keys in `flask.g` are restored after each call.
    """

    def __init__(self, app: Any, *, remote_addr: str) -> None:
        super().__init__()
        self.app, self.remote_addr = app, remote_addr

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Mapping[str, str] | None = None) -> requests.Response:
        url = urlsplit(request.url or "")
        body = request.body.encode() if isinstance(request.body, str) else request.body
        headers = list(request.headers.items())
        builder = EnvironBuilder(path=url.path, query_string=url.query, base_url=f"{url.scheme}://{url.netloc}",
                                 method=request.method or "GET", headers=headers,
                                 content_type=request.headers.get("Content-Type"),
                                 input_stream=io.BytesIO(body) if body else None,
                                 environ_base={"REMOTE_ADDR": self.remote_addr})
        saved = {k: g.get(k) for k in _GUARD_KEYS}
        try:
            app_iter, status, resp_headers = run_wsgi_app(self.app, builder.get_environ(), buffered=True)
            content = b"".join(app_iter)
        finally:
            builder.close()
            for k, v in saved.items():
                if v is None:
                    g.pop(k, None)
                else:
                    setattr(g, k, v)
        resp = requests.Response()
        code, _, reason = status.partition(" ")
        resp.status_code, resp.reason = int(code), reason
        resp.headers = CaseInsensitiveDict(resp_headers.items())
        resp.encoding = get_encoding_from_headers(resp.headers)
        resp.raw = io.BytesIO(content)
        resp.url, resp.request = request.url or "", request
        resp.connection = self  # type: ignore[assignment]  # requests types it as its HTTPAdapter
        return resp

    def close(self) -> None:
        pass


def client() -> Client:
    """The SDK client of this page request: the caller's Authorization header, in-process transport."""
    existing = g.get("console_client")
    if isinstance(existing, Client):
        return existing
    session = requests.Session()
    adapter = WSGIAdapter(current_app._get_current_object(),  # type: ignore[attr-defined]
                          remote_addr=request.remote_addr or "")
    for prefix in ("http://", "https://"):
        session.mount(prefix, adapter)  # every URL is served in-process: no HTTP hop, ever
    session.trust_env = False
    session.headers["Authorization"] = request.headers.get("Authorization", "")
    # One attempt per read, as a page makes it: an in-process 503 is shown, not slept on.
    made = Client(request.host_url, session=session, read_retries=1)
    g.console_client = made
    return made


def error_of(exc: ApiError) -> dict[str, Any]:
    """The API's error as the templates read it: code, message and (if the API named one) field."""
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.field is not None:
        error["field"] = exc.field
    return error
