"""Notebook routing through the proxy, as tables: a user reaches only their own Jupyter server,
with its token injected; others get what a missing SIG answers; demand is recorded, throttled."""

from __future__ import annotations

from typing import Any

import pytest

from spaas import notebooks as nb
from spaas.authz import Principal
from spaas.keys import Keys
from spaas.store import Entry

from services.proxy.notebooks import NotebookTracker
from services.proxy.rewrite import request_head
from services.proxy.routes import Denied, Upstream, route_ingress, same_origin
from services.proxy.table import NotebookTarget, build_table

KEYS = Keys("/p")
API = ("127.0.0.1", 8080)
ALICE, BOB, ADMIN = Principal("Alice"), Principal("bob"), Principal("root", cluster_admin=True, kind="bootstrap")
ALICE_NB = nb.container_name("acme", "etl", "alice")
ON = {"spec": {"name": "etl", "notebooks": {"jupyter": {"enabled": True, "idle_timeout_s": 600}}}, "generation": 1}
OFF = {"spec": {"name": "off"}, "generation": 1}


def entry(key: str, value: dict[str, Any]) -> Entry:
    return Entry(key, value, 1, 1)


def table(**override: Any) -> Any:
    args: dict[str, Any] = dict(
        sig_keys=["/p/sigs/acme/etl/spec", "/p/sigs/acme/off/spec"],
        specs=[entry("/p/sigs/acme/etl/spec", ON), entry("/p/sigs/acme/off/spec", OFF)],
        # The scaler's verified routes (services/scaler/routes.py).
        routes=[entry(f"/p/routes/acme/etl/{ALICE_NB}", {"role": "notebook", "ready": True, "ip": "10.1.0.9",
                                                         "ports": {"ui": 8888}, "user": "alice", "container": ALICE_NB}),
                # a record (its `user` from SIG code) claiming to be bob's server: not the container named for bob
                entry("/p/routes/acme/etl/acme-etl-nb-fake", {"role": "notebook", "ready": True, "ip": "10.1.0.66",
                                                              "ports": {"ui": 8888}, "user": "bob",
                                                              "container": "acme-etl-nb-fake"})],
        notebook_tokens=[entry("/p/notebook-tokens/acme/etl/alice", {"token": "tok-a", "container": ALICE_NB}),
                         entry("/p/notebook-tokens/acme/etl/bob", {"token": "tok-b", "container": "acme-etl-nb-fake"})],
        notebook_demand=[entry("/p/notebooks/acme/etl/alice", {"requested_at": 5.0, "last_activity": 90.0})],
        members=[entry("/p/members/acme/user/alice", {"roles": ["user"]}),
                 entry("/p/members/acme/user/bob", {"roles": ["consumer_admin"]})],
        bootstrap_hash="h", keys=KEYS, now=100.0)
    args.update(override)
    return build_table(**args)


def test_table_holds_only_servers_the_scaler_named_and_keeps_them_out_of_forward_mode() -> None:
    t = table()
    assert dict(t.notebook_sigs) == {("acme", "etl"): 600}
    assert dict(t.notebooks) == {("acme", "etl", "alice"): NotebookTarget("10.1.0.9", 8888, "tok-a")}
    assert ("10.1.0.9", 8888) not in t.hosts and (ALICE_NB.lower(), 8888) not in t.hosts
    assert dict(t.notebook_demand[("acme", "etl", "alice")]) == {"requested_at": 5.0, "last_activity": 90.0}


PREFIX = "/sig/acme/etl/notebooks/alice"


@pytest.mark.parametrize(("target", "principal", "expected"), [
    # the user's own server: the whole path kept (it is the server's base_url), the token attached
    (f"{PREFIX}/api/kernels?x=1", ALICE, Upstream("notebook", "10.1.0.9", 8888, f"{PREFIX}/api/kernels?x=1", PREFIX,
                                                  "acme", "etl", token="tok-a", user="alice")),
    (f"{PREFIX}/lab", ALICE, Upstream("notebook", "10.1.0.9", 8888, f"{PREFIX}/lab", PREFIX, "acme", "etl",
                                      token="tok-a", user="alice")),
    # the same name in another case: sent to the one canonical path
    ("/sig/acme/etl/notebooks/ALICE/lab?a=1", ALICE, Denied(302, "Redirect", "your notebook server",
                                                            location=f"{PREFIX}/lab?a=1")),
    (PREFIX, ALICE, Denied(302, "Redirect", "your notebook server", location=f"{PREFIX}/")),
    ("/sig/acme/etl/notebooks/", ALICE, Denied(302, "Redirect", "your notebook server", location=f"{PREFIX}/")),
])
def test_own_server(target: str, principal: Principal, expected: Any) -> None:
    assert route_ingress(target, principal, table(), api=API) == expected


MISSING = Denied(404, "NotFound", "SIG 'etl' not found in tenant 'acme'", "sig")


@pytest.mark.parametrize(("target", "principal", "status", "code"), [
    (f"{PREFIX}/lab", BOB, 404, "NotFound"),        # another member, even a tenant admin
    (f"{PREFIX}/api/kernels", ADMIN, 404, "NotFound"),  # and a cluster admin (they list/stop by API)
    ("/sig/acme/etl/notebooks/bob/lab", BOB, 503, "NotebookStarting"),  # a forged record does not route
    ("/sig/acme/off/notebooks/alice/", ALICE, 404, "NotEnabled"),
    ("/sig/other/etl/notebooks/alice/", ALICE, 404, "NotFound"),
])
def test_everyone_else(target: str, principal: Principal, status: int, code: str) -> None:
    got = route_ingress(target, principal, table(), api=API)
    assert isinstance(got, Denied) and (got.status, got.code) == (status, code)
    if code == "NotFound" and "/acme/etl/" in target:
        assert got == MISSING  # word for word a missing SIG


def test_starting_until_the_server_is_ready() -> None:
    got = route_ingress(f"{PREFIX}/lab", ALICE, table(routes=[]), api=API)
    assert isinstance(got, Denied) and (got.status, got.code) == (503, "NotebookStarting")


def test_token_is_injected_and_the_users_credentials_are_not() -> None:
    head = request_head(b"GET", f"{PREFIX}/api/status".encode(), [(b"Authorization", b"Bearer user-token"),
                                                                  (b"Cookie", b"spaas_session=s; _xsrf=x")],
                        kind="notebook", upstream_host="10.1.0.9", upstream_port=8888, client_ip="1.2.3.4",
                        tls=False, prefix=PREFIX, token="tok-a")
    assert b"Authorization: token tok-a" in head and b"user-token" not in head
    assert b"Cookie: _xsrf=x" in head and b"spaas_session" not in head


@pytest.mark.parametrize(("origin", "host", "ok"), [
    ("http://proxy:8090", "proxy:8090", True), ("https://evil.example", "proxy:8090", False),
    ("", "proxy:8090", False), ("null", "proxy:8090", False),
])
def test_same_origin(origin: str, host: str, ok: bool) -> None:
    assert same_origin(origin, host) is ok


def test_demand_and_activity_writes_are_throttled() -> None:
    now = [100.0]
    tracker = NotebookTracker(None, KEYS, clock=lambda: now[0])
    fresh = table(notebook_demand=[])
    assert tracker.plan(fresh, "acme", "etl", "alice") == {"requested_at": 100.0, "last_activity": 100.0}
    assert tracker.plan(fresh, "acme", "etl", "alice") is None  # written a moment ago
    now[0] = 103.0  # the record is not in the table yet (culled, or refresh lag): written again soon
    assert tracker.plan(fresh, "acme", "etl", "alice") == {"requested_at": 103.0, "last_activity": 103.0}
    # with a record in etcd: at most once per a tenth of the idle timeout (600 s -> 60 s)
    t = table(notebook_demand=[entry("/p/notebooks/acme/etl/alice", {"requested_at": 5.0, "last_activity": 103.0})])
    now[0] = 150.0
    assert tracker.plan(t, "acme", "etl", "alice") is None
    now[0] = 164.0
    assert tracker.plan(t, "acme", "etl", "alice") == {"requested_at": 5.0, "last_activity": 164.0}


def test_a_kernel_websocket_may_wait_for_its_kernel_longer_than_other_upstreams() -> None:
    from services.proxy.server import upstream_timeout

    up = route_ingress(f"{PREFIX}/api/kernels/k/channels", ALICE, table(), api=API)
    assert isinstance(up, Upstream)
    assert upstream_timeout(up, True, 60.0) == 600.0
    assert upstream_timeout(up, False, 60.0) == 60.0
    assert upstream_timeout(Upstream("sig", "h", 1, "/"), True, 60.0) == 60.0
