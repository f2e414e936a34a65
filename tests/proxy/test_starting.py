"""A server that is enabled but not routed yet, through the real proxy over real etcd: a SIG whose
spec runs a history server the scaler has not routed, a user's Jupyter server just asked for.
The user gets 503 "starting" with Retry-After (a page that reloads itself in a browser), not 404;
a server that is not enabled stays 404, and another tenant's SIG answers as a missing one."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.proxy.conftest import World
from tests.proxy.upstream import Upstreams

HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
HIST_SPEC = {"spec": {"name": "hist", "history": {"enabled": True}}, "generation": 1}
LAB_SPEC = {"spec": {"name": "lab", "notebooks": {"jupyter": {"enabled": True, "idle_timeout_s": 600}}},
            "generation": 1}


def get(proxy: str, path: str, token: str, accept: str = "application/json") -> requests.Response:
    return requests.get(proxy + path, headers={"Authorization": f"Bearer {token}", "Accept": accept},
                        allow_redirects=False, timeout=10)


def until(what: str, check: Callable[[], Any], timeout_s: float = 15.0) -> Any:
    """The proxy re-reads etcd every 0.2 s here: wait for what it answers to change."""
    deadline = time.monotonic() + timeout_s
    while not (got := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return got


@pytest.fixture(scope="module")
def sigs(world: World, proxy: str) -> World:
    s, k = world.store, world.keys
    s.put(k.sig_spec("acme", "hist"), HIST_SPEC)
    s.put(k.sig_spec("acme", "nohist"), {"spec": {"name": "nohist", "history": {"enabled": False}}, "generation": 1})
    s.put(k.sig_spec("acme", "gone"), {**HIST_SPEC, "deleting": True})
    s.put(k.sig_spec("acme", "lab"), LAB_SPEC)
    s.put(k.sig_spec("other", "hist"), HIST_SPEC)
    until("the new SIGs in the route table", lambda: get(proxy, "/sig/acme/hist/history/", world.alice).status_code != 404)
    return world


def test_enabled_history_server_without_a_route_answers_starting(proxy: str, sigs: World) -> None:
    resp = get(proxy, "/sig/acme/hist/history/api/v1/applications", sigs.alice)
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "3"
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json() == {"error": {
        "code": "HistoryStarting", "reason": "Starting", "field": "history",
        "message": "the history server of SIG 'hist' is starting (it starts once the SIG's master is ready); "
                   "retry shortly"}}
    # A browser gets a page that says what is starting and reloads itself (no script).
    page = get(proxy, "/sig/acme/hist/history/", sigs.alice, accept=HTML)
    assert page.status_code == 503 and page.headers["Retry-After"] == "3"
    assert page.headers["Content-Type"] == "text/html; charset=utf-8" and page.headers["Cache-Control"] == "no-store"
    assert '<meta http-equiv="refresh" content="3">' in page.text and "<script" not in page.text
    assert "<title>Starting the history server</title>" in page.text
    assert "The Spark history server of SIG acme/hist is starting" in page.text


def test_once_the_scaler_routes_it_the_same_request_reaches_the_history_server(proxy: str, sigs: World) -> None:
    history = Upstreams(1).start()  # an address of its own (one two SIGs claim is never routed)
    key = sigs.keys.route("acme", "hist", "acme-hist-history-0")
    sigs.store.put(key, {"role": "history", "ready": True, "ip": "127.0.0.1", "container": "acme-hist-history-0",
                         "ports": {"ui": history.ports[0]}})
    try:
        resp = until("the history route", lambda: (r := get(proxy, "/sig/acme/hist/history/api/v1/applications",
                                                             sigs.alice)).status_code == 200 and r)
        assert resp.json()["path"] == "/api/v1/applications"
        assert resp.json()["headers"]["X-Forwarded-Context"] == "/sig/acme/hist/history"
    finally:
        sigs.store.delete(key)
        history.stop()
    until("the route gone", lambda: get(proxy, "/sig/acme/hist/history/", sigs.alice).status_code == 503)


@pytest.mark.parametrize("sig", ["nohist", "etl", "gone"])  # off; unset (no history key); being deleted
def test_a_sig_that_runs_no_history_server_still_answers_404(proxy: str, sigs: World, sig: str) -> None:
    for accept in ("application/json", HTML):
        resp = get(proxy, f"/sig/acme/{sig}/history/", sigs.alice, accept=accept)
        assert resp.status_code == 404 and "Retry-After" not in resp.headers
        assert resp.json()["error"]["code"] == "NotEnabled" and "reason" not in resp.json()["error"]


@pytest.mark.parametrize("path", ["/sig/{t}/hist/history/", "/sig/{t}/hist/history/api/v1/applications",
                                  "/sig/{t}/lab/notebooks/bob/lab"])
@pytest.mark.parametrize("accept", ["application/json", HTML])
def test_another_tenants_starting_server_answers_as_a_missing_sig(proxy: str, sigs: World, path: str,
                                                                   accept: str) -> None:
    # bob (tenant "other") asks for acme's SIGs; alice for a SIG acme does not have.
    theirs = get(proxy, path.format(t="acme"), sigs.bob, accept=accept)
    sig = path.split("/")[3]
    missing = get(proxy, path.format(t="acme").replace(f"/{sig}/", "/ghost/"), sigs.alice, accept=accept)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.headers.get("Retry-After") is missing.headers.get("Retry-After") is None
    assert theirs.headers["Content-Type"] == missing.headers["Content-Type"] == "application/json"
    assert theirs.json() == {"error": {"code": "NotFound", "message": f"SIG {sig!r} not found in tenant 'acme'",
                                       "field": "sig"}}
    assert missing.json() == {"error": {"code": "NotFound", "message": "SIG 'ghost' not found in tenant 'acme'",
                                        "field": "sig"}}
    # And bob's own tenant's SIG of the same name answers him "starting": the 404 is not about the name.
    assert get(proxy, "/sig/other/hist/history/", sigs.bob).status_code == 503


def test_a_requested_notebook_server_answers_starting_and_records_the_demand(proxy: str, sigs: World) -> None:
    resp = get(proxy, "/sig/acme/lab/notebooks/alice/lab", sigs.alice)
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "3"
    assert resp.json() == {"error": {"code": "NotebookStarting", "reason": "Starting", "field": "notebooks",
                                     "message": "your notebook server on SIG 'lab' is starting; retry shortly"}}
    page = get(proxy, "/sig/acme/lab/notebooks/alice/lab", sigs.alice, accept=HTML)
    assert page.status_code == 503 and page.headers["Retry-After"] == "3"
    assert '<meta http-equiv="refresh" content="3">' in page.text and "<script" not in page.text
    assert "Your Jupyter server on SIG acme/lab is starting" in page.text
    # The scaler starts a server on this record.
    demand = until("the demand record", lambda: sigs.store.get(sigs.keys.notebook("acme", "lab", "alice")))
    assert demand.value["requested_at"] > 0
    # Notebooks off: still 404.
    assert get(proxy, "/sig/acme/etl/notebooks/alice/lab", sigs.alice).json()["error"]["code"] == "NotEnabled"


def test_the_page_escapes_what_it_names() -> None:
    from services.proxy import routes, starting

    html = starting.page(routes.HISTORY_STARTING, "<t>", "s&\"x").decode()
    assert "<t>" not in html and "&lt;t&gt;/s&amp;&quot;x" in html
