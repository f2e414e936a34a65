"""The Livy routes' contract without Spark: batches as a Livy view of applications, Livy's error
bodies, HTTP Basic (LDAP password or token) and the cookie CSRF rule. Sessions and real clients
run against Spark in tests/e2e/test_livy.py."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from spaas.keys import Keys
from spaas.store import Store

from services.agent import repl
from services.agent.sessions import SessionRelay
from tests.api.conftest import ADMIN_TOKEN, client_for, login
from tests.ldap_fixture import Ldap

L = "/api/v1/tenants/acme/sigs/s1/livy"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _upload(client: FlaskClient) -> None:
    resp = client.post("/api/v1/tenants/acme/sigs/s1/files", data={"file": (io.BytesIO(b"print(1)\n"), "job.py")},
                       content_type="multipart/form-data")
    assert resp.status_code == 201, resp.get_json()


def test_version(client: FlaskClient, sig: str) -> None:
    resp = client.get(f"{L}/version")
    assert resp.status_code == 200
    assert resp.get_json()["version"].startswith("0.8.0")


def test_batch_create_read_state_log_list_delete(client: FlaskClient, sig: str, app: Flask, keys: Keys,
                                                 store: Store) -> None:
    _upload(client)
    resp = client.post(f"{L}/batches", json={"file": "files/job.py", "args": ["1"], "name": "pi",
                                              "conf": {"spark.executor.cores": 1}, "driverCores": 1,
                                              "jars": [], "proxyUser": None})
    assert resp.status_code == 201, resp.get_json()
    batch = resp.get_json()
    assert resp.headers["Location"] == f"{L}/batches/{batch['id']}"
    assert batch["state"] == "not_started" and batch["proxyUser"] == "admin" and batch["appId"] is None
    assert batch["appInfo"]["driverLogUrl"].endswith(f"{L}/batches/{batch['id']}/log")
    assert batch["appInfo"]["sparkUiUrl"] is None and batch["log"] == []
    # One record, two views: the same id is an application.
    same = client.get(f"/api/v1/tenants/acme/sigs/s1/applications/{batch['id']}").get_json()
    assert same["state"] == "SUBMITTED" and same["request"]["conf"] == {"spark.executor.cores": "1",
                                                                      "spark.driver.cores": "1"}
    assert client.get(f"{L}/batches/{batch['id']}/state").get_json() == {"id": batch["id"], "state": "not_started"}
    # The driver wrote a log: GET batch shows it, /log pages it with total.
    log_path = app.extensions["spaas"].storage.driver_log("acme", "s1", batch["id"])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("".join(f"line {i}\n" for i in range(250)))
    store.put(keys.app_state("acme", "s1", batch["id"]), {"state": "RUNNING", "spark_app_id": "app-20260101000000-0001"})
    got = client.get(f"{L}/batches/{batch['id']}").get_json()
    assert got["state"] == "running" and got["appId"] == "app-20260101000000-0001"
    assert got["appInfo"]["sparkUiUrl"].endswith("/sig/acme/s1/proxy/app-20260101000000-0001/")
    assert got["log"][-1] == "line 249" and len(got["log"]) == 100
    page = client.get(f"{L}/batches/{batch['id']}/log?from=200&size=30").get_json()
    assert page == {"id": batch["id"], "from": 200, "total": 250, "log": [f"line {i}" for i in range(200, 230)]}
    tail = client.get(f"{L}/batches/{batch['id']}/log?size=10").get_json()  # no `from`: the last lines
    assert tail["from"] == 240 and tail["log"] == [f"line {i}" for i in range(240, 250)]
    listing = client.get(f"{L}/batches").get_json()
    assert listing["total"] == 1 and [b["id"] for b in listing["sessions"]] == [batch["id"]]
    assert client.delete(f"{L}/batches/{batch['id']}").get_json() == {"msg": "deleted"}
    assert client.get(f"{L}/batches/{batch['id']}").get_json()["state"] == "shutting_down"
    store.put(keys.app_state("acme", "s1", batch["id"]), {"state": "KILLED"})
    assert client.get(f"{L}/batches/{batch['id']}/state").get_json()["state"] == "killed"


def test_states_map_to_livy(client: FlaskClient, sig: str, keys: Keys, store: Store) -> None:
    _upload(client)
    bid = client.post(f"{L}/batches", json={"file": "files/job.py"}).get_json()["id"]
    for state, livy in (("STARTING", "starting"), ("FINISHED", "success"), ("FAILED", "dead")):
        store.put(keys.app_state("acme", "s1", bid), {"state": state})
        assert client.get(f"{L}/batches/{bid}/state").get_json()["state"] == livy


def test_errors_are_livy_shaped(client: FlaskClient, sig: str, anon: FlaskClient) -> None:
    _upload(client)
    for body, field in (({"file": "files/missing.py"}, "file"), ({"file": "files/job.py", "jars": ["x.jar"]}, "jars"),
                        ({"file": "files/job.py", "proxyUser": "root"}, "proxyUser"), ({}, "file"),
                        ({"file": "files/job.py", "conf": {"spark.master": "local"}}, "conf.spark.master"),
                        ({"file": "files/job.py", "numExecutors": 0}, "numExecutors")):
        resp = client.post(f"{L}/batches", json=body)
        assert resp.status_code == 400, (body, resp.get_json())
        err = resp.get_json()
        assert err["msg"] == err["error"]["message"] and err["error"]["field"] == field, err
    resp = client.get(f"{L}/batches/nope")
    assert resp.status_code == 404 and "nope" in resp.get_json()["msg"]
    resp = anon.get(f"{L}/batches")
    assert resp.status_code == 401 and resp.get_json()["msg"] and resp.headers["WWW-Authenticate"].startswith("Basic")
    # An application submitted on /applications is a batch; a session is not.
    assert client.get("/api/v1/tenants/acme/sigs/nosig/livy/batches").status_code == 404


def test_basic_auth_with_ldap_password_or_token(app: Flask, client: FlaskClient, sig: str, ldap_server: Ldap) -> None:
    assert client.put("/api/v1/tenants/acme/members/user/bob", json={"roles": ["user"]}).status_code == 200
    _upload(client)
    c = app.test_client()
    bob_pw = ldap_server.passwords["bob"]
    assert c.get(f"{L}/batches", headers=basic("bob", bob_pw)).status_code == 200
    assert c.get(f"{L}/batches", headers=basic("bob", "wrong")).status_code == 401
    assert c.get(f"{L}/batches", headers=basic("alice", bob_pw)).status_code == 401
    # A token as the password: only with its owner's name.
    token = login(app, "bob", bob_pw)
    assert c.get(f"{L}/batches", headers=basic("bob", token)).status_code == 200
    assert c.get(f"{L}/batches", headers=basic("carol", token)).status_code == 401
    assert c.get(f"{L}/batches", headers=basic("admin", ADMIN_TOKEN)).status_code == 200
    assert c.get(f"{L}/batches", headers=basic("bob", ADMIN_TOKEN)).status_code == 401
    created = c.post(f"{L}/batches", json={"file": "files/job.py"}, headers=basic("bob", token))
    assert created.status_code == 201 and created.get_json()["proxyUser"] == "bob"
    # Another tenant's user sees nothing, word for word like a missing tenant.
    dave = basic("dave", ldap_server.passwords["dave"])
    resp = c.get(f"{L}/batches/{created.get_json()['id']}", headers=dave)
    assert resp.status_code == 404 and resp.get_json()["msg"] == "tenant 'acme' not found"


def test_cookie_sessions_need_x_requested_by(app: Flask, client: FlaskClient, sig: str, ldap_server: Ldap) -> None:
    assert client.put("/api/v1/tenants/acme/members/user/bob", json={"roles": ["user"]}).status_code == 200
    _upload(client)
    token = login(app, "bob", ldap_server.passwords["bob"])
    c = app.test_client()
    c.set_cookie("spaas_session", token)
    assert c.get(f"{L}/batches").status_code == 200
    resp = c.post(f"{L}/batches", json={"file": "files/job.py"})
    assert resp.status_code == 400 and "X-Requested-By" in resp.get_json()["msg"]
    assert c.post(f"{L}/batches", json={"file": "files/job.py"}, headers={"X-Requested-By": "me"}).status_code == 201
    # Bearer and Basic callers need no such header.
    assert client_for(app, token).post(f"{L}/batches", json={"file": "files/job.py"}).status_code == 201


def test_session_statements_through_the_relay(client: FlaskClient, sig: str, keys: Keys, store: Store,
                                              tmp_path: Path) -> None:
    """The API's statements reach a REPL's inbox through the agent's relay, and its results come back."""
    resp = client.post(f"{L}/sessions", json={"kind": "pyspark", "heartbeatTimeoutInSecond": 60, "conf": {}})
    assert resp.status_code == 201, resp.get_json()
    session = resp.get_json()
    sid = session["id"]
    assert resp.headers["Location"] == f"{L}/sessions/{sid}"
    assert session["kind"] == "pyspark" and session["state"] == "not_started" and session["proxyUser"] == "admin"
    spec = store.get(keys.app_spec("acme", "s1", sid))
    assert spec is not None and spec.value["session"] == {"kind": "pyspark", "heartbeatTimeoutInSecond": 60,
                                                          "idle_timeout_s": 60}
    # Sessions and batches are apart in Livy's views, together in /applications.
    assert [s["id"] for s in client.get(f"{L}/sessions").get_json()["sessions"]] == [sid]
    assert client.get(f"{L}/batches").get_json()["sessions"] == []
    assert client.get(f"{L}/batches/{sid}").status_code == 404
    st = client.post(f"{L}/sessions/{sid}/statements", json={"code": "print(6 * 7)", "kind": "pyspark"})
    assert st.status_code == 201 and st.headers["Location"] == f"{L}/sessions/{sid}/statements/0"
    assert st.get_json()["state"] == "waiting" and st.get_json()["output"] is None
    assert client.post(f"{L}/sessions/{sid}/statements", json={"code": "SELECT 1"}).get_json()["id"] == 1
    store.put(keys.app_state("acme", "s1", sid), {"state": "RUNNING"})
    assert client.get(f"{L}/sessions/{sid}/state").get_json()["state"] == "busy"

    relay = SessionRelay(store, keys, tenant="acme", sig="s1")
    root = tmp_path / "repl"
    relay.sync_one(sid, root)
    assert json.loads((root / "in" / "0.json").read_text()) == {"code": "print(6 * 7)", "kind": "pyspark"}
    assert float((root / "heartbeat").read_text()) > 0  # the client's GETs count as heartbeats
    # What the REPL writes when statement 0 is done goes back to etcd and to the client.
    output = {"status": "ok", "execution_count": 0, "data": {"text/plain": "42"}}
    (root / "out").mkdir()
    (root / "out" / "0.json").write_text(json.dumps({"state": "available", "output": output,
                                                      "started": 1.0, "completed": 2.0}))
    assert client.post(f"{L}/sessions/{sid}/statements/1/cancel").get_json() == {"msg": "canceled"}
    relay.sync_one(sid, root)
    assert (root / "cancel" / "1").exists()
    # A link planted by the session's own code is refused, never followed.
    (root / "in" / "9.json").symlink_to(tmp_path / "elsewhere")
    store.put(keys.app_stmt("acme", "s1", sid, 9, "code"), {"code": "x"})
    relay.sync_one(sid, root)
    assert not (tmp_path / "elsewhere").exists()
    got = client.get(f"{L}/sessions/{sid}/statements/0").get_json()
    assert got == {"id": 0, "code": "print(6 * 7)", "state": "available", "output": output, "progress": 1.0,
                   "started": 1000, "completed": 2000}
    listing = client.get(f"{L}/sessions/{sid}/statements").get_json()
    assert listing["total_statements"] == 3 and listing["statements"][1]["state"] == "cancelling"
    # Deleting the session: it is shutting down, then killed; unfinished statements show cancelled.
    assert client.delete(f"{L}/sessions/{sid}").get_json() == {"msg": "deleted"}
    assert client.get(f"{L}/sessions/{sid}/state").get_json()["state"] == "shutting_down"
    assert client.post(f"{L}/sessions/{sid}/statements", json={"code": "1"}).status_code == 409
    store.put(keys.app_state("acme", "s1", sid), {"state": "KILLED"})
    assert client.get(f"{L}/sessions/{sid}").get_json()["state"] == "killed"
    assert client.get(f"{L}/sessions/{sid}/statements/1").get_json()["state"] == "cancelled"


def test_session_kinds_and_bad_statements(client: FlaskClient, sig: str) -> None:
    resp = client.post(f"{L}/sessions", json={"kind": "spark"})
    assert resp.status_code == 400 and "pyspark, sql" in resp.get_json()["msg"], resp.get_json()
    assert client.post(f"{L}/sessions", json={"kind": "sql", "heartbeatTimeoutInSecond": -1}).status_code == 400
    sid = client.post(f"{L}/sessions", json={"kind": "sql"}).get_json()["id"]
    for body in ({}, {"code": ""}, {"code": 1}, {"code": "x", "kind": "sparkr"}):
        resp = client.post(f"{L}/sessions/{sid}/statements", json=body)
        assert resp.status_code == 400 and resp.get_json()["msg"], (body, resp.get_json())
    assert client.get(f"{L}/sessions/{sid}/statements/7").status_code == 404
    assert client.get(f"{L}/sessions/nope").status_code == 404


def test_repl_runs_python_like_livy() -> None:
    ns: dict[str, object] = {}
    assert repl.run_python("x = 6\nprint('x is', x)\nx * 7", ns) == "x is 6\n42"
    assert repl.run_python("y = 1", ns) == "" and ns["y"] == 1
    try:
        repl.run_python("raise ValueError('boom')", ns)
    except ValueError as exc:
        out = repl.error_output(exc, 3)
    assert out["status"] == "error" and out["ename"] == "ValueError" and out["evalue"] == "boom"
    assert any("boom" in line for line in out["traceback"])
