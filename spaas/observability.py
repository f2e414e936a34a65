"""Logging setup and the `/healthz` + `/metrics` endpoint of services that have no HTTP API."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


def setup_logging(service: str, level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s",
    )


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


def health_app(check: Callable[[], bool | tuple[bool, str]]) -> Callable[..., Any]:
    """`check` returns ok, or (ok, reason): the reason is shown with a 503."""
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [generate_latest()]
        if path == "/healthz":
            result = check()
            ok, reason = result if isinstance(result, tuple) else (result, "")
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            body: dict[str, str] = {"status": "ok" if ok else "unhealthy"}
            if not ok and reason:
                body["reason"] = reason
            return [json.dumps(body).encode()]
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"error": {"code": "NotFound", "message": "no such path"}}']

    return app


def serve_health(host: str, port: int, check: Callable[[], bool | tuple[bool, str]]) -> WSGIServer | None:
    """Serve /healthz and /metrics in a daemon thread; `port` 0 disables it."""
    if not port:
        return None
    server = make_server(host, port, health_app(check), handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
