"""Header rewriting between client and upstream. Pure, tested with recorded Spark answers.

Request: hop-by-hop headers go; `X-Forwarded-For` is the client's chain with the proxy's peer
appended (the API believes it only from a trusted proxy, and then only from the right: see
spaas/forwarded.py); any other client-sent `X-Forwarded-*`/`Forwarded` is dropped and the proxy's
own `X-Forwarded-Proto/Host/Prefix` are set; `Host` names the upstream. Tokens never
reach a Spark UI (which runs next to tenant code): `Authorization` is dropped and the proxy's
cookies are cut from `Cookie`; the API gets the caller's token as `Authorization: Bearer`, a
user's notebook server its own token as `Authorization: token` (the user never sees it).

Response: hop-by-hop headers go, the framing is the proxy's, `Set-Cookie` from a Spark UI is
dropped (the platform's origin is shared; a notebook server's cookies stay, scoped to its own
path), and `Location` never names an internal host or port:
an absolute URL keeps only its path, query and fragment, and a SIG's paths get its prefix.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

Headers = list[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"trailers",
                        b"transfer-encoding", b"upgrade", b"proxy-authorization", b"proxy-authenticate"})
SESSION_COOKIE = "spaas_session"
CSRF_COOKIE = "spaas_csrf"
OUR_COOKIES = (SESSION_COOKIE, CSRF_COOKIE)


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    """Header names listed in `Connection` (also hop-by-hop)."""
    out: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            out.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return out


def strip_our_cookies(value: str) -> str:
    kept = [c.strip() for c in value.split(";") if c.strip() and c.strip().split("=", 1)[0] not in OUR_COOKIES]
    return "; ".join(kept)


def request_head(method: bytes, target: bytes, headers: Headers, *, kind: str, upstream_host: str,
                 upstream_port: int, client_ip: str, tls: bool, bearer: str | None = None, prefix: str = "",
                 body: str = "none", content_length: int = 0, upgrade: bytes = b"", token: str = "") -> bytes:
    """The request line and headers sent upstream.

    `token`: a notebook server's own token, sent as `Authorization: token ...` (kind "notebook").

    `body`: "none", "length" (`content_length` bytes follow) or "chunked" (the proxy re-chunks).
    `upgrade`: the protocol of a WebSocket (or other) upgrade to pass through.
    """
    drop = HOP_BY_HOP | connection_tokens(headers)
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: " + f"{upstream_host}:{upstream_port}".encode()]
    orig_host = b""
    chain: list[bytes] = []
    for name, value in headers:
        low = name.lower()
        if low == b"x-forwarded-for":
            chain += [hop.strip() for hop in value.split(b",") if hop.strip()]
            continue
        if low in drop or low in (b"content-length", b"expect", b"forwarded") or low.startswith(b"x-forwarded-"):
            continue
        if low == b"host":
            orig_host = value
            continue
        if low == b"authorization" and (kind not in ("api", "console") or bearer is not None):
            continue
        if low == b"cookie":
            kept = strip_our_cookies(value.decode("latin-1"))
            if kept:
                lines.append(b"Cookie: " + kept.encode("latin-1"))
            continue
        lines.append(name + b": " + value)
    if kind in ("api", "console") and bearer:
        lines.append(b"Authorization: Bearer " + bearer.encode())
    if kind == "notebook" and token:
        lines.append(b"Authorization: token " + token.encode())
    lines.append(b"X-Forwarded-For: " + b", ".join([*chain, client_ip.encode()]))
    lines.append(b"X-Forwarded-Proto: " + (b"https" if tls else b"http"))
    if orig_host:
        lines.append(b"X-Forwarded-Host: " + orig_host)
    if prefix:
        lines.append(b"X-Forwarded-Prefix: " + prefix.encode())
    if prefix and kind == "history":
        # Spark's UIs (UIUtils.uiRoot) prepend this to every link they write: Knox's header.
        lines.append(b"X-Forwarded-Context: " + prefix.encode())
    if body == "length":
        lines.append(b"Content-Length: " + str(content_length).encode())
    elif body == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
    if upgrade:
        lines.append(b"Connection: Upgrade")
        lines.append(b"Upgrade: " + upgrade)
    else:
        lines.append(b"Connection: keep-alive")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def repair_spark_proxy_id(path: str, target: str) -> str:
    """Spark's master reverse proxy (`/proxy/<id>/...`) sometimes names a truncated id in the
    `Location` it passes on from a worker or driver: it cuts "/proxy/" off the servlet's path
    info, which at times no longer holds "/proxy" (seen on 3.5 and 4.x, depending on timing and
    the Host header): `/proxy/app-2026...-0000/jobs` redirects to `/proxy/26...-0000/jobs/`,
    which the master refuses (403). `target` is the path the request carried upstream; a
    Location under `/proxy/` whose id is that request's id less its first six characters gets
    the whole id back. Anything else is left as it is."""
    if not target.startswith("/proxy/") or not path.startswith("/proxy/"):
        return path
    wanted = target[len("/proxy/"):].split("/", 1)[0].split("?", 1)[0]
    got, sep, rest = path[len("/proxy/"):].partition("/")
    if len(wanted) > 6 and got == wanted[6:]:
        return f"/proxy/{wanted}{sep}{rest}"
    return path


def rewrite_location(value: str, *, prefix: str, target: str = "") -> str:
    """A `Location` that names no internal host: absolute URLs keep path, query and fragment; a
    path outside the SIG's public prefix gets it. Relative references resolve under the page.
    `target`: the upstream request's path (see `repair_spark_proxy_id`)."""
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        value = urlunsplit(("", "", repair_spark_proxy_id(parts.path or "/", target), parts.query, parts.fragment))
    elif value.startswith("/"):
        value = urlunsplit(("", "", repair_spark_proxy_id(parts.path, target), parts.query, parts.fragment))
    if not prefix or not value.startswith("/"):
        return value
    if value == prefix or value.startswith(prefix + "/") or value.startswith(prefix + "?"):
        return value
    return prefix + value


def response_head(status: int, reason: bytes, headers: Headers, *, kind: str, prefix: str, framing: str,
                  keep_alive: bool, upgrade: bool = False, target: str = "") -> bytes:
    """Status line and headers sent to the client.

    `framing`: "length" (the upstream's Content-Length stands), "chunked" (the proxy re-chunks),
    "close" (the body ends when the connection closes) or "none" (no body).
    """
    drop = HOP_BY_HOP | connection_tokens(headers)
    if upgrade:
        drop = drop - {b"upgrade"}
    lines = [b"HTTP/1.1 " + str(status).encode() + b" " + (reason or b"-")]
    for name, value in headers:
        low = name.lower()
        if low in drop or (low == b"content-length" and framing not in ("length", "none")):
            continue
        if low == b"set-cookie" and kind in ("sig", "history"):
            continue
        if low == b"location" and kind in ("sig", "history", "api", "notebook"):
            value = rewrite_location(value.decode("latin-1"), prefix=prefix,
                                     target=target if kind == "sig" else "").encode("latin-1")
        lines.append(name + b": " + value)
    if framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
    if upgrade:
        lines.append(b"Connection: Upgrade")
    elif not keep_alive or framing == "close":
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"
