"""Livy clients against a real SIG on the embedded stack: pylivy (PyPI `livy`) sessions and batches,
sparkmagic's Livy client classes, cancel, delete-while-busy, an API restart under a live session,
and tenant isolation. Users authenticate with HTTP Basic (user name + their spaas token)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from livy import LivyBatch, LivySession, SessionKind, SparkRuntimeError
from livy.client import LivyClient

from spaas.auth import Identity, Tokens
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.stack import Stack

from tests.e2e.conftest import JOB, Api

pytestmark = pytest.mark.e2e

SPARK3 = "3.5.9"
SIG = "nb"


class Livy:
    """Everything a test needs to speak Livy to one SIG as one user."""

    def __init__(self, platform: Stack, api: Api, tenant: str, user: str) -> None:
        store = EtcdStore(platform.etcd_url)
        self.token = Tokens(store, Keys()).issue(Identity(user), kind="api", ttl_s=3600).token
        self.auth = (user, self.token)
        self.url = f"{platform.api_url.rstrip('/')}/api/v1/tenants/{tenant}/sigs/{SIG}/livy"
        self.api = api

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.url + path, auth=self.auth, timeout=30, **kw)

    def wait_state(self, path: str, states: set[str], timeout_s: float = 240) -> str:
        return str(self.api.wait(f"{path} in {states}",
                                 lambda: (s := self.get(path + "/state").json()["state"]) in states and s, timeout_s))


@pytest.fixture(scope="module")
def world(api: Api, platform: Stack) -> Iterator[dict[str, Livy]]:
    """Tenant lv1 with a READY SIG and member bob; tenant lv2 with member dave."""
    for tenant, user in (("lv1", "bob"), ("lv2", "dave")):
        api.ok("POST", "/tenants", 201, json={"name": tenant})
        api.ok("PUT", f"/tenants/{tenant}/members/user/{user}", json={"roles": ["user"]})
    api.ok("POST", "/tenants/lv1/sigs", 202, json={"name": SIG, "spark_version": SPARK3})
    api.wait_phase("lv1", SIG, "READY")
    api.upload("lv1", SIG, "job.py", JOB)
    yield {"bob": Livy(platform, api, "lv1", "bob"), "dave": Livy(platform, api, "lv1", "dave")}
    api.ok("DELETE", f"/tenants/lv1/sigs/{SIG}", 202)
    api.wait_gone("lv1", SIG)


def test_pyspark_session_with_pylivy(world: dict[str, Livy]) -> None:
    bob = world["bob"]
    with LivySession.create(bob.url, kind=SessionKind.PYSPARK, auth=bob.auth) as session:
        session.run("df = spark.range(1, 6).selectExpr('id', 'id * id AS square')")
        frame = session.download("df")
        assert frame.to_dict("records") == [{"id": i, "square": i * i} for i in range(1, 6)]
        out = session.run("total = sc.parallelize(range(1, 101), 4).sum()\nprint('total', total)")
        assert out.text == "total 5050"
        with pytest.raises(SparkRuntimeError) as err:
            session.run("raise ValueError('no such thing')")
        assert err.value.ename == "ValueError" and err.value.evalue == "no such thing"
        assert any("no such thing" in line for line in err.value.traceback or [])
        view = bob.get(f"/sessions/{session.session_id}").json()
        assert view["state"] == "idle" and view["appId"].startswith("app-") and view["proxyUser"] == "bob"
        assert view["appInfo"]["sparkUiUrl"].endswith(f"/proxy/{view['appId']}/")
        # Another tenant's user learns nothing, not even that the tenant exists.
        foreign = world["dave"].get(f"/sessions/{session.session_id}")
        assert foreign.status_code == 404 and foreign.json()["msg"] == "tenant 'lv1' not found"
    # Leaving the context deletes the session.
    assert bob.wait_state(f"/sessions/{session.session_id}", {"killed", "dead"}) == "killed"


def test_sql_session_downloads_a_query(world: dict[str, Livy]) -> None:
    bob = world["bob"]
    with LivySession.create(bob.url, kind=SessionKind.SQL, auth=bob.auth) as session:
        frame = session.download_sql("SELECT id, CAST(id * 10 AS STRING) AS label FROM range(3)")
        assert frame.to_dict("records") == [{"id": i, "label": str(i * 10)} for i in range(3)]


def test_batch_runs_to_success_and_its_log_pages(world: dict[str, Livy]) -> None:
    bob = world["bob"]
    batch = LivyBatch.create(bob.url, file="files/job.py", args=["x"], name="sum", auth=bob.auth)
    batch.wait()
    assert batch.state.value == "success"
    client = LivyClient(bob.url, auth=bob.auth)
    first = client.get_batch_log(batch.batch_id, from_=0, size=5)
    assert first.total > 5 and len(first.lines) == 5
    lines: list[str] = []
    while len(lines) < first.total:  # page as clients do, by `total`
        lines += client.get_batch_log(batch.batch_id, from_=len(lines), size=20).lines
    assert any("RESULT total=1001000" in line for line in lines)
    view = bob.get(f"/batches/{batch.batch_id}").json()
    assert view["appId"].startswith("app-") and view["log"]


def test_cancel_a_statement_and_kill_a_busy_session(world: dict[str, Livy]) -> None:
    bob = world["bob"]
    client = LivyClient(bob.url, auth=bob.auth)
    session = client.create_session(SessionKind.PYSPARK)
    sid = session.session_id
    bob.wait_state(f"/sessions/{sid}", {"idle"})
    slow = "import time\nsc.parallelize(range(2), 2).map(lambda x: time.sleep(300)).count()"
    stmt = client.create_statement(sid, slow, SessionKind.PYSPARK)
    bob.api.wait("statement running", lambda: client.get_statement(sid, stmt.statement_id).state.value == "running")
    time.sleep(2)  # the job is on the executors
    resp = requests.post(f"{bob.url}/sessions/{sid}/statements/{stmt.statement_id}/cancel", auth=bob.auth, timeout=30)
    assert resp.json() == {"msg": "canceled"}
    # Generous: on a loaded 2-core machine the cancelled job's tasks take a while to be reaped.
    bob.api.wait("statement cancelled", lambda: client.get_statement(sid, stmt.statement_id).state.value == "cancelled",
                 timeout_s=180)
    assert client.get_statement(sid, client.create_statement(sid, "1 + 1", SessionKind.PYSPARK).statement_id)
    bob.api.wait("1 + 1", lambda: (s := client.get_statement(sid, 1)).output is not None and s.output.text == "2",
                 timeout_s=60)
    # Busy again, then deleted: the session ends killed and its statement cancelled.
    stmt = client.create_statement(sid, slow, SessionKind.PYSPARK)
    assert bob.wait_state(f"/sessions/{sid}", {"busy"}) == "busy"
    client.delete_session(sid)
    assert bob.wait_state(f"/sessions/{sid}", {"killed", "dead", "success"}, timeout_s=60) == "killed"
    assert client.get_statement(sid, stmt.statement_id).state.value == "cancelled"


def test_session_survives_an_api_restart(world: dict[str, Livy], platform: Stack) -> None:
    bob = world["bob"]
    client = LivyClient(bob.url, auth=bob.auth)
    sid = client.create_session(SessionKind.PYSPARK).session_id
    bob.wait_state(f"/sessions/{sid}", {"idle"})
    first = client.create_statement(sid, "x = 20\nx + 1", SessionKind.PYSPARK)
    bob.api.wait("x + 1", lambda: client.get_statement(sid, first.statement_id).state.value == "available", 60)
    platform.stop_service("api")
    platform.start_service("api")
    bob.api.wait("the API back", lambda: bob.get("/version").status_code == 200, 60)
    again = client.create_statement(sid, "x * 2", SessionKind.PYSPARK)
    bob.api.wait("x * 2", lambda: (s := client.get_statement(sid, again.statement_id)).output is not None
                 and s.output.text == "40", 60)
    client.delete_session(sid)


def test_sparkmagic_client_runs_a_statement(world: dict[str, Livy]) -> None:
    from sparkmagic.auth.basic import Basic
    from sparkmagic.livyclientlib.command import Command
    from sparkmagic.livyclientlib.endpoint import Endpoint
    from sparkmagic.livyclientlib.livyreliablehttpclient import LivyReliableHttpClient
    from sparkmagic.livyclientlib.livysession import LivySession as MagicSession
    from sparkmagic.utils import configuration

    class Display:
        """What sparkmagic shows in a notebook, kept as text (no notebook here)."""

        def __init__(self) -> None:
            self.lines: list[str] = []

        def display(self, obj: Any) -> None:
            pass

        def html(self, text: str) -> None:
            self.lines.append(text)

        def writeln(self, text: str) -> None:
            self.lines.append(text)

        write = send_error = writeln

    bob = world["bob"]
    configuration.override(configuration.livy_session_startup_timeout_seconds.__name__, 240)
    user, password = bob.auth
    auth = Basic(SimpleNamespace(user=user, password=password, url=bob.url))
    http = LivyReliableHttpClient.from_endpoint(Endpoint(bob.url, auth))
    session = MagicSession(http, {"kind": "pyspark"}, Display())
    session.start()
    try:
        ok, out, mimetype = Command("print(sc.parallelize(range(10)).map(lambda x: x * 3).sum())").execute(session)
        assert ok and out.strip() == "135" and mimetype == "text/plain", (ok, out)
    finally:
        session.delete()


def test_idle_session_ends_after_its_heartbeat_timeout(world: dict[str, Livy], api: Api) -> None:
    bob = world["bob"]
    client = LivyClient(bob.url, auth=bob.auth)
    sid = client.create_session(SessionKind.PYSPARK, heartbeat_timeout=10).session_id
    # Watched through /applications, which (unlike Livy's session reads) is no client heartbeat.
    app = api.wait_app("lv1", SIG, sid, timeout_s=300)
    assert app["state"] == "FINISHED", app
    assert bob.get(f"/sessions/{sid}/state").json()["state"] == "dead"
    assert any("session idle for 10 s" in line for line in bob.get(f"/sessions/{sid}/log?size=10000").json()["log"])
