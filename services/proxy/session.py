"""Browser sessions: the cookie and CSRF contract the console builds on.

    POST   /platform/session  {"username", "password"}  log in through the API's LDAP login
                              {"token": "..."}           or turn a token (API or admin) into a session
           -> 200 {"user", "csrf_token", "expires_at"}, cookies:
              spaas_session=<token>  HttpOnly; SameSite=Lax; Path=/; Secure under TLS
              spaas_csrf=<csrf>      readable by the page; SameSite=Lax; Path=/; Secure under TLS
    GET    /platform/session  -> 200 {"user", "csrf_token", "expires_at"} or 401
    DELETE /platform/session  (X-CSRF-Token) log out: a login token is revoked, cookies cleared
    GET    /platform/login?next=/sig/t/s/   a minimal HTML form (until the console replaces it)
    POST   /platform/login    form fields username+password or token, and next -> 303 to next

Every cookie-authenticated POST/PUT/PATCH/DELETE through the proxy must send `X-CSRF-Token`
(the value above); the proxy forwards cookie and Basic callers to the API as bearer tokens.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from spaas.authz import Principal
from spaas.settings import ProxySettings

from services.proxy import authn
from services.proxy.rewrite import CSRF_COOKIE, SESSION_COOKIE

DEFAULT_TTL_S = 8 * 3600

LOGIN_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>spaas: log in</title></head>
<body><main><h1>Log in to spaas</h1>{message}
<form method="post" action="/platform/login">
<input type="hidden" name="next" value="{next}">
<p><label>User name <input name="username" autocomplete="username"></label></p>
<p><label>Password <input name="password" type="password" autocomplete="current-password"></label></p>
<p>or <label>API token <input name="token" type="password"></label></p>
<p><button type="submit">Log in</button></p>
</form></main></body></html>
"""


def safe_next(value: str) -> str:
    """Only a local path: never an open redirect."""
    parts = urlsplit(value or "/")
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


class Sessions:
    def __init__(self, settings: ProxySettings, resolve: Callable[[authn.Credentials], Any], *,
                 forget: Callable[[str], None] = lambda token: None, http: requests.Session | None = None) -> None:
        self.s = settings
        self._resolve = resolve  # async: credentials -> Principal | None
        self._forget = forget
        self._http = http or requests.Session()
        self.secure = bool(settings.proxy_tls_cert)

    # -- the API calls (in a worker thread) ----------------------------------------------------
    def _api(self, method: str, path: str, *, client_ip: str, token: str = "", body: dict[str, Any] | None = None
             ) -> tuple[int, dict[str, Any]]:
        headers = {"X-Forwarded-For": client_ip}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            resp = self._http.request(method, self.s.api_url.rstrip("/") + path, json=body, headers=headers,
                                      timeout=self.s.upstream_timeout_s)
        except requests.RequestException:
            return 502, {"error": {"code": "UpstreamUnreachable", "message": "the API cannot be reached"}}
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, {}

    async def _call(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        return await asyncio.get_running_loop().run_in_executor(None, lambda: self._api(*args, **kwargs))

    # -- cookies ---------------------------------------------------------------------------------
    def _cookies(self, token: str, max_age: int) -> list[tuple[bytes, bytes]]:
        secure = "; Secure" if self.secure else ""
        return [(b"Set-Cookie", f"{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}".encode()),
                (b"Set-Cookie", f"{CSRF_COOKIE}={authn.csrf_token(token)}; Path=/; SameSite=Lax; Max-Age={max_age}{secure}".encode())]

    def _clear(self) -> list[tuple[bytes, bytes]]:
        return [(b"Set-Cookie", f"{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0".encode()),
                (b"Set-Cookie", f"{CSRF_COOKIE}=; Path=/; SameSite=Lax; Max-Age=0".encode())]

    async def _open(self, fields: dict[str, str], client_ip: str) -> tuple[int, dict[str, Any], str]:
        """(status, body, token) of a new session from user+password or a token."""
        token = fields.get("token", "").strip()
        if token:
            principal: Principal | None = await self._resolve(authn.Credentials(token, "bearer"))
            if principal is None:
                return 401, {"error": {"code": "Unauthorized", "message": "invalid credentials"}}, ""
            return 200, {"user": principal.name, "csrf_token": authn.csrf_token(token),
                         "expires_at": time.time() + DEFAULT_TTL_S}, token
        if not fields.get("username") or not fields.get("password"):
            return 400, {"error": {"code": "BadRequest", "message": "give username and password, or token",
                                   "field": "username"}}, ""
        status, body = await self._call("POST", "/api/v1/login", client_ip=client_ip,
                                        body={"username": fields["username"], "password": fields["password"]})
        if status != 200 or "token" not in body:
            return status, body, ""
        token = str(body["token"])
        return 200, {"user": body.get("user", fields["username"]), "csrf_token": authn.csrf_token(token),
                     "expires_at": body.get("expires_at")}, token

    def _max_age(self, body: dict[str, Any]) -> int:
        try:
            return max(1, int(float(body.get("expires_at") or 0) - time.time()))
        except (TypeError, ValueError):
            return DEFAULT_TTL_S

    # -- the endpoints --------------------------------------------------------------------------
    async def handle(self, name: str, req: Any, raw: bytes, creds: authn.Credentials | None) -> tuple[int, bytes]:
        from services.proxy.server import error_response, simple_response

        ka = req.keep_alive
        if name == "login":
            if req.method == "GET":
                nxt = parse_qs(urlsplit(req.target.decode("latin-1")).query).get("next", ["/"])[0]
                return 200, self._page(safe_next(nxt), "", 200, ka)
            if req.method != "POST":
                return 405, error_response(405, "MethodNotAllowed", "GET or POST", keep_alive=ka)
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
            nxt = safe_next(form.get("next", "/"))
            status, body, token = await self._open(form, req.client.client_ip)
            if not token:
                message = "Wrong user name, password or token." if status in (400, 401) else \
                    str(body.get("error", {}).get("message", "log in failed"))
                return status, self._page(nxt, message, 401 if status in (400, 401) else status, ka)
            extra = [(b"Location", nxt.encode("latin-1"))] + self._cookies(token, self._max_age(body))
            return 303, simple_response(303, b"", b"text/plain", extra=extra, keep_alive=ka)
        # /platform/session
        if req.method == "GET":
            if creds is None or creds.via != "cookie" or await self._resolve(creds) is None:
                return 401, error_response(401, "Unauthorized", "no session", keep_alive=ka)
            principal = await self._resolve(creds)
            body = {"user": principal.name, "csrf_token": authn.csrf_token(creds.token)}
            return 200, simple_response(200, json.dumps(body).encode(), b"application/json", keep_alive=ka)
        if req.method == "POST":
            try:
                fields = json.loads(raw or b"{}")
            except ValueError:
                fields = None
            if not isinstance(fields, dict):
                return 400, error_response(400, "BadRequest", "the request body must be a JSON object", "body", keep_alive=ka)
            status, body, token = await self._open({k: str(v) for k, v in fields.items()}, req.client.client_ip)
            if not token:
                return status, simple_response(status, json.dumps(body).encode(), b"application/json", keep_alive=ka)
            return 200, simple_response(200, json.dumps(body).encode(), b"application/json",
                                        extra=self._cookies(token, self._max_age(body)), keep_alive=ka)
        if req.method == "DELETE":
            if creds is not None and creds.via == "cookie":
                if not authn.csrf_ok("DELETE", creds, req.header(b"x-csrf-token")):
                    return 403, error_response(403, "CsrfRequired", "logging out needs the X-CSRF-Token header",
                                               "X-CSRF-Token", keep_alive=ka)
                principal = await self._resolve(creds)
                if principal is not None and principal.kind == "session":
                    await self._call("DELETE", "/api/v1/login", client_ip=req.client.client_ip, token=creds.token)
                    self._forget(creds.token)
            return 200, simple_response(200, b'{"status": "logged out"}', b"application/json", extra=self._clear(),
                                        keep_alive=ka)
        return 405, error_response(405, "MethodNotAllowed", "GET, POST or DELETE", keep_alive=ka)

    def _page(self, nxt: str, message: str, status: int, keep_alive: bool) -> bytes:
        from services.proxy.server import simple_response

        text = LOGIN_PAGE.format(next=html.escape(nxt, quote=True),
                                 message=f"<p role=\"alert\">{html.escape(message)}</p>" if message else "")
        return simple_response(status, text.encode(), b"text/html; charset=utf-8", keep_alive=keep_alive)
