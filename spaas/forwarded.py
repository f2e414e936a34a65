"""The client's address behind proxies the platform trusts (`X-Forwarded-For`).

A request's direct peer is its client unless the peer is a trusted proxy (`SPAAS_TRUSTED_PROXIES`:
IPs, CIDRs or host names such as compose's `proxy`). Then `X-Forwarded-For` is read from the
right, each proxy having appended the address it saw: trusted hops are skipped and the first
untrusted one is the client. Whatever a client wrote to the left of that is never believed, so
a client cannot choose the address that audit records and login rate limits see.

`client_address()` is pure; `TrustedProxies` resolves host names (cached, `ttl_s`); `ForwardedFor`
is the WSGI middleware that sets `REMOTE_ADDR` to the result (the peer stays in `spaas.peer`).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]" or "[::1]:443"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


def client_address(peer: str, forwarded_for: Iterable[str], trusts: Callable[[str], bool]) -> str:
    """The client of a request from `peer` with these `X-Forwarded-For` values. Pure.

    Unless `peer` is trusted, `peer`. Otherwise the rightmost address that is not trusted (what
    the last trusted proxy saw); an entry that is no IP address ends the walk at the hop that
    added it; if every hop is trusted, the leftmost."""
    if not trusts(peer):
        return peer
    hops = [item.strip() for value in forwarded_for for item in value.split(",") if item.strip()]
    current = peer
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            return current
        current = str(ip)
        if not trusts(current):
            return current
    return current


class TrustedProxies:
    """Whether an address is one of `items` (IPs, CIDRs, or host names resolved every `ttl_s`)."""

    def __init__(self, items: Iterable[str], *, ttl_s: float = 30.0,
                 resolve: Callable[[str], set[str]] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.networks: list[Network] = []
        self.names: list[str] = []
        for item in (i.strip() for i in items):
            if not item:
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.names.append(item)
        self._ttl = ttl_s
        self._resolve = resolve or _resolve
        self._clock = clock
        self._resolved: set[str] = set()
        self._at = float("-inf")
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.networks or self.names)

    def _names(self) -> set[str]:
        with self._lock:
            if self.names and self._clock() - self._at >= self._ttl:
                found: set[str] = set()
                for name in self.names:
                    found |= self._resolve(name)
                self._resolved, self._at = found, self._clock()
            return self._resolved

    def __call__(self, address: str) -> bool:
        ip = _ip(address)
        if ip is None:
            return False
        if any(ip in net for net in self.networks):
            return True
        return bool(self.names) and str(ip) in self._names()


def _resolve(name: str) -> set[str]:
    try:
        return {str(_ip(str(info[4][0])) or info[4][0]) for info in socket.getaddrinfo(name, None)}
    except OSError as exc:
        log.warning("trusted proxy %s does not resolve (not trusted until it does): %s", name, exc)
        return set()


class ForwardedFor:
    """WSGI middleware: `REMOTE_ADDR` becomes `client_address()` of the request."""

    def __init__(self, app: Any, trusts: TrustedProxies) -> None:
        self.app = app
        self.trusts = trusts

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        peer = str(environ.get("REMOTE_ADDR") or "")
        environ["spaas.peer"] = peer
        if self.trusts:
            forwarded = environ.get("HTTP_X_FORWARDED_FOR")
            environ["REMOTE_ADDR"] = client_address(peer, [forwarded] if forwarded else [], self.trusts)
        return self.app(environ, start_response)
