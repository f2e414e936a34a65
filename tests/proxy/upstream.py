"""A small real HTTP server (aiohttp, in a thread) standing in for a Spark UI or the API in
proxy tests: it echoes what it received, redirects to its own address, streams, sets a cookie
and echoes WebSocket messages. The Spark UIs themselves are tested in tests/e2e."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import WSMsgType, web

from spaas.stack import free_port


def make_app() -> web.Application:
    async def page(request: web.Request) -> web.StreamResponse:
        return web.Response(text='<html><a href="/sig/acme/etl/jobs/">jobs</a><img src="app/x.png"></html>',
                            content_type="text/html")

    async def echo_headers(request: web.Request) -> web.StreamResponse:
        return web.json_response({"path": request.path_qs, "method": request.method,
                                  "headers": {k: v for k, v in request.headers.items()}})

    async def echo_body(request: web.Request) -> web.StreamResponse:
        data = await request.read()
        return web.json_response({"size": len(data), "headers": dict(request.headers),
                                  "head": data[:32].decode("latin-1")})

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"http://{request.host}/proxy/app-1/jobs/")

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_type = "text/plain"
        await resp.prepare(request)
        for i in range(5):
            await resp.write(f"line {i}\n".encode())
            await asyncio.sleep(0.05)
        await resp.write_eof()
        return resp

    async def cookie(request: web.Request) -> web.StreamResponse:
        resp = web.Response(text="ok")
        resp.set_cookie("spaas_csrf", "evil")
        return resp

    async def ws(request: web.Request) -> web.StreamResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == WSMsgType.TEXT:
                await sock.send_str("echo: " + msg.data)
        return sock

    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_get("/", page)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/stream", stream)
    app.router.add_get("/cookie", cookie)
    app.router.add_get("/ws", ws)
    app.router.add_post("/{tail:.*}", echo_body)
    app.router.add_put("/{tail:.*}", echo_body)
    app.router.add_get("/{tail:.*}", echo_headers)
    app.router.add_delete("/{tail:.*}", echo_headers)
    return app


class Upstreams:
    """`count` servers of the same app, each on its own free port, in one background loop."""

    def __init__(self, count: int) -> None:
        self.ports = [free_port() for _ in range(count)]
        self.loop = asyncio.new_event_loop()
        self._runners: list[web.AppRunner] = []
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _start(self) -> None:
        for port in self.ports:
            runner = web.AppRunner(make_app(), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self._runners.append(runner)

    def start(self) -> Upstreams:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def stop(self) -> None:
        async def cleanup() -> None:
            for runner in self._runners:
                await runner.cleanup()
        asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
