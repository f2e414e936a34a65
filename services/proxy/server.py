"""The byte pump: asyncio protocols that parse HTTP/1.1 with httptools and stream bodies.

Each client connection is a `ClientConn`; each request on it is handled in order by one task
(`_serve`): authenticate (an in-memory cache, etcd only on a miss), route (`routes.py`, pure,
over the current `RouteTable`), then forward over a pooled keep-alive `UpstreamConn`. Response
bytes go straight from the upstream's `data_received` to the client's transport with no task
switch; back-pressure pauses the other side's reading. Request bodies stream too (buffered only
while the upstream connection is being opened). WebSocket upgrades and CONNECT become raw
tunnels. Nothing here decides policy: see routes.py, rewrite.py, authn.py, session.py.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools

from spaas.authz import Principal
from spaas.authz import fold as authz_fold
from spaas.settings import ProxySettings

from services.proxy import authn, metrics, rewrite, routes, starting
from services.proxy.notebooks import NOTEBOOK_WS_TIMEOUT_S, NotebookTracker
from services.proxy.table import RouteTable

log = logging.getLogger(__name__)

NO_BODY_STATUS = frozenset({204, 304})
HIGH_WATER = 256 * 1024


def error_response(status: int, code: str, message: str, field: str | None = None, *,
                   extra: list[tuple[bytes, bytes]] | None = None, keep_alive: bool = True, reason: str = "") -> bytes:
    err: dict[str, Any] = {"code": code, "message": message}
    if field:
        err["field"] = field
    if reason:
        err["reason"] = reason
    body = json.dumps({"error": err}).encode()
    return simple_response(status, body, b"application/json", extra=extra, keep_alive=keep_alive)


REASONS = {200: b"OK", 201: b"Created", 204: b"No Content", 302: b"Found", 303: b"See Other", 400: b"Bad Request",
           401: b"Unauthorized", 403: b"Forbidden", 404: b"Not Found", 405: b"Method Not Allowed",
           407: b"Proxy Authentication Required", 413: b"Payload Too Large", 429: b"Too Many Requests",
           431: b"Request Header Fields Too Large", 500: b"Internal Server Error", 502: b"Bad Gateway",
           503: b"Service Unavailable", 504: b"Gateway Timeout"}


def simple_response(status: int, body: bytes, content_type: bytes, *, extra: list[tuple[bytes, bytes]] | None = None,
                    keep_alive: bool = True) -> bytes:
    lines = [b"HTTP/1.1 " + str(status).encode() + b" " + REASONS.get(status, b"-"),
             b"Content-Type: " + content_type, b"Content-Length: " + str(len(body)).encode(),
             b"Cache-Control: no-store"]
    lines += [k + b": " + v for k, v in extra or []]
    if not keep_alive:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class UpstreamError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# -- a request as the client sent it ---------------------------------------------------------------

@dataclass
class Request:
    method: str
    target: bytes
    headers: list[tuple[bytes, bytes]]
    version: str
    keep_alive: bool
    upgrade: bool
    client: ClientConn
    chunked: bool = False
    length: int | None = None
    body: collections.deque[bytes] = field(default_factory=collections.deque)
    buffered: int = 0
    received: int = 0
    complete: bool = False
    waiter: asyncio.Future[None] | None = None
    tail: bytes = b""  # bytes after an upgrade request (the start of the tunnel)
    index: dict[bytes, bytes] = field(default_factory=dict)  # lower-case name -> first value

    def header(self, name: bytes) -> str:
        value = self.index.get(name)
        return value.decode("latin-1") if value is not None else ""

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def feed(self, data: bytes) -> None:
        self.body.append(data)
        self.buffered += len(data)
        self.received += len(data)
        if self.buffered > HIGH_WATER:
            self.client.pause_reading()
        self._wake()

    def finish(self) -> None:
        self.complete = True
        self._wake()

    async def read(self) -> bytes | None:
        """The next body piece; None at the end."""
        while not self.body:
            if self.complete or self.client.closed:
                return None
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        data = self.body.popleft()
        self.buffered -= len(data)
        if self.buffered <= HIGH_WATER // 2:
            self.client.resume_reading()
        return data


# -- upstream connections ---------------------------------------------------------------------------

class Flow(asyncio.Protocol):
    """Writes and back-pressure shared by both ends of a proxied exchange (client and upstream)."""

    transport: asyncio.Transport | None
    closed: bool
    paused: bool

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.paused and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self.paused and not self.closed:
            self.paused = False
            self.transport.resume_reading()


class UpstreamConn(Flow):
    def __init__(self, pool: Pool, key: tuple[str, int]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.closed = False
        self.tunnel: ClientConn | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self.paused = False

    # asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        if self.exchange is None:  # bytes on an idle connection: the server misbehaves
            self.close()
            return
        ex = self.exchange
        ex.out = []  # what the client gets from these bytes: one write instead of one per piece
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            ex.flush()
            ex.upgraded(data[exc.args[0]:])
        except httptools.HttpParserError as exc:
            ex.flush()
            if self.exchange is not None:
                self.exchange.fail(UpstreamError(502, "BadGateway", f"the upstream answered malformed HTTP: {exc}"))
            self.close()
            return
        ex.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.discard(self)
        if self.tunnel is not None:
            self.tunnel.close()
        elif self.exchange is not None:
            self.exchange.upstream_lost()

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.pause_reading()
        elif self.tunnel is not None:
            self.tunnel.pause_reading()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.resume_reading()
        elif self.tunnel is not None:
            self.tunnel.resume_reading()

    # httptools
    def on_message_begin(self) -> None:
        self._headers = []
        self._reason = b""

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.exchange is not None:
            self.exchange.head(self.parser.get_status_code(), self._reason, self._headers,
                               self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None:
            self.exchange.body(body)

    def on_message_complete(self) -> None:
        if self.exchange is not None:
            self.exchange.done()

    # ours
    def close(self) -> None:
        self.closed = True
        self.pool.discard(self)
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Idle keep-alive connections per (host, port)."""

    def __init__(self, *, connect_timeout_s: float, max_idle_per_host: int = 32) -> None:
        self._idle: dict[tuple[str, int], list[UpstreamConn]] = {}
        self._timeout = connect_timeout_s
        self._max = max_idle_per_host

    async def acquire(self, host: str, port: int, *, fresh: bool = False) -> tuple[UpstreamConn, bool]:
        """(connection, reused)."""
        key = (host, port)
        idle = self._idle.get(key)
        while idle and not fresh:
            conn = idle.pop()
            if not conn.closed:
                return conn, True
        loop = asyncio.get_running_loop()
        try:
            _, proto = await asyncio.wait_for(loop.create_connection(lambda: UpstreamConn(self, key), host, port),
                                              self._timeout)
        except TimeoutError:
            raise UpstreamError(504, "UpstreamTimeout", f"no connection to the upstream within {self._timeout:g}s") from None
        except OSError as exc:
            raise UpstreamError(502, "UpstreamUnreachable", f"the upstream refused the connection ({exc.strerror or exc})") from None
        return proto, False

    def release(self, conn: UpstreamConn) -> None:
        conn.exchange = None
        if conn.closed or conn.paused:
            conn.close()
            return
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= self._max:
            conn.close()
        else:
            idle.append(conn)

    def discard(self, conn: UpstreamConn) -> None:
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    def close_all(self) -> None:
        for idle in list(self._idle.values()):
            for conn in list(idle):
                conn.close()
        self._idle.clear()


# -- one request/response exchange over an upstream connection ---------------------------------------

class Exchange:
    def __init__(self, client: ClientConn, req: Request, up: routes.Upstream, conn: UpstreamConn, *,
                 max_response: int) -> None:
        self.client = client
        self.req = req
        self.up = up
        self.conn = conn
        self.loop = asyncio.get_running_loop()
        self.started: asyncio.Future[None] = self.loop.create_future()
        self.finished: asyncio.Future[bool] = self.loop.create_future()  # True: upstream reusable
        self.framing = "none"
        self.sent_head = False
        self.status = 0
        self.reusable = False
        self.sent = 0
        self.max_response = max_response
        self.upgrade_ok = False
        self.out: list[bytes] | None = None
        self.timer: asyncio.TimerHandle | None = None

    def send(self, data: bytes) -> None:
        if self.out is not None:
            self.out.append(data)
        else:
            self.client.write(data)

    def flush(self) -> None:
        out, self.out = self.out, None
        if out:
            self.client.write(b"".join(out) if len(out) > 1 else out[0])

    def timed_out(self) -> None:
        if not self.started.done():
            self.started.set_exception(TimeoutError())

    def head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool) -> None:
        if 100 <= status < 200 and status != 101:
            return  # interim answers (100 Continue) are not relayed; the proxy answered Expect itself
        self.status = status
        self.reusable = keep_alive
        req = self.req
        has_length = any(k.lower() == b"content-length" for k, _ in headers)
        if status == 101:
            framing = "none"
        elif req.method == "HEAD" or status in NO_BODY_STATUS:
            framing = "none"
        elif has_length:
            framing = "length"
        elif req.version == "1.1":
            framing = "chunked"
        else:
            framing = "close"
        self.framing = framing
        keep = req.keep_alive and framing != "close" and not self.client.closing
        if status == 101 and req.upgrade:
            self.upgrade_ok = True
        self.send(rewrite.response_head(status, reason, headers, kind=self.up.kind, prefix=self.up.prefix,
                                        framing=framing, keep_alive=keep, upgrade=self.upgrade_ok,
                                        target=self.up.target))
        if not keep:
            self.client.closing = True
        self.sent_head = True
        if self.timer is not None:
            self.timer.cancel()
        if not self.started.done():
            self.started.set_result(None)
        if req.method == "HEAD" and not self.finished.done():
            # httptools cannot be told a HEAD answer has no body: finish now, never reuse the connection.
            self.reusable = False
            self.finished.set_result(False)

    def body(self, data: bytes) -> None:
        if self.finished.done():
            return
        self.sent += len(data)
        if self.max_response and self.sent > self.max_response and self.up.kind != "api":
            metrics.error(self.up.kind, "response_too_large")
            self.out = None
            self.conn.close()
            self.client.abort()
            self.finished.set_result(False)
            return
        if self.framing == "chunked":
            self.send(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            self.send(data)

    def done(self) -> None:
        if self.finished.done():
            return
        if self.framing == "chunked":
            self.send(b"0\r\n\r\n")
        self.finished.set_result(self.reusable)

    def upgraded(self, tail: bytes) -> None:
        """The upstream switched protocols (101): both sides become a raw tunnel."""
        if not self.upgrade_ok:
            self.conn.close()
            self.fail(UpstreamError(502, "BadGateway", "the upstream switched protocols without being asked"))
            return
        self.conn.tunnel = self.client
        self.conn.exchange = None
        self.client.start_tunnel(self.conn)
        if tail:
            self.client.write(tail)
        if not self.finished.done():
            self.finished.set_result(False)

    def upstream_lost(self) -> None:
        if not self.sent_head:
            self.fail(UpstreamError(502, "UpstreamClosed", "the upstream closed the connection before answering"))
        elif self.framing == "close" and not self.finished.done():
            self.finished.set_result(False)
        elif not self.finished.done():
            self.client.abort()  # a cut body must not look complete
            self.finished.set_result(False)

    def fail(self, exc: UpstreamError) -> None:
        if not self.started.done():
            self.started.set_exception(exc)
        elif not self.finished.done():
            self.client.abort()
            self.finished.set_result(False)


# -- client connections -----------------------------------------------------------------------------

class ClientConn(Flow):
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.s = proxy.settings
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: collections.deque[Request] = collections.deque()
        self.task: asyncio.Task[None] | None = None
        self.closed = False
        self.closing = False
        self.paused = False
        self.write_paused = False
        self.client_ip = ""
        self.tunnel: UpstreamConn | None = None
        self.pending_tunnel: bytes = b""
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._hbytes = 0
        self._current: Request | None = None
        self._exchange: Exchange | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._too_large = False

    # asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client_ip = str(peer[0]) if peer else ""
        self._arm_idle()

    def _arm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = self.proxy.loop.call_later(self.s.idle_timeout_s, self._idle_timeout)

    def _idle_timeout(self) -> None:
        if self.task is None and not self.queue and self.tunnel is None:
            self.close()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        if self._current is not None and self._current.upgrade and self._current.complete:
            self.pending_tunnel += data  # waiting for the upstream's 101
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            req = self._current
            if req is not None:
                req.tail = data[exc.args[0]:]
                req.complete = True
                self.pause_reading()
                req._wake()
        except httptools.HttpParserError as exc:
            if self._too_large:
                return
            self._reject(400, "BadRequest", f"malformed HTTP request: {exc}")

    def _reject(self, status: int, code: str, message: str) -> None:
        metrics.request("bad", status)
        self.write(error_response(status, code, message, keep_alive=False))
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._idle is not None:
            self._idle.cancel()
        if self.tunnel is not None:
            self.tunnel.close()
        for req in self.queue:
            req._wake()
        if self._current is not None:
            self._current._wake()
        ex = self._exchange
        if ex is not None:
            ex.conn.close()  # the answer has nowhere to go; the connection is in an unknown state
            if not ex.started.done():
                ex.started.set_exception(UpstreamError(499, "ClientClosed", "the client went away"))
            if not ex.finished.done():
                ex.finished.set_result(False)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self._exchange is not None:
            self._exchange.conn.pause_reading()
        elif self.tunnel is not None:
            self.tunnel.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._exchange is not None:
            self._exchange.conn.resume_reading()
        elif self.tunnel is not None:
            self.tunnel.resume_reading()

    # httptools
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._hbytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._hbytes += len(url)
        if self._hbytes > self.s.max_header_bytes:
            self._too_large = True
            self._reject(431, "HeadersTooLarge", f"the request line and headers exceed {self.s.max_header_bytes} bytes")
            raise httptools.HttpParserError("too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._hbytes += len(name) + len(value) + 4
        if self._hbytes > self.s.max_header_bytes or len(self._headers) > 200:
            self._too_large = True
            self._reject(431, "HeadersTooLarge", f"the request line and headers exceed {self.s.max_header_bytes} bytes")
            raise httptools.HttpParserError("too large")

    def on_headers_complete(self) -> None:
        p = self.parser
        req = Request(method=p.get_method().decode("ascii", "replace"), target=self._url, headers=self._headers,
                      version=p.get_http_version(), keep_alive=p.should_keep_alive(), upgrade=p.should_upgrade(),
                      client=self)
        index = req.index
        for k, v in self._headers:
            low = k.lower()
            index.setdefault(low, v)
            if low == b"content-length":
                try:
                    req.length = int(v)
                except ValueError:
                    req.length = -1
            elif low == b"transfer-encoding" and b"chunked" in v.lower():
                req.chunked = True
        self._current = req
        self.queue.append(req)
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self.task is None:
            self.task = self.proxy.loop.create_task(self._serve())

    def on_body(self, body: bytes) -> None:
        req = self._current
        if req is not None:
            if req.received + len(body) > self.s.max_body_bytes:
                self._too_large = True
                req.body.clear()
                req.finish()
                self._reject(413, "PayloadTooLarge", f"the request body exceeds {self.s.max_body_bytes} bytes")
                raise httptools.HttpParserError("too large")
            req.feed(body)

    def on_message_complete(self) -> None:
        if self._current is not None and not self._current.upgrade:
            self._current.finish()

    # ours
    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()

    def start_tunnel(self, upstream: UpstreamConn) -> None:
        self.tunnel = upstream
        self.queue.clear()
        data = (self._current.tail if self._current else b"") + self.pending_tunnel
        self.pending_tunnel = b""
        if data:
            upstream.write(data)
        self.resume_reading()

    async def _serve(self) -> None:
        try:
            while self.queue and not self.closed:
                req = self.queue[0]
                try:
                    await self.proxy.handle(req)
                except Exception:  # never let one request take the connection's task down silently
                    log.exception("proxy failure on %s %r", req.method, req.target[:200])
                    if not self.closed:
                        self.write(error_response(500, "ProxyError", "the proxy failed on this request", keep_alive=False))
                    self.close()
                if self.queue and self.queue[0] is req:
                    self.queue.popleft()
                if self.tunnel is not None:
                    return
                if not req.complete and not self.closed:
                    # The handler answered before reading the body: drop the rest of it.
                    while await req.read() is not None:
                        pass
                if self.closing or not req.keep_alive:
                    self.close()
                    return
        finally:
            self.task = None
            if not self.closed and self.tunnel is None:
                self._arm_idle()


# -- the proxy ---------------------------------------------------------------------------------------

def upstream_timeout(up: routes.Upstream, upgrade: bool, default_s: float) -> float:
    """How long the upstream may take to answer. Jupyter answers a kernel's WebSocket handshake only
    once the kernel is ready, and a notebook kernel connects its Spark session first."""
    return max(default_s, NOTEBOOK_WS_TIMEOUT_S) if up.kind == "notebook" and upgrade else default_s


def is_browser(req: Request) -> bool:
    accept = req.header(b"accept")
    return "text/html" in accept and not req.header(b"authorization")


class Proxy:
    def __init__(self, settings: ProxySettings, table: Callable[[], RouteTable], auth: authn.AuthCache, *,
                 session: Any = None, notebooks: NotebookTracker | None = None) -> None:
        self.settings = settings
        self.notebooks = notebooks
        self.table = table
        self.auth = auth
        self.session = session
        self.tls = bool(settings.proxy_tls_cert)
        api = urlsplit(settings.api_url)
        self.api = (api.hostname or "127.0.0.1", api.port or (443 if api.scheme == "https" else 80))
        self.pool = Pool(connect_timeout_s=settings.connect_timeout_s)
        self.loop: asyncio.AbstractEventLoop = asyncio.get_event_loop()

    def protocol(self) -> ClientConn:
        return ClientConn(self)

    async def principal(self, creds: authn.Credentials | None) -> Principal | None:
        if creds is None:
            return None
        hit, principal = self.auth.cached(creds.token)
        if not hit:
            principal = await self.auth.resolve(creds.token, self.table().bootstrap_hash)
        return authn.check_basic_user(creds, principal)

    async def handle(self, req: Request) -> None:
        target = req.target.decode("latin-1")
        client = req.client
        if req.method == "CONNECT":
            await self._forward(req, target, connect=True)
            return
        if not target.startswith("/"):
            if target.lower().startswith("http://"):
                await self._forward(req, target, connect=False)
            else:
                client.write(error_response(400, "BadRequest", "unsupported request target", "target", keep_alive=False))
                client.closing = True
            return
        creds = authn.credentials(req.header(b"authorization"), req.header(b"cookie"), "", forward=False)
        table = self.table()
        if target.startswith("/sig/"):
            principal = await self.principal(creds)
            decision = routes.route_ingress(target, principal, table, api=self.api,
                                            browser=principal is None and is_browser(req))
            if isinstance(decision, routes.Upstream) and decision.kind == "notebook":
                await self._notebook(req, decision, creds, table)
            elif isinstance(decision, routes.Denied) and decision.code in routes.STARTING_CODES \
                    and principal is not None:
                self._starting(req, decision, target, principal, table)
            elif isinstance(decision, routes.Upstream):
                if not authn.csrf_ok(req.method, creds, req.header(b"x-csrf-token")):
                    self._deny(req, routes.Denied(403, "CsrfRequired", "a cookie-authenticated change needs the "
                                                  "X-CSRF-Token header of the session", "X-CSRF-Token"), "sig")
                    return
                await self._pass(req, decision)
            elif isinstance(decision, routes.Denied):
                self._deny(req, decision, "sig")
            return
        decision = routes.route_ingress(target, None, table, api=self.api)
        if isinstance(decision, routes.Upstream):  # the API
            bearer = None  # the API authenticates by itself; only cookies and Basic need the proxy
            if creds is not None and creds.via != "bearer":
                if await self.principal(creds) is None:
                    if creds.via == "basic":
                        # Not a token the user owns: maybe an LDAP password (Livy clients send those).
                        # The API checks it, and refuses what it cannot verify.
                        await self._pass(req, decision)
                        return
                    self._deny(req, routes.unauthenticated(target, browser=False), "api")
                    return
                if not authn.csrf_ok(req.method, creds, req.header(b"x-csrf-token")):
                    self._deny(req, routes.Denied(403, "CsrfRequired", "a cookie-authenticated change needs the "
                                                  "X-CSRF-Token header of the session", "X-CSRF-Token"), "api")
                    return
                bearer = creds.token
            await self._pass(req, decision, bearer=bearer)
        elif isinstance(decision, routes.Local):
            await self._local(req, decision.name, creds)
        elif isinstance(decision, routes.Denied) and (decision.status == 401 or decision.code == "LoginRequired"):
            # /platform/...: the console, for an authenticated caller only (a browser goes to the login).
            principal = await self.principal(creds)
            decision = routes.route_ingress(target, principal, table, api=self.api, browser=is_browser(req))
            if isinstance(decision, routes.Upstream) and decision.kind == "console":
                # The console's HTML forms cannot send X-CSRF-Token: it checks their csrf_token field itself.
                await self._pass(req, decision, bearer=creds.token if creds is not None else None)
            elif isinstance(decision, routes.Local):
                await self._local(req, decision.name, creds)
            else:  # only the console's upstream or a denial can answer a /platform/ path
                self._deny(req, decision if isinstance(decision, routes.Denied) else routes.Denied(
                    404, "NotFound", "no such path"), "other")
        else:
            self._deny(req, decision, "other")

    async def _notebook(self, req: Request, up: routes.Upstream, creds: authn.Credentials | None,
                        table: RouteTable) -> None:
        """A user's own Jupyter server. A cookie-authenticated change or WebSocket must come from
        this origin (JupyterLab cannot send the session's X-CSRF-Token; Jupyter's own XSRF check
        is off for the token the proxy injects, so the Origin check stands in for it)."""
        if creds is not None and creds.via == "cookie" and (req.method in authn.MUTATING or req.upgrade) \
                and not routes.same_origin(req.header(b"origin"), req.header(b"host")):
            self._deny(req, routes.Denied(403, "CrossOrigin", "a change to your notebook server must come from "
                                          "this site's pages", "Origin"), "notebook")
            return
        if self.notebooks is not None:
            self.notebooks.touch(table, up.tenant, up.sig, up.user)
        await self._pass(req, up)

    def _starting(self, req: Request, d: routes.Denied, target: str, principal: Principal,
                  table: RouteTable) -> None:
        """An enabled server with no route yet: 503 + Retry-After, a page that reloads itself for a
        browser. For a notebook server, record the demand first (the scaler starts it on that)."""
        _, _, tenant, sig = target.split("?", 1)[0].split("/", 4)[:4]
        if d.code == routes.STARTING and self.notebooks is not None:
            self.notebooks.touch(table, tenant, sig, authz_fold(principal.name))
        extra = [(b"Retry-After", str(starting.RETRY_AFTER_S).encode())]
        if starting.wants_html(req.header(b"accept")):
            req.client.write(simple_response(d.status, starting.page(d.code, tenant, sig), b"text/html; charset=utf-8",
                                             extra=extra, keep_alive=req.keep_alive))
        else:
            req.client.write(error_response(d.status, d.code, d.message, d.field, extra=extra,
                                            keep_alive=req.keep_alive, reason=starting.REASON))
        metrics.request("notebook" if d.code == routes.STARTING else "history", d.status)

    async def _local(self, req: Request, name: str, creds: authn.Credentials | None) -> None:
        if name == "healthz":
            ok = self.table().ok
            body = json.dumps({"status": "ok" if ok else "starting"}).encode()
            req.client.write(simple_response(200 if ok else 503, body, b"application/json",
                                             keep_alive=req.keep_alive))
            metrics.request("local", 200 if ok else 503)
            return
        if self.session is None:
            self._deny(req, routes.Denied(404, "NotEnabled", "sessions are not enabled"), "session")
            return
        body = b""
        while (piece := await req.read()) is not None:
            body += piece
        status, payload = await self.session.handle(name, req, body, creds)
        req.client.write(payload)
        metrics.request("session", status)

    def _deny(self, req: Request, d: routes.Denied, route: str) -> None:
        extra: list[tuple[bytes, bytes]] = []
        if d.location:
            extra.append((b"Location", d.location.encode("latin-1")))
        if d.challenge:
            extra.append((b"Proxy-Authenticate" if d.status == 407 else b"WWW-Authenticate", d.challenge.encode()))
        req.client.write(error_response(d.status, d.code, d.message, d.field, extra=extra, keep_alive=req.keep_alive))
        metrics.request(route, d.status)

    async def _forward(self, req: Request, target: str, *, connect: bool) -> None:
        creds = authn.credentials("", "", req.header(b"proxy-authorization"), forward=True)
        principal = await self.principal(creds)
        if connect:
            host, _, port_text = target.rpartition(":")
            path = ""
        else:
            parts = urlsplit(target)
            host, port_text = parts.hostname or "", str(parts.port or 80)
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
        try:
            port = int(port_text)
        except ValueError:
            self._deny(req, routes.Denied(400, "BadRequest", "the request names no valid port", "target"), "forward")
            req.client.closing = True
            return
        decision = routes.route_forward(host.strip("[]"), port, path, principal, self.table())
        if isinstance(decision, routes.Denied):
            self._deny(req, decision, "forward")
            if connect:
                req.client.closing = True
            return
        if connect:
            await self._connect(req, decision)
        else:
            await self._pass(req, decision)

    async def _connect(self, req: Request, up: routes.Upstream) -> None:
        client = req.client
        try:
            conn, _ = await self.proxy_connect(up)
        except UpstreamError as exc:
            self._deny(req, routes.Denied(exc.status, exc.code, exc.message), "forward")
            client.closing = True
            return
        client.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        conn.tunnel = client
        client.start_tunnel(conn)
        metrics.request("forward", 200)

    async def proxy_connect(self, up: routes.Upstream) -> tuple[UpstreamConn, bool]:
        return await self.pool.acquire(up.host, up.port, fresh=True)

    async def _pass(self, req: Request, up: routes.Upstream, *, bearer: str | None = None) -> None:
        """Forward one request to `up` and stream the answer back."""
        client = req.client
        upgrade = req.upgrade and req.method != "CONNECT"
        protocol = req.header(b"upgrade").encode("latin-1") if upgrade else b""
        if req.header(b"expect").lower() == "100-continue" and not req.complete:
            client.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        t0 = time.perf_counter()
        for attempt in (0, 1):
            try:
                conn, reused = await self.pool.acquire(up.host, up.port, fresh=upgrade)
            except UpstreamError as exc:
                metrics.error(up.kind, exc.code)
                self._deny(req, routes.Denied(exc.status, exc.code, exc.message), up.kind)
                return
            if client.closed:
                self.pool.release(conn)
                return
            ex = Exchange(client, req, up, conn, max_response=self.settings.max_response_bytes)
            conn.exchange = ex
            client._exchange = ex
            ex.timer = self.loop.call_later(upstream_timeout(up, upgrade, self.settings.upstream_timeout_s), ex.timed_out)
            try:
                await self._send(req, up, conn, bearer=bearer, upgrade=protocol)
                await ex.started
                break
            except UpstreamError as exc:
                ex.timer.cancel()
                client._exchange = None
                if exc.status == 499:
                    return
                conn.close()
                # A pooled connection the upstream had just closed: try once more on a new one,
                # when nothing of the body was consumed.
                if attempt == 0 and reused and exc.code == "UpstreamClosed" and req.received == 0:
                    continue
                metrics.error(up.kind, exc.code)
                self._deny(req, routes.Denied(exc.status, exc.code, exc.message), up.kind)
                return
            except TimeoutError:
                client._exchange = None
                conn.close()
                metrics.error(up.kind, "UpstreamTimeout")
                self._deny(req, routes.Denied(504, "UpstreamTimeout", "the upstream did not answer within "
                                              f"{self.settings.upstream_timeout_s:g}s"), up.kind)
                return
        metrics.upstream_latency(up.kind, time.perf_counter() - t0)
        reusable = await ex.finished
        client._exchange = None
        metrics.request(up.kind, ex.status)
        if conn.tunnel is not None:
            return
        if reusable and req.complete and ex.framing != "close":
            self.pool.release(conn)
        else:
            conn.close()
        if ex.framing == "close" or ex.status == 101:
            client.closing = True
        if client.paused and client.tunnel is None and not req.buffered:
            client.resume_reading()

    async def _send(self, req: Request, up: routes.Upstream, conn: UpstreamConn, *, bearer: str | None,
                    upgrade: bytes) -> None:
        if req.chunked:
            framing = "chunked"
        elif req.length:
            framing = "length"
        else:
            framing = "none"
        conn.write(rewrite.request_head(req.method.encode(), up.target.encode("latin-1"), req.headers, kind=up.kind,
                                        upstream_host=up.host, upstream_port=up.port, client_ip=req.client.client_ip,
                                        tls=self.tls, bearer=bearer, prefix=up.prefix, body=framing,
                                        content_length=req.length or 0, upgrade=upgrade, token=up.token))
        if framing == "none" or upgrade:
            return
        while (piece := await req.read()) is not None:
            if conn.closed:
                raise UpstreamError(502, "UpstreamClosed", "the upstream closed the connection before answering")
            conn.write(b"%x\r\n%b\r\n" % (len(piece), piece) if framing == "chunked" else piece)
            if conn.exchange is not None and conn.exchange.started.done():
                break  # it answered early (e.g. 413): stop sending
        if framing == "chunked" and not conn.closed:
            conn.write(b"0\r\n\r\n")
