"""Per-user Jupyter servers through services/proxy, on the embedded stack with real Spark and
JupyterLab from PyPI in the SIG's environment: a user's server starts on their first request, a
kernel's `spark` runs on the SIG's master (over the kernel's WebSocket), nbclient runs a notebook
kept in the repo against it (through jupyter_server's gateway client, the same REST + WebSocket
path), another user of the tenant gets 404, admins list and stop servers by API, and an idle
server is culled with its Spark application."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from spaas.auth import Identity, Tokens
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.stack import Stack

from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e

TENANT, SIG = "nbooks", "lab"
IDLE_S = 60
NOTEBOOK = Path(__file__).parent / "notebooks" / "count.ipynb"


def user_token(platform: Stack, user: str) -> str:
    return Tokens(EtcdStore(platform.etcd_url), Keys()).issue(Identity(user), kind="api", ttl_s=3600).token


@pytest.fixture(scope="module")
def lab(platform: Stack, api: Api) -> dict[str, Any]:
    api.ok("POST", "/tenants", 201, json={"name": TENANT})
    for user in ("alice", "bob"):
        api.ok("PUT", f"/tenants/{TENANT}/members/user/{user}", 200, json={"roles": ["user"]})
    api.ok("POST", f"/tenants/{TENANT}/sigs", 202, json={
        "name": SIG, "spark_version": "3.5.9", "scaling": {"min_workers": 1, "max_workers": 1},
        "notebooks": {"jupyter": {"enabled": True, "idle_timeout_s": IDLE_S}}})
    api.wait_phase(TENANT, SIG, "READY", timeout_s=900)
    alice = requests.Session()
    alice.headers["Authorization"] = f"Bearer {user_token(platform, 'alice')}"
    return {"proxy": platform.proxy_url, "alice": alice, "alice_token": alice.headers["Authorization"][7:],
            "bob": user_token(platform, "bob"), "base": f"{platform.proxy_url}/sig/{TENANT}/{SIG}/notebooks/alice"}


def wait(what: str, fn: Any, timeout_s: float = 300, interval_s: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}; last seen: {last}")


def master_apps(lab: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    data = lab["alice"].get(f"{lab['proxy']}/sig/{TENANT}/{SIG}/json/", timeout=30).json()
    return {"active": data.get("activeapps", []), "completed": data.get("completedapps", [])}


def execute(ws: Any, code: str, timeout_s: float = 300) -> str:
    """Run `code` on the kernel over its WebSocket (Jupyter's JSON channel protocol); what it
    printed (stdout) and its result. Not stderr: Spark's console progress bar goes there, and
    comes between a cell's lines when a stage is slow."""
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    out: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content.get("name") == "stdout":
            out.append(content["text"])
        elif kind == "execute_result":
            out.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            raise AssertionError(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content.get("execution_state") == "idle" and msg["channel"] == "iopub":
            return "".join(out)
    raise AssertionError(f"no answer to {code!r} within {timeout_s}s")


def test_a_users_server_starts_on_demand_and_its_kernel_runs_spark_on_the_sig(lab: dict[str, Any]) -> None:
    import websocket

    alice, base = lab["alice"], lab["base"]
    first = alice.get(f"{base}/api/status", timeout=30)
    if first.status_code == 503:  # starting: API clients are told when to come back
        assert first.json()["error"]["code"] == "NotebookStarting" and first.headers["Retry-After"]
        page = requests.get(f"{base}/lab", headers={"Accept": "text/html",
                                                   "Cookie": ""}, auth=("alice", lab["alice_token"]), timeout=30)
        assert page.status_code in (200, 503)
    wait("alice's server", lambda: alice.get(f"{base}/api/status", timeout=30).status_code == 200, 600)
    # The JupyterLab UI loads under the user's path.
    ui = alice.get(f"{base}/lab", timeout=60)
    assert ui.status_code == 200 and "JupyterLab" in ui.text

    kernel = alice.post(f"{base}/api/kernels", json={"name": "python3"}, timeout=600)
    assert kernel.status_code == 201, kernel.text
    kid = kernel.json()["id"]
    # The kernel connects its Spark session before it answers: Jupyter holds the WebSocket handshake
    # until then, and so does the proxy for a kernel's WebSocket (up to 600 s).
    ws_url = base.replace("http://", "ws://") + f"/api/kernels/{kid}/channels"
    ws = websocket.create_connection(ws_url, header=[f"Authorization: Bearer {lab['alice_token']}"], timeout=600)
    try:
        assert execute(ws, "print(spark.range(10).count())").strip() == "10"
        conf = execute(ws, "print(spark.sparkContext.getConf().get('spark.authenticate'), spark.sparkContext.master)")
        assert conf.startswith("true spark://"), conf
        # The kernel works in alice's folder of the SIG's storage.
        cwd = execute(ws, "import os; print(os.getcwd())").strip()
        assert cwd.endswith(f"/storage/{TENANT}/{SIG}/notebooks/alice"), cwd
    finally:
        ws.close()
    apps = wait("the notebook's application on the master",
                lambda: [a for a in master_apps(lab)["active"] if a.get("name") == "notebook-alice"], 120)
    assert apps and apps[0]["state"] in ("RUNNING", "WAITING")
    assert apps[0]["cores"] == 1  # a kernel takes one core unless the SIG's conf says otherwise
    assert alice.delete(f"{base}/api/kernels/{kid}", timeout=120).status_code == 204


def test_nbclient_runs_a_notebook_from_the_repo_on_the_sig(lab: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """nbclient drives a kernel manager; jupyter_server's GatewayKernelManager is one that talks to a
    remote Jupyter server over REST + WebSocket, here the user's server through the proxy."""
    import nbformat
    from jupyter_server.gateway import managers
    from jupyter_server.gateway.gateway_client import GatewayClient
    from jupyter_server.gateway.managers import GatewayKernelManager
    from nbclient import NotebookClient

    # The gateway's kernel client opens its WebSocket with websocket-client and no headers (its
    # `headers` reach only its REST calls): give that connection the user's token too.
    plain = managers.websocket.create_connection

    def with_token(url: str, **kwargs: Any) -> Any:
        return plain(url, header=[f"Authorization: Bearer {lab['alice_token']}"], **kwargs)

    monkeypatch.setattr(managers.websocket, "create_connection", with_token)

    class RemoteKernelManager(GatewayKernelManager):
        # jupyter_client's kernel client asks its manager `_async_is_alive()`, which for a local
        # kernel checks its process; the gateway's manager answers `is_alive()` from the server.
        _async_is_alive = GatewayKernelManager.is_alive

    GatewayClient.clear_instance()
    # The gateway client sends `Authorization: <auth_scheme> <auth_token>` on REST calls and `headers`
    # on its kernel WebSocket: the user's spaas token as bearer on both.
    GatewayClient.instance(url=lab["base"], auth_token=lab["alice_token"], auth_scheme="Bearer",
                           headers=json.dumps({"Authorization": f"Bearer {lab['alice_token']}"}),
                           request_timeout=600.0, connect_timeout=60.0, launch_timeout_pad=0.0)
    try:
        book = nbformat.read(NOTEBOOK, as_version=4)
        km = RemoteKernelManager(kernel_name="python3")
        client = NotebookClient(book, km=km, timeout=600, startup_timeout=600, kernel_name="python3")

        async def run() -> None:
            try:
                await client.async_execute()
            finally:  # nbclient leaves a kernel manager it was given running: as a user closing the tab
                await km.shutdown_kernel(now=True)

        # In a thread of its own: in the whole suite another plugin may hold this thread's event loop.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, run()).result()
    finally:
        GatewayClient.clear_instance()
    outputs = ["".join(o.get("text", "")) for o in book.cells[1].outputs]
    assert outputs == ["count=10\n"]
    assert book.cells[2].outputs[0]["data"]["text/plain"].startswith("'spark://")


def test_another_user_of_the_tenant_gets_404(lab: dict[str, Any], platform: Stack) -> None:
    bob = {"Authorization": f"Bearer {lab['bob']}"}
    for path in ("/lab", "/api/status", "/api/kernels"):
        resp = requests.get(lab["base"] + path, headers=bob, timeout=30)
        missing = requests.get(f"{platform.proxy_url}/sig/{TENANT}/nosuch/", headers=bob, timeout=30)
        assert resp.status_code == 404, path
        assert resp.json()["error"]["code"] == missing.json()["error"]["code"] == "NotFound"
        assert "alice" not in resp.text


def test_servers_are_listed_for_their_user_and_admins(lab: dict[str, Any], api: Api, platform: Stack) -> None:
    path = f"/tenants/{TENANT}/sigs/{SIG}/notebooks"
    listed = api.ok("GET", path)["notebooks"]
    assert [(s["user"], s["state"]) for s in listed] == [("alice", "ready")]
    assert "token" not in json.dumps(listed)
    own = lab["alice"].get(f"{platform.proxy_url}/api/v1{path}", timeout=30).json()["notebooks"]
    assert [s["user"] for s in own] == ["alice"]
    bob = requests.get(f"{platform.proxy_url}/api/v1{path}", headers={"Authorization": f"Bearer {lab['bob']}"},
                       timeout=30).json()["notebooks"]
    assert bob == []  # a plain user sees only their own
    assert requests.delete(f"{platform.proxy_url}/api/v1{path}/alice", timeout=30,
                           headers={"Authorization": f"Bearer {lab['bob']}"}).status_code == 403
    status = api.sig(TENANT, SIG)["status"]
    assert [s["user"] for s in status["notebooks"]["servers"]] == ["alice"]


def test_an_idle_server_is_culled_and_its_spark_application_ends(lab: dict[str, Any], api: Api) -> None:
    started = time.monotonic()
    wait("alice's server to be culled", lambda: not api.sig(TENANT, SIG)["status"]["notebooks"]["servers"],
         IDLE_S * 4 + 120, interval_s=2)
    assert time.monotonic() - started > 10  # not at once: only once idle
    done = wait("the notebook's application to complete",
                lambda: [a for a in master_apps(lab)["completed"] if a.get("name") == "notebook-alice"], 120)
    assert not [a for a in master_apps(lab)["active"] if a.get("name") == "notebook-alice"]
    assert done[0]["state"] in ("FINISHED", "KILLED")
    # Her next visit starts a new server (demand is recorded again): 503 starting, once the proxy's
    # route table (refreshed every second) no longer names the culled server (502 until then).
    wait("a new server to be starting", lambda: lab["alice"].get(lab["base"] + "/api/status", timeout=30).status_code
         == 503, 60)
