"""Pure parts of the proxy, as tables: routing, the route table, header rewriting."""

from __future__ import annotations

import pytest

from spaas.authz import Principal
from spaas.keys import Keys
from spaas.store import Entry

from services.proxy import authn
from services.proxy.rewrite import request_head, response_head, rewrite_location
from services.proxy.routes import Denied, Local, Upstream, route_forward, route_ingress
from services.proxy.table import build_table

KEYS = Keys("/p")
ALICE = Principal("alice")
BOB = Principal("bob", groups=frozenset({"other-team"}))
ADMIN = Principal("admin", cluster_admin=True, kind="bootstrap")
API = ("127.0.0.1", 8080)


def entry(key: str, value: dict) -> Entry:
    return Entry(key, value, 1, 1)


TABLE = build_table(
    sig_keys=["/p/sigs/acme/etl/spec", "/p/sigs/acme/etl/status", "/p/sigs/other/x/spec", "/p/sigs/acme/idle/spec"],
    routes=[entry("/p/routes/acme/etl/acme-etl-master-0", {"role": "master", "ready": True, "ip": "10.1.0.2",
                                                          "ports": {"spark": 7077, "ui": 8080}}),
            entry("/p/routes/acme/etl/acme-etl-worker-0", {"role": "worker", "ready": True, "ip": "10.1.0.3",
                                                          "ports": {"spark": 7078, "ui": 8081}}),
            entry("/p/routes/other/x/other-x-master-0", {"role": "master", "ready": True, "ip": "10.2.0.2",
                                                        "ports": {"ui": 8080}}),
            # the platform's etcd, and another SIG's worker: dropped (the scaler verifies routes; the
            # proxy still refuses its own services and any address two SIGs claim)
            entry("/p/routes/other/x/evil", {"role": "worker", "ip": "10.9.0.1", "ports": {"ui": 2379}}),
            entry("/p/routes/other/x/copycat", {"role": "worker", "ip": "10.1.0.3", "ports": {"ui": 8081}}),
            entry("/p/routes/gone/sig/h", {"role": "master", "ready": True, "ip": "10.3.0.2", "ports": {"ui": 1}}),
            # other roles are routed by (role, user): a user's server, and one not ready yet
            entry("/p/routes/acme/etl/nb-alice", {"role": "notebook", "user": "alice", "ready": True,
                                                  "ip": "10.1.0.2", "container": "acme-etl-master-0",
                                                  "ports": {"ui": 8888}}),
            entry("/p/routes/acme/etl/hist", {"role": "history", "ready": False, "ip": "10.1.0.2",
                                              "ports": {"ui": 18080}})],
    members=[entry("/p/members/acme/user/alice", {"roles": ["user"]}),
             entry("/p/members/other/group/other-team", {"roles": ["sig_configure"]})],
    bootstrap_hash="h", keys=KEYS, now=1.0, deny=frozenset({("10.9.0.1", 2379)}))


def test_build_table() -> None:
    assert TABLE.sigs == {("acme", "etl"), ("other", "x"), ("acme", "idle")}
    assert dict(TABLE.masters) == {("acme", "etl"): ("10.1.0.2", 8080), ("other", "x"): ("10.2.0.2", 8080)}
    assert ("10.9.0.1", 2379) not in TABLE.hosts  # denied
    assert ("10.1.0.3", 8081) not in TABLE.hosts and ("acme-etl-worker-0", 8081) in TABLE.hosts  # the IP clashes
    assert ("h", 1) not in TABLE.hosts  # host of a SIG without spec
    assert TABLE.members["other"][("group", "other-team")] == ["sig_configure"]


def test_endpoints_are_keyed_by_sig_role_and_user() -> None:
    # (the worker's UI is not there: "copycat" of another SIG claims its address too)
    assert dict(TABLE.endpoints) == {
        ("acme", "etl", "master", ""): ("10.1.0.2", 8080), ("other", "x", "master", ""): ("10.2.0.2", 8080),
        ("acme", "etl", "notebook", "alice"): ("10.1.0.2", 8888)}
    # a notebook server is never a forward-mode target (only its user reaches it, by path)
    assert ("acme-etl-master-0", 8888) not in TABLE.hosts and ("nb-alice", 8888) not in TABLE.hosts
    assert ("acme-etl-master-0.etl.acme", 8080) in TABLE.hosts and ("10.1.0.2", 18080) in TABLE.hosts


@pytest.mark.parametrize(("target", "principal", "expected"), [
    ("/api/v1/tenants?x=1", None, Upstream("api", "127.0.0.1", 8080, "/api/v1/tenants?x=1")),
    ("/healthz", None, Local("healthz")),
    ("/platform/session", None, Local("session")),
    ("/platform/login", None, Local("login")),
    ("/sig/acme/etl/jobs/?id=1", ALICE, Upstream("sig", "10.1.0.2", 8080, "/jobs/?id=1", "/sig/acme/etl", "acme", "etl")),
    ("/sig/acme/etl/", ADMIN, Upstream("sig", "10.1.0.2", 8080, "/", "/sig/acme/etl", "acme", "etl")),
    ("/sig/other/x/proxy/app-1/", BOB, Upstream("sig", "10.2.0.2", 8080, "/proxy/app-1/", "/sig/other/x", "other", "x")),
])
def test_ingress_upstreams(target: str, principal: Principal | None, expected: object) -> None:
    assert route_ingress(target, principal, TABLE, api=API) == expected


@pytest.mark.parametrize(("target", "principal", "status", "code"), [
    ("/sig/acme/etl/", None, 401, "Unauthorized"),
    ("/sig/acme/etl/", BOB, 404, "NotFound"),
    ("/sig/acme/nope/", ALICE, 404, "NotFound"),
    ("/sig/acme/nope/", BOB, 404, "NotFound"),
    ("/sig/ACME/etl/", ALICE, 404, "NotFound"),
    ("/sig/acme/etl", ALICE, 302, "Redirect"),
    ("/sig/acme/etl/history/", ALICE, 404, "NotEnabled"),
    ("/sig/acme/etl/notebooks/alice/tree", ALICE, 404, "NotEnabled"),
    ("/sig/acme/etl/history/", BOB, 404, "NotFound"),
    ("/sig/acme/idle/", ALICE, 503, "NotRunning"),
    ("/sig/acme/etl/../x/", ALICE, 400, "BadPath"),
    ("/platform/", None, 401, "Unauthorized"),
    ("/", ALICE, 404, "NotFound"),
])
def test_ingress_denials(target: str, principal: Principal | None, status: int, code: str) -> None:
    out = route_ingress(target, principal, TABLE, api=API)
    assert isinstance(out, Denied) and (out.status, out.code) == (status, code)


def test_browser_goes_to_login() -> None:
    out = route_ingress("/sig/acme/etl/jobs/", None, TABLE, api=API, browser=True)
    assert isinstance(out, Denied) and out.location == "/platform/login?next=%2Fsig%2Facme%2Fetl%2Fjobs%2F"
    out = route_ingress("/platform/t/acme/", None, TABLE, api=API, browser=True)
    assert isinstance(out, Denied) and out.location == "/platform/login?next=%2Fplatform%2Ft%2Facme%2F"


def test_console_goes_to_the_api_for_any_authenticated_caller() -> None:
    # The console (served by the API) checks the tenant roles itself, as the API does.
    for who in (ALICE, BOB):
        assert route_ingress("/platform/t/acme/?x=1", who, TABLE, api=API) == \
            Upstream("console", "127.0.0.1", 8080, "/platform/t/acme/?x=1")


@pytest.mark.parametrize(("host", "port", "target", "principal", "expected"), [
    ("acme-etl-master-0", 8080, "/", ALICE, ("10.1.0.2", 8080, "/")),
    ("ACME-ETL-WORKER-0", 8081, "/logPage/?x", ALICE, ("10.1.0.3", 8081, "/logPage/?x")),
    ("10.1.0.2", 7077, "", ALICE, ("10.1.0.2", 7077, "/")),
    ("acme-etl-master-0.etl.acme", 8080, "/", ALICE, ("10.1.0.2", 8080, "/")),
    ("acme-etl-worker-0", 8081, "/sig/acme/etl/proxy/app-1/", ALICE, ("10.1.0.2", 8080, "/proxy/app-1/")),
    ("acme-etl-master-0", 8080, "/", None, 407),
    ("acme-etl-master-0", 8080, "/", BOB, 403),
    ("acme-etl-master-0", 9999, "/", ALICE, 403),
    ("10.9.0.1", 2379, "/", ADMIN, 403),
    ("example.com", 80, "/", ADMIN, 403),
])
def test_forward(host: str, port: int, target: str, principal: Principal | None, expected: object) -> None:
    out = route_forward(host, port, target, principal, TABLE)
    if isinstance(expected, int):
        assert isinstance(out, Denied) and out.status == expected
    else:
        assert isinstance(out, Upstream) and (out.host, out.port, out.target) == expected


# Recorded from pyspark 3.5.9 with spark.ui.reverseProxyUrl=/sig/acme/etl/ (Host: the upstream).
@pytest.mark.parametrize(("location", "prefix", "expected"), [
    ("http://10.1.0.2:8080/proxy/app-20261129060448-0000/jobs/", "/sig/acme/etl",
     "/sig/acme/etl/proxy/app-20261129060448-0000/jobs/"),
    ("http://10.1.0.2:8080/app/?appId=app-1", "/sig/acme/etl", "/sig/acme/etl/app/?appId=app-1"),
    ("http://10.1.0.2:8080/static/", "/sig/acme/etl", "/sig/acme/etl/static/"),
    ("/sig/acme/etl/jobs/", "/sig/acme/etl", "/sig/acme/etl/jobs/"),
    ("https://10.1.0.2:8080/sig/acme/etl/x#f", "/sig/acme/etl", "/sig/acme/etl/x#f"),
    ("jobs/", "/sig/acme/etl", "jobs/"),
    ("http://127.0.0.1:8080/api/v1/tenants/", "", "/api/v1/tenants/"),
])
def test_rewrite_location(location: str, prefix: str, expected: str) -> None:
    assert rewrite_location(location, prefix=prefix) == expected


# Recorded from a pyspark 3.5.9 master (reverse proxy on) with Host: 127.0.0.1:53075: it sometimes
# passes on a driver's redirect with the application id cut by six characters, a link the master
# itself then refuses with 403. The proxy gives the id of the request back.
@pytest.mark.parametrize(("location", "target", "expected"), [
    ("http://127.0.0.1:53075/proxy/261129135955-0000/stages/", "/proxy/app-20261129135955-0000/stages",
     "/sig/acme/etl/proxy/app-20261129135955-0000/stages/"),
    ("http://spaas-proxy:8443/proxy/261129135955-0000/jobs/", "/proxy/app-20261129135955-0000/",
     "/sig/acme/etl/proxy/app-20261129135955-0000/jobs/"),
    ("http://h:1/proxy/-20261129135943-127.0.0.1-38297/logPage/?x=1", "/proxy/worker-20261129135943-127.0.0.1-38297",
     "/sig/acme/etl/proxy/worker-20261129135943-127.0.0.1-38297/logPage/?x=1"),
    # The whole id, another id, or a request outside /proxy/: left as they are.
    ("http://h:1/proxy/app-20261129135955-0000/jobs/", "/proxy/app-20261129135955-0000/jobs",
     "/sig/acme/etl/proxy/app-20261129135955-0000/jobs/"),
    ("http://h:1/proxy/app-1/jobs/", "/proxy/app-20261129135955-0000/jobs", "/sig/acme/etl/proxy/app-1/jobs/"),
    ("http://h:1/proxy/261129135955-0000/jobs/", "/jobs", "/sig/acme/etl/proxy/261129135955-0000/jobs/"),
])
def test_a_truncated_spark_proxy_id_gets_the_requests_id_back(location: str, target: str, expected: str) -> None:
    assert rewrite_location(location, prefix="/sig/acme/etl", target=target) == expected
    head = response_head(302, b"Found", [(b"Location", location.encode())], kind="sig", prefix="/sig/acme/etl",
                         framing="none", keep_alive=True, target=target)
    assert b"Location: " + expected.encode() + b"\r\n" in head


def test_request_head_for_a_spark_ui_carries_no_credentials() -> None:
    head = request_head(b"GET", b"/jobs/", [(b"Host", b"proxy:8090"), (b"Authorization", b"Bearer t"),
                                            (b"Cookie", b"spaas_session=t; a=b"), (b"X-Forwarded-For", b"1.2.3.4"),
                                            (b"X-Forwarded-Host", b"evil"), (b"Forwarded", b"for=6.6.6.6"),
                                            (b"Connection", b"keep-alive, X-Hop"), (b"X-Hop", b"1"),
                                            (b"Accept", b"text/html")],
                        kind="sig", upstream_host="10.1.0.2", upstream_port=8080, client_ip="192.0.2.1", tls=True,
                        prefix="/sig/acme/etl")
    assert head == (b"GET /jobs/ HTTP/1.1\r\nHost: 10.1.0.2:8080\r\nCookie: a=b\r\nAccept: text/html\r\n"
                    b"X-Forwarded-For: 1.2.3.4, 192.0.2.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: proxy:8090\r\n"
                    b"X-Forwarded-Prefix: /sig/acme/etl\r\nConnection: keep-alive\r\n\r\n")


def test_request_head_for_the_api_gets_the_bearer() -> None:
    head = request_head(b"POST", b"/api/v1/x", [(b"Authorization", b"Basic abc"), (b"Content-Length", b"3")],
                        kind="api", upstream_host="api", upstream_port=8080, client_ip="c", tls=False,
                        bearer="tok", body="length", content_length=3)
    assert b"Authorization: Bearer tok\r\n" in head and b"Basic" not in head and b"Content-Length: 3\r\n" in head


def test_response_head() -> None:
    head = response_head(302, b"Found", [(b"Location", b"http://10.1.0.2:8080/proxy/app-1/jobs/"),
                                         (b"Set-Cookie", b"a=b"), (b"Transfer-Encoding", b"chunked"),
                                         (b"Content-Length", b"0")],
                         kind="sig", prefix="/sig/acme/etl", framing="length", keep_alive=True)
    assert head == b"HTTP/1.1 302 Found\r\nLocation: /sig/acme/etl/proxy/app-1/jobs/\r\nContent-Length: 0\r\n\r\n"
    head = response_head(200, b"OK", [(b"Content-Type", b"text/plain")], kind="forward", prefix="",
                         framing="chunked", keep_alive=False)
    assert head.endswith(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")


@pytest.mark.parametrize(("auth", "cookie", "proxy_auth", "forward", "expected"), [
    ("Bearer t1", "", "", False, authn.Credentials("t1", "bearer")),
    ("Basic YWxpY2U6dDI=", "", "", False, authn.Credentials("t2", "basic", "alice")),
    ("", "a=b; spaas_session=t3", "", False, authn.Credentials("t3", "cookie")),
    ("Bearer t1", "", "Basic YWxpY2U6dDI=", True, authn.Credentials("t2", "proxy", "alice")),
    ("", "", "", True, None),
    ("Basic !!!", "", "", False, None),
    ("Negotiate x", "spaas_session=t3", "", False, None),
])
def test_credentials(auth: str, cookie: str, proxy_auth: str, forward: bool, expected: object) -> None:
    assert authn.credentials(auth, cookie, proxy_auth, forward=forward) == expected


def test_csrf_only_for_cookie_changes() -> None:
    cookie = authn.Credentials("tok", "cookie")
    assert authn.csrf_ok("GET", cookie, "")
    assert not authn.csrf_ok("POST", cookie, "")
    assert not authn.csrf_ok("DELETE", cookie, "wrong")
    assert authn.csrf_ok("PUT", cookie, authn.csrf_token("tok"))
    assert authn.csrf_ok("POST", authn.Credentials("tok", "bearer"), "")


# -- the history server ---------------------------------------------------------------------------

HISTORY_TABLE = build_table(
    sig_keys=["/p/sigs/acme/etl/spec", "/p/sigs/other/x/spec"],
    routes=[entry("/p/routes/acme/etl/acme-etl-master-0", {"role": "master", "ready": True, "ip": "10.1.0.2",
                                                          "ports": {"ui": 8080}}),
            entry("/p/routes/acme/etl/acme-etl-history-0", {"role": "history", "ready": True, "ip": "10.1.0.4",
                                                           "container": "acme-etl-history-0", "ports": {"ui": 18080}}),
            # not ready yet: no route
            entry("/p/routes/other/x/other-x-history-0", {"role": "history", "ready": False, "ip": "10.2.0.4",
                                                         "ports": {"ui": 18080}})],
    members=[entry("/p/members/acme/user/alice", {"roles": ["user"]})],
    bootstrap_hash="h", keys=KEYS, now=1.0)


def test_history_server_routes_come_from_ready_verified_history_records() -> None:
    assert {k: v for k, v in HISTORY_TABLE.endpoints.items() if k[2] == "history"} == \
        {("acme", "etl", "history", ""): ("10.1.0.4", 18080)}
    assert dict(HISTORY_TABLE.masters) == {("acme", "etl"): ("10.1.0.2", 8080)}


@pytest.mark.parametrize(("target", "principal", "expected"), [
    ("/sig/acme/etl/history/", ALICE, Upstream("history", "10.1.0.4", 18080, "/", "/sig/acme/etl/history", "acme", "etl")),
    ("/sig/acme/etl/history/api/v1/applications?status=completed", ALICE,
     Upstream("history", "10.1.0.4", 18080, "/api/v1/applications?status=completed", "/sig/acme/etl/history",
              "acme", "etl")),
    ("/sig/acme/etl/history/history/app-1/jobs/", ADMIN,
     Upstream("history", "10.1.0.4", 18080, "/history/app-1/jobs/", "/sig/acme/etl/history", "acme", "etl")),
    # a path that merely starts with "history" is the master UI's
    ("/sig/acme/etl/historyx", ALICE, Upstream("sig", "10.1.0.2", 8080, "/historyx", "/sig/acme/etl", "acme", "etl")),
])
def test_history_upstreams(target: str, principal: Principal, expected: Upstream) -> None:
    assert route_ingress(target, principal, HISTORY_TABLE, api=API) == expected


@pytest.mark.parametrize(("target", "principal", "status", "code", "location"), [
    ("/sig/acme/etl/history", ALICE, 302, "Redirect", "/sig/acme/etl/history/"),
    ("/sig/acme/etl/history?x=1", ALICE, 302, "Redirect", "/sig/acme/etl/history/?x=1"),
    ("/sig/acme/etl/history/", BOB, 404, "NotFound", ""),  # another tenant's member: as if missing
    ("/sig/acme/etl/history/", None, 401, "Unauthorized", ""),
    ("/sig/other/x/history/", ADMIN, 404, "NotEnabled", ""),  # not ready
    ("/sig/acme/etl/history/../../other/x/", ALICE, 400, "BadPath", ""),
])
def test_history_denials(target: str, principal: Principal | None, status: int, code: str, location: str) -> None:
    out = route_ingress(target, principal, HISTORY_TABLE, api=API)
    assert isinstance(out, Denied) and (out.status, out.code, out.location) == (status, code, location)


def test_history_request_carries_its_prefix_as_forwarded_context_and_no_credentials() -> None:
    head = request_head(b"GET", b"/history/app-1/jobs/", [(b"Host", b"proxy:8090"), (b"Authorization", b"Bearer t"),
                                                          (b"X-Forwarded-Context", b"/evil")],
                        kind="history", upstream_host="10.1.0.4", upstream_port=18080, client_ip="192.0.2.1",
                        tls=False, prefix="/sig/acme/etl/history")
    assert b"X-Forwarded-Context: /sig/acme/etl/history\r\n" in head and b"/evil" not in head
    assert b"Authorization" not in head


@pytest.mark.parametrize(("location", "expected"), [
    # the history server's loader redirects to the request URI it saw (without the prefix)
    ("http://10.1.0.4:18080/history/app-1/jobs/", "/sig/acme/etl/history/history/app-1/jobs/"),
    ("/history/app-1/jobs/", "/sig/acme/etl/history/history/app-1/jobs/"),
    # an app UI's own redirect already carries X-Forwarded-Context
    ("http://10.1.0.4:18080/sig/acme/etl/history/history/app-1/jobs/", "/sig/acme/etl/history/history/app-1/jobs/"),
])
def test_history_redirects_stay_under_the_prefix(location: str, expected: str) -> None:
    head = response_head(302, b"Found", [(b"Location", location.encode()), (b"Set-Cookie", b"JSESSIONID=x")],
                         kind="history", prefix="/sig/acme/etl/history", framing="none", keep_alive=True)
    assert head == b"HTTP/1.1 302 Found\r\nLocation: " + expected.encode() + b"\r\n\r\n"


def test_a_sig_whose_spec_runs_a_history_server_answers_starting_until_it_is_routed() -> None:
    on = {"spec": {"name": "x", "history": {"enabled": True}}, "generation": 1}
    specs = [entry("/p/sigs/other/x/spec", on), entry("/p/sigs/acme/etl/spec", on),
             entry("/p/sigs/acme/gone/spec", {**on, "deleting": True}),
             entry("/p/sigs/acme/off/spec", {"spec": {"name": "off", "history": {"enabled": False}}})]
    t = build_table(sig_keys=[e.key for e in specs], specs=specs, routes=[], members=[], bootstrap_hash="h",
                    keys=KEYS, now=1.0)
    assert t.history_sigs == {("other", "x"), ("acme", "etl")}
    out = route_ingress("/sig/other/x/history/api/v1/applications", ADMIN, t, api=API)
    assert isinstance(out, Denied) and (out.status, out.code, out.field) == (503, "HistoryStarting", "history")
    for sig in ("gone", "off"):
        out = route_ingress(f"/sig/acme/{sig}/history/", ADMIN, t, api=API)
        assert isinstance(out, Denied) and (out.status, out.code) == (404, "NotEnabled")
    # Once the scaler routes it: the history server.
    routed = build_table(sig_keys=[e.key for e in specs], specs=specs, members=[], bootstrap_hash="h", keys=KEYS,
                         now=1.0, routes=[entry("/p/routes/other/x/other-x-history-0", {
                             "role": "history", "ready": True, "ip": "10.2.0.4", "ports": {"ui": 18080}})])
    assert route_ingress("/sig/other/x/history/", ADMIN, routed, api=API) == \
        Upstream("history", "10.2.0.4", 18080, "/", "/sig/other/x/history", "other", "x")
