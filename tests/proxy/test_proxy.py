"""The proxy process end to end over real etcd and real HTTP servers: auth, isolation, ingress
and forward mode, sessions and CSRF, streaming, limits, WebSockets, TLS."""

from __future__ import annotations

import asyncio
import base64
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from tests.proxy.conftest import World, start_proxy
from spaas.stack import stop_pid


def get(proxy: str, path: str, token: str | None = None, **kw: object) -> requests.Response:
    headers = dict(kw.pop("headers", {}) or {})  # type: ignore[call-overload]
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.get(proxy + path, headers=headers, allow_redirects=False, timeout=10, **kw)  # type: ignore[arg-type]


def test_health(proxy: str) -> None:
    assert get(proxy, "/healthz").json() == {"status": "ok"}


def test_no_credentials_401_for_clients_login_redirect_for_browsers(proxy: str) -> None:
    resp = get(proxy, "/sig/acme/etl/")
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "Unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    resp = get(proxy, "/sig/acme/etl/jobs/?id=1", headers={"Accept": "text/html,application/xhtml+xml"})
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/platform/login?next=%2Fsig%2Facme%2Fetl%2Fjobs%2F%3Fid%3D1"
    assert get(proxy, "/sig/acme/etl/", "spaas_wrong").status_code == 401


def test_member_reaches_its_sig_by_bearer_and_basic(proxy: str, world: World) -> None:
    resp = get(proxy, "/sig/acme/etl/", world.alice)
    assert resp.status_code == 200 and 'href="/sig/acme/etl/jobs/"' in resp.text
    resp = requests.get(proxy + "/sig/acme/etl/some/page?x=1", auth=("alice", world.alice), timeout=10)
    assert resp.status_code == 200 and resp.json()["path"] == "/some/page?x=1"
    # Basic must name the token's owner; the bootstrap token's owner is "admin".
    assert requests.get(proxy + "/sig/acme/etl/", auth=("bob", world.alice), timeout=10).status_code == 401
    assert requests.get(proxy + "/sig/acme/etl/", auth=("admin", world.admin), timeout=10).status_code == 200
    # No trailing slash: redirected onto the SIG's path.
    resp = get(proxy, "/sig/acme/etl", world.alice)
    assert resp.status_code == 302 and resp.headers["Location"] == "/sig/acme/etl/"


@pytest.mark.parametrize("path", ["/sig/acme/etl/", "/sig/acme/etl/proxy/app-1/jobs/", "/sig/acme/etl/history/",
                                  "/sig/acme/etl/notebooks/alice/", "/sig/acme/etl", "/sig/acme/etl/static/x.js"])
def test_other_tenant_gets_the_same_404_as_a_missing_sig(proxy: str, world: World, path: str) -> None:
    theirs = get(proxy, path, world.bob)
    # What a member of acme gets for a SIG that does not exist, at the same kind of path.
    missing = get(proxy, path.replace("/acme/etl", "/acme/ghost"), world.alice)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == {"error": {"code": "NotFound", "message": "SIG 'etl' not found in tenant 'acme'",
                                       "field": "sig"}}
    assert missing.json()["error"]["message"] == "SIG 'ghost' not found in tenant 'acme'"


def test_reserved_paths_and_unknown_paths(proxy: str, world: World) -> None:
    for path, field in (("/sig/acme/etl/history/", "history"), ("/sig/acme/etl/notebooks/alice/lab", "notebooks")):
        resp = get(proxy, path, world.alice)
        assert resp.status_code == 404 and resp.json()["error"] == {
            "code": "NotEnabled", "message": resp.json()["error"]["message"], "field": field}
    assert get(proxy, "/platform/").status_code == 401
    assert get(proxy, "/elsewhere", world.alice).status_code == 404
    # Dot segments (clients normalise them; a raw request may not) and encoded slashes are refused.
    import http.client
    host, port = proxy.split("//")[1].split(":")
    for raw in ("/sig/acme/etl/a/../../../other/x/", "/sig/acme/etl/%2F..%2Fx"):
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("GET", raw, headers={"Authorization": f"Bearer {world.alice}"})
        assert conn.getresponse().status == 400, raw
        conn.close()
    # A SIG with no running master: the member learns it is not running.
    assert get(proxy, "/sig/acme/idle/", world.alice).status_code == 503
    assert get(proxy, "/sig/acme/idle/", world.bob).status_code == 404


def test_location_never_names_an_internal_host(proxy: str, world: World) -> None:
    resp = get(proxy, "/sig/acme/etl/redirect", world.alice)
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/sig/acme/etl/proxy/app-1/jobs/"


def test_tokens_and_cookies_never_reach_a_spark_ui(proxy: str, world: World) -> None:
    resp = get(proxy, "/sig/acme/etl/echo", world.alice,
               headers={"Cookie": "spaas_session=abc; theme=dark; spaas_csrf=x", "X-Forwarded-For": "6.6.6.6"})
    seen = resp.json()["headers"]
    assert "Authorization" not in seen
    assert seen["Cookie"] == "theme=dark"
    assert seen["X-Forwarded-For"] == "127.0.0.1" and seen["X-Forwarded-Prefix"] == "/sig/acme/etl"
    assert seen["Host"] == f"127.0.0.1:{world.master_port}"
    resp = get(proxy, "/sig/acme/etl/cookie", world.alice)
    assert resp.status_code == 200 and "Set-Cookie" not in resp.headers


def test_api_passes_unchanged_and_streams(proxy: str, world: World) -> None:
    resp = get(proxy, "/api/v1/tenants?x=1", world.alice)
    assert resp.json()["path"] == "/api/v1/tenants?x=1"
    assert resp.json()["headers"]["Authorization"] == f"Bearer {world.alice}"
    # No credentials: the API decides (its public endpoints stay public).
    assert "Authorization" not in get(proxy, "/api/v1/healthz").json()["headers"]
    # Basic becomes the bearer token the API understands.
    resp = requests.get(proxy + "/api/v1/tenants", auth=("alice", world.alice), timeout=10)
    assert resp.json()["headers"]["Authorization"] == f"Bearer {world.alice}"
    # Basic that is no token of the user's (an LDAP password, as Livy clients send): the API checks it.
    resp = requests.get(proxy + "/api/v1/tenants/acme/sigs/etl/livy/sessions", auth=("alice", "ldap-secret"),
                        timeout=10)
    assert resp.json()["headers"]["Authorization"] == "Basic " + base64.b64encode(b"alice:ldap-secret").decode()
    body = b"x" * (3 * 1024 * 1024 + 7)
    resp = requests.post(proxy + "/api/v1/files", data=body, headers={"Authorization": f"Bearer {world.alice}"},
                         timeout=30)
    assert resp.json()["size"] == len(body)

    def chunks():  # a chunked upload
        for _ in range(4):
            yield b"y" * 1000
    resp = requests.post(proxy + "/api/v1/files", data=chunks(), timeout=30)
    assert resp.json()["size"] == 4000
    with requests.get(proxy + "/sig/acme/etl/stream", headers={"Authorization": f"Bearer {world.alice}"},
                      stream=True, timeout=10) as resp:
        lines = [line for line in resp.iter_lines() if line]
    assert lines == [f"line {i}".encode() for i in range(5)]


def test_session_cookie_and_csrf(proxy: str, world: World) -> None:
    http = requests.Session()
    resp = http.post(proxy + "/platform/session", json={"token": world.alice}, timeout=10)
    assert resp.status_code == 200 and resp.json()["user"] == "alice"
    csrf = resp.json()["csrf_token"]
    cookies = resp.headers["Set-Cookie"]
    assert "spaas_session=" in cookies and "HttpOnly" in cookies and "SameSite=Lax" in cookies
    assert "Secure" not in cookies  # plain HTTP here; see the TLS test
    assert http.get(proxy + "/platform/session", timeout=10).json() == {"user": "alice", "csrf_token": csrf}
    # The console (the API's /platform pages) gets the session's token as a bearer header; its forms
    # carry the CSRF token as a field, which the console checks (the proxy lets them through).
    seen = http.post(proxy + "/platform/t/acme/x", data={"csrf_token": csrf}, timeout=10).json()["headers"]
    assert seen["Authorization"] == f"Bearer {world.alice}" and "spaas_session" not in seen.get("Cookie", "")
    assert http.get(proxy + "/sig/acme/etl/", timeout=10).status_code == 200
    seen = http.get(proxy + "/api/v1/tenants", timeout=10).json()["headers"]
    assert seen["Authorization"] == f"Bearer {world.alice}" and "spaas_session" not in seen.get("Cookie", "")
    # A cookie-authenticated change needs the CSRF token.
    resp = http.post(proxy + "/api/v1/tenants", json={}, timeout=10)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "CsrfRequired"
    assert http.post(proxy + "/api/v1/tenants", json={}, headers={"X-CSRF-Token": "nope"}, timeout=10).status_code == 403
    assert http.post(proxy + "/api/v1/tenants", json={}, headers={"X-CSRF-Token": csrf}, timeout=10).status_code == 200
    # A bearer caller needs none.
    assert requests.post(proxy + "/api/v1/tenants", json={}, headers={"Authorization": f"Bearer {world.alice}"},
                         timeout=10).status_code == 200
    assert http.post(proxy + "/platform/session", json={"token": "spaas_bad"}, timeout=10).status_code == 401
    assert http.delete(proxy + "/platform/session", headers={"X-CSRF-Token": csrf}, timeout=10).status_code == 200
    assert http.get(proxy + "/sig/acme/etl/", timeout=10).status_code == 401


def test_login_form_sets_the_session_and_goes_next(proxy: str, world: World) -> None:
    page = get(proxy, "/platform/login?next=/sig/acme/etl/")
    assert page.status_code == 200 and 'name="next" value="/sig/acme/etl/"' in page.text
    resp = requests.post(proxy + "/platform/login", data={"token": world.alice, "next": "/sig/acme/etl/"},
                         allow_redirects=False, timeout=10)
    assert resp.status_code == 303 and resp.headers["Location"] == "/sig/acme/etl/"
    resp = requests.post(proxy + "/platform/login", data={"token": world.alice, "next": "https://evil.example/"},
                         allow_redirects=False, timeout=10)
    assert resp.headers["Location"] == "/"
    assert requests.post(proxy + "/platform/login", data={"token": "spaas_bad"}, timeout=10).status_code == 401


def forward(proxy: str, url: str, auth: tuple[str, str] | None) -> requests.Response:
    proxies = {"http": proxy.replace("http://", f"http://{auth[0]}:{auth[1]}@") if auth else proxy}
    return requests.get(url, proxies=proxies, allow_redirects=False, timeout=10)


def test_forward_mode(proxy: str, world: World) -> None:
    me = ("alice", world.alice)
    master = f"http://acme-etl-master-0:{world.master_port}"
    resp = forward(proxy, master + "/", None)
    assert resp.status_code == 407 and resp.headers["Proxy-Authenticate"].startswith("Basic")
    resp = forward(proxy, master + "/echo?q=1", me)
    assert resp.status_code == 200 and resp.json()["path"] == "/echo?q=1"
    assert "Proxy-Authorization" not in resp.json()["headers"]
    # The registered IP with a registered port works as well as the name; the worker too.
    assert forward(proxy, f"http://127.0.0.1:{world.worker_port}/w", me).json()["path"] == "/w"
    # The reverse-proxy links (/sig/t/s/...) work in forward mode: they go to the master.
    assert forward(proxy, f"http://acme-etl-worker-0:{world.worker_port}/sig/acme/etl/x", me).status_code == 200
    refused = [
        f"http://other-x-master-0:{world.other_port}/",  # another tenant's SIG
        f"http://127.0.0.1:{world.other_port}/",
        f"http://acme-etl-master-0:{world.worker_port}/",  # a port the host did not register
        f"http://127.0.0.1:{world.api_port}/",  # the platform's own API
        "http://example.com/",  # not a SIG host at all
    ]
    for url in refused:
        resp = forward(proxy, url, me)
        assert resp.status_code == 403, url
        assert resp.json()["error"]["code"] == "ProxyRefused"
    assert forward(proxy, f"http://other-x-master-0:{world.other_port}/", ("bob", world.bob)).status_code == 200
    assert forward(proxy, master + "/", ("bob", world.alice)).status_code == 407  # user is not the token's owner


def _connect(proxy: str, target: str, auth: str | None) -> bytes:
    host, port = proxy.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        if auth:
            import base64
            head += f"Proxy-Authorization: Basic {base64.b64encode(auth.encode()).decode()}\r\n"
        sock.sendall(head.encode() + b"\r\n")
        answer = sock.recv(4096)
        if b" 200 " not in answer.split(b"\r\n")[0]:
            return answer
        sock.sendall(b"GET /tunnelled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return answer + data


def test_connect_tunnels_only_to_visible_sig_ports(proxy: str, world: World) -> None:
    out = _connect(proxy, f"acme-etl-master-0:{world.master_port}", f"alice:{world.alice}")
    assert out.startswith(b"HTTP/1.1 200") and b'"/tunnelled"' in out
    assert _connect(proxy, f"acme-etl-master-0:{world.master_port}", None).startswith(b"HTTP/1.1 407")
    assert _connect(proxy, f"other-x-master-0:{world.other_port}", f"alice:{world.alice}").startswith(b"HTTP/1.1 403")


def run_fresh(coro: Any) -> Any:
    """Run a coroutine on a loop of its own, in a thread: another plugin (pytest-asyncio, pulled in by
    kmock) may leave an event loop running in this thread, where asyncio.run() refuses to start."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    if errors:
        raise errors[0]
    assert result, "the coroutine did not finish within 60 s"
    return result[0]


def test_websocket_echo_through_the_proxy(proxy: str, world: World) -> None:
    async def talk() -> list[str]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(proxy + "/sig/acme/etl/ws",
                                          headers={"Authorization": f"Bearer {world.alice}"}) as ws:
                out = []
                for text in ("hello", "world"):
                    await ws.send_str(text)
                    out.append((await ws.receive(timeout=5)).data)
                return out

    assert run_fresh(talk()) == ["echo: hello", "echo: world"]

    async def refused() -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(proxy + "/sig/acme/etl/ws",
                                              headers={"Authorization": f"Bearer {world.bob}"}):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert run_fresh(refused()) == 404


def test_limits(proxy: str, world: World) -> None:
    resp = get(proxy, "/sig/acme/etl/", world.alice, headers={"X-Big": "a" * 70_000})
    assert resp.status_code == 431
    assert get(proxy, "/sig/acme/etl/", world.alice).status_code == 200


def test_metrics_count_requests_by_route(world: World, etcd_url: str, tmp_path: Path) -> None:
    from spaas.stack import free_port
    health = free_port()
    proc, url = start_proxy(world, etcd_url, tmp_path / "proxy.log", SPAAS_HEALTH_PORT=str(health))
    try:
        get(url, "/sig/acme/etl/", world.alice)
        get(url, "/sig/acme/etl/", world.bob)
        text = requests.get(f"http://127.0.0.1:{health}/metrics", timeout=5).text
        assert 'spaas_proxy_requests_total{route="sig",status="2xx"} 1.0' in text
        assert 'spaas_proxy_requests_total{route="sig",status="4xx"} 1.0' in text
        assert 'spaas_proxy_upstream_seconds_count{route="sig"} 1.0' in text
    finally:
        stop_pid(proc.pid)


def test_tls_and_secure_cookies(world: World, etcd_url: str, tmp_path: Path) -> None:
    cert, key = tmp_path / "proxy.crt", tmp_path / "proxy.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    proc, url = start_proxy(world, etcd_url, tmp_path / "proxy.log", SPAAS_PROXY_TLS_CERT=str(cert),
                            SPAAS_PROXY_TLS_KEY=str(key))
    try:
        assert url.startswith("https://")
        resp = requests.get(url + "/sig/acme/etl/", headers={"Authorization": f"Bearer {world.alice}"},
                            verify=str(cert), timeout=10)
        assert resp.status_code == 200
        seen = requests.get(url + "/sig/acme/etl/echo", headers={"Authorization": f"Bearer {world.alice}"},
                            verify=str(cert), timeout=10).json()["headers"]
        assert seen["X-Forwarded-Proto"] == "https"
        resp = requests.post(url + "/platform/session", json={"token": world.alice}, verify=str(cert), timeout=10)
        assert "Secure" in resp.headers["Set-Cookie"]
    finally:
        stop_pid(proc.pid)


def test_head_body_limit_and_upstream_failures(world: World, etcd_url: str, tmp_path: Path) -> None:
    from spaas.stack import free_port
    # A SIG whose master is registered at a port nothing listens on.
    dead = free_port()
    world.store.put(world.keys.sig_spec("acme", "down"), {"spec": {"name": "down"}, "generation": 1})
    world.store.put(world.keys.route("acme", "down", "acme-down-master-0"),
                    {"role": "master", "ready": True, "ip": "127.0.0.1", "ports": {"ui": dead}})
    proc, url = start_proxy(world, etcd_url, tmp_path / "proxy.log", SPAAS_MAX_BODY_BYTES="1000")
    try:
        auth = {"Authorization": f"Bearer {world.alice}"}
        head = requests.head(url + "/sig/acme/etl/page", headers=auth, timeout=10)
        assert head.status_code == 200 and head.text == ""
        assert requests.get(url + "/sig/acme/etl/page", headers=auth, timeout=10).status_code == 200  # still in sync
        big = requests.post(url + "/api/v1/files", data=b"z" * 5000, headers=auth, timeout=10)
        assert big.status_code == 413 and big.json()["error"]["code"] == "PayloadTooLarge"
        assert requests.post(url + "/api/v1/files", data=b"z" * 900, headers=auth, timeout=10).json()["size"] == 900
        down = requests.get(url + "/sig/acme/down/", headers=auth, timeout=10)
        assert down.status_code == 502 and down.json()["error"]["code"] == "UpstreamUnreachable"
    finally:
        stop_pid(proc.pid)
        world.store.delete(world.keys.route("acme", "down", "acme-down-master-0"))
        world.store.delete(world.keys.sig_spec("acme", "down"))
