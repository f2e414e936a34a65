"""`python -m services.proxy`: serve ingress and forward mode on one port until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
import threading
from urllib.parse import urlsplit

from spaas.auth import Tokens
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.observability import serve_health, setup_logging
from spaas.settings import ProxySettings

from services.proxy.authn import AuthCache
from services.proxy.notebooks import NotebookTracker
from services.proxy.server import Proxy
from services.proxy.session import Sessions
from services.proxy.table import TableRefresher, read_table

log = logging.getLogger("proxy")


def _addresses(host: str, port: int) -> set[tuple[str, int]]:
    out = {(host, port)}
    try:
        out |= {(str(info[4][0]), port) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except OSError:
        pass
    return out


def platform_addresses(settings: ProxySettings) -> frozenset[tuple[str, int]]:
    """What forward mode must never reach: etcd, Redis, the API, the proxy itself, and `deny`."""
    out: set[tuple[str, int]] = set()
    for url, default in ((settings.etcd_url, 2379), (settings.redis_url, 6379), (settings.api_url, 80)):
        parts = urlsplit(url)
        out |= _addresses(parts.hostname or "127.0.0.1", parts.port or default)
    out |= _addresses(settings.host, settings.port)
    for item in settings.proxy_deny:
        host, _, port = item.rpartition(":")
        if port.isdigit():
            out |= _addresses(host, int(port))
    return frozenset(out)


def tls_context(settings: ProxySettings) -> ssl.SSLContext | None:
    if not settings.proxy_tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(settings.proxy_tls_cert, settings.proxy_tls_key or None)
    return ctx


async def serve(settings: ProxySettings, stop: threading.Event) -> None:
    store = EtcdStore.from_settings(settings)
    keys = Keys(settings.etcd_prefix)
    deny = platform_addresses(settings)
    refresher = TableRefresher(lambda: read_table(store, keys, deny=deny), interval_s=settings.refresh_s, stop=stop)
    try:
        refresher.refresh()
    except Exception as exc:  # keep starting: the loop retries with backoff
        log.warning("first route table read failed: %s", exc)
    refresher.start()
    auth = AuthCache(Tokens(store, keys).lookup, ttl_s=settings.auth_cache_s,
                     admin_users=settings.cluster_admin_users, admin_groups=settings.cluster_admin_groups)
    proxy = Proxy(settings, lambda: refresher.current, auth, notebooks=NotebookTracker(store.put, keys))
    proxy.session = Sessions(settings, proxy.principal, forget=auth.forget)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(proxy.protocol, settings.host, settings.port, ssl=tls_context(settings),
                                      backlog=1024, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    health = serve_health(settings.host, settings.health_port, lambda: refresher.current.ok) \
        if settings.health_port else None
    log.info("proxy listening on %s://%s:%d (API %s; etcd %s, prefix %s)", "https" if settings.proxy_tls_cert else "http",
             settings.host, port, settings.api_url, settings.etcd_url, settings.etcd_prefix)
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    log.info("stopping")
    stop.set()
    server.close()
    proxy.pool.close_all()
    if health is not None:
        health.shutdown()


def main() -> None:
    settings = ProxySettings.from_env()
    setup_logging("proxy", settings.log_level)
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # uvloop is in requirements.txt; asyncio's own loop works too, only slower
        log.warning("uvloop not installed; using asyncio's default event loop")
    asyncio.run(serve(settings, threading.Event()))


if __name__ == "__main__":
    main()
