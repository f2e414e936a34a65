"""`spaas.client.Client` against the real API served over HTTP (the API fixtures of tests/api: real
etcd, Redis and slapd). No builder, scaler or Spark runs: where a controller would write a status,
the test writes it to etcd as that controller would."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from spaas.client import ApiError, Client, SigFailed
from spaas.keys import Keys
from spaas.logstream import RedisLogStreams, sig_build_stream
from spaas.settings import ApiSettings
from spaas.storage import SigStorage

from tests.api.conftest import ADMIN_TOKEN, serve_http, SPARK_VERSIONS, app, logs, settings  # noqa: F401 (fixtures)
from tests.ldap_fixture import PASSWORDS


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:  # noqa: F811
    yield from serve_http(app)


@pytest.fixture
def admin(base_url: str) -> Client:
    return Client(base_url, ADMIN_TOKEN, timeout=10)


@pytest.fixture
def keys(settings: ApiSettings) -> Keys:  # noqa: F811
    return Keys(settings.etcd_prefix)


def store_of(app: Flask):  # type: ignore[no-untyped-def]  # noqa: F811
    return app.extensions["spaas"].store


def sig_spec(name: str = "s1", **fields: object) -> dict[str, object]:
    return {"name": name, "spark_version": SPARK_VERSIONS[0], **fields}


def test_tenants_quota_and_errors_carry_code_and_field(admin: Client) -> None:
    created = admin.create_tenant("acme", {"max_containers": 5, "cores": 20, "memory_mb": 20480, "gpus": 0})
    assert created["name"] == "acme" and created["quota"] == {"max_containers": 5, "cores": 20,
                                                             "memory_mb": 20480, "gpus": 0}
    assert [t["name"] for t in admin.list_tenants()] == ["acme"]
    assert admin.set_quota("acme", {"max_containers": 8})["quota"]["max_containers"] == 8
    assert admin.get_tenant("acme")["usage"]["containers"] == 0
    with pytest.raises(ApiError) as err:
        admin.create_tenant("acme")
    assert (err.value.status, err.value.code, err.value.field) == (409, "Conflict", "name")
    with pytest.raises(ApiError) as err:
        admin.create_tenant("Not_DNS")
    assert (err.value.status, err.value.code, err.value.field) == (422, "Invalid", "name")
    assert admin.delete_tenant("acme")["deleted"] is True
    with pytest.raises(ApiError) as err:
        admin.get_tenant("acme")
    assert err.value.status == 404


def test_no_token_is_401_and_the_token_never_shows(base_url: str) -> None:
    anon = Client(base_url)
    with pytest.raises(ApiError) as err:
        anon.list_tenants()
    assert err.value.status == 401
    assert ADMIN_TOKEN not in repr(Client(base_url, ADMIN_TOKEN))


def test_connection_refused_is_an_api_error_with_status_0() -> None:
    from spaas.stack import free_port

    c = Client(f"http://127.0.0.1:{free_port()}", "t", timeout=2, sleep=lambda s: None)
    with pytest.raises(ApiError) as err:
        c.healthz()
    assert (err.value.status, err.value.code) == (0, "ConnectionError")


def test_login_members_tokens(admin: Client, base_url: str) -> None:
    admin.create_tenant("acme")
    assert admin.put_member("acme", "bob", ["sig_configure", "user"]) == {"kind": "user", "name": "bob",
                                                                          "roles": ["sig_configure", "user"]}
    admin.put_member("acme", "acme-admins", ["consumer_admin"], kind="group")
    assert {(m["kind"], m["name"]) for m in admin.list_members("acme")} == {("user", "bob"), ("group", "acme-admins")}

    bob = Client(base_url, user="bob", password=PASSWORDS["bob"])
    assert bob.token and [t["name"] for t in bob.list_tenants()] == ["acme"]
    with pytest.raises(ApiError) as err:
        Client(base_url).login("bob", "wrong")
    assert err.value.status == 401

    made = bob.create_token("ci", expires_in_s=3600)
    assert made["token"] and made["name"] == "ci"
    listed = bob.list_tokens()
    assert [t["id"] for t in listed] == [made["id"]] and all("token" not in t for t in listed)
    by_token = Client(base_url, made["token"])
    assert [t["name"] for t in by_token.list_tenants()] == ["acme"]
    assert bob.delete_token(made["id"])["revoked"] is True
    with pytest.raises(ApiError) as err:
        by_token.list_tenants()
    assert err.value.status == 401

    admin.delete_member("acme", "bob")
    with pytest.raises(ApiError) as err:
        admin.delete_member("acme", "bob")
    assert (err.value.status, err.value.field) == (404, "name")
    bob.logout()
    assert bob.token is None


def test_sigs_update_generation_scaling_and_livy_url(admin: Client, app: Flask, keys: Keys) -> None:  # noqa: F811
    admin.create_tenant("acme")
    view = admin.create_sig("acme", sig_spec(scaling={"min_workers": 0, "max_workers": 3}))
    assert (view["name"], view["generation"], view["status"]["phase"]) == ("s1", 1, "PENDING")
    assert [s["name"] for s in admin.list_sigs("acme")] == ["s1"]
    same = admin.update_sig("acme", "s1", sig_spec(scaling={"min_workers": 0, "max_workers": 3}))
    assert same["generation"] == 1
    changed = admin.update_sig("acme", "s1", sig_spec(scaling={"min_workers": 0, "max_workers": 4}))
    assert changed["generation"] == 2 and changed["spec"]["scaling"]["max_workers"] == 4
    with pytest.raises(ApiError) as err:
        admin.update_sig("acme", "s1", sig_spec(spark_conf={"spark.master": "local"}))
    assert err.value.status == 422 and err.value.field and err.value.field.startswith("spark_conf")
    with pytest.raises(ApiError) as err:
        admin.create_sig("acme", sig_spec(spark_version="0.0.1"))
    assert (err.value.status, err.value.field) == (422, "spark_version")

    scaling = admin.scaling("acme", "s1")
    assert scaling["policy"]["max_workers"] == 4 and scaling["decisions"] == []
    assert admin.livy_url("acme", "s1") == f"{admin.base_url}/api/v1/tenants/acme/sigs/s1/livy"

    # wait_ready: READY only counts at the current generation.
    store = store_of(app)
    store.put(keys.sig_status("acme", "s1"), {"phase": "READY", "observed_generation": 1})
    with pytest.raises(TimeoutError, match="READY"):
        admin.wait_ready("acme", "s1", timeout=0.3, interval=0.1)
    threading.Timer(0.5, lambda: store.put(keys.sig_status("acme", "s1"),
                                           {"phase": "READY", "observed_generation": 2})).start()
    seen: list[str] = []
    ready = admin.wait_ready("acme", "s1", timeout=20, interval=0.1, on_poll=lambda v: seen.append(v["status"]["phase"]))
    assert ready["status"]["observed_generation"] == 2 and seen[-1] == "READY"
    store.put(keys.sig_status("acme", "s1"), {"phase": "FAILED", "reason": "DeployFailed", "message": "boom",
                                              "observed_generation": 2})
    with pytest.raises(SigFailed, match="boom"):
        admin.wait_ready("acme", "s1", timeout=5, interval=0.1)

    assert admin.delete_sig("acme", "s1")["status"]["phase"] == "DELETING"


def test_build_status_log_and_follow(admin: Client, app: Flask, keys: Keys, logs: RedisLogStreams) -> None:  # noqa: F811
    admin.create_tenant("acme")
    admin.create_sig("acme", sig_spec())
    logs.append(sig_build_stream("acme", "s1", 1), "step 1", "step 2")
    store_of(app).put(keys.sig_build("acme", "s1"), {"generation": 1, "state": "BUILDING", "key": "k1"})
    assert admin.build_status("acme", "s1")["state"] == "BUILDING"
    assert admin.build_log("acme", "s1")["log"] == ["step 1", "step 2"]
    assert admin.build_log("acme", "s1", start=1)["log"] == ["step 2"]

    def finish() -> None:
        logs.append(sig_build_stream("acme", "s1", 1), "step 3")
        time.sleep(1.5)  # longer than the API's follow_max_s: the client reconnects where it stopped
        logs.append(sig_build_stream("acme", "s1", 1), "done")
        store_of(app).put(keys.sig_build("acme", "s1"), {"generation": 1, "state": "SUCCEEDED", "key": "k1"})

    threading.Timer(0.3, finish).start()
    assert list(admin.follow_build_log("acme", "s1", start=1, timeout=30)) == ["step 2", "step 3", "done"]


def test_files_applications_log_follow_and_kill(admin: Client, app: Flask, keys: Keys,  # noqa: F811
                                                settings: ApiSettings, tmp_path: Path) -> None:  # noqa: F811
    admin.create_tenant("acme")
    admin.create_sig("acme", sig_spec())
    job = tmp_path / "job.py"
    job.write_text("print('hi')\n")
    assert admin.upload_file("acme", "s1", job) == {"path": "files/job.py", "size": 12}
    admin.upload_file("acme", "s1", job, name="old.py")
    assert [(f["path"], f["size"]) for f in admin.list_files("acme", "s1")] == [("files/job.py", 12), ("files/old.py", 12)]
    assert admin.delete_file("acme", "s1", "files/old.py") == {"path": "files/old.py", "deleted": True}
    with pytest.raises(ApiError) as err:
        admin.delete_file("acme", "s1", "old.py")
    assert (err.value.status, err.value.field) == (404, "name")
    # A link tenant code left in files/ is not listed, and deleting it removes the link, not its target.
    target = tmp_path / "outside.txt"
    target.write_text("keep me")
    (SigStorage(settings.storage_dir).files_dir("acme", "s1") / "link.py").symlink_to(target)
    assert [f["path"] for f in admin.list_files("acme", "s1")] == ["files/job.py"]
    admin.delete_file("acme", "s1", "link.py")
    assert target.read_text() == "keep me"
    with pytest.raises(ApiError) as err:
        admin.upload_file("acme", "s1", job, name="../x.py")
    assert (err.value.status, err.value.field) == (422, "file")
    with pytest.raises(ApiError) as err:
        admin.submit_app("acme", "s1", {"file": "files/missing.py"})
    assert (err.value.status, err.value.field) == (422, "file")

    submitted = admin.submit_app("acme", "s1", {"file": "files/job.py", "args": ["1"]}, idempotency_key="k-1")
    app_id = submitted["id"]
    assert submitted["state"] == "SUBMITTED"
    assert [a["id"] for a in admin.list_apps("acme", "s1")] == [app_id]
    assert admin.get_app("acme", "s1", app_id)["request"]["args"] == ["1"]

    # The master's agent writes the driver log and the state; the client follows until the end.
    log = SigStorage(settings.storage_dir).driver_log("acme", "s1", app_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("starting\n")
    store = store_of(app)
    store.put(keys.app_state("acme", "s1", app_id), {"state": "RUNNING"})

    def finish() -> None:
        with log.open("a") as fh:
            fh.write("RESULT 42\n")
        store.put(keys.app_state("acme", "s1", app_id), {"state": "FINISHED", "exit_code": 0})

    threading.Timer(0.5, finish).start()
    assert list(admin.follow_app_log("acme", "s1", app_id, timeout=30)) == ["starting", "RESULT 42"]
    assert admin.app_log("acme", "s1", app_id)["log"] == ["starting", "RESULT 42"]
    assert admin.wait_finished("acme", "s1", app_id, timeout=10)["state"] == "FINISHED"

    # Killing one that never started records KILLED at once.
    other = admin.submit_app("acme", "s1", {"file": "files/job.py"})["id"]
    with pytest.raises(TimeoutError, match="SUBMITTED"):
        admin.wait_finished("acme", "s1", other, timeout=0.2, interval=0.1)
    assert admin.kill_app("acme", "s1", other)["state"] == "KILLED"
    assert admin.wait_finished("acme", "s1", other, timeout=10)["state"] == "KILLED"


def test_another_tenants_objects_answer_404(admin: Client, base_url: str) -> None:
    for t in ("acme", "beta"):
        admin.create_tenant(t)
    admin.create_sig("beta", sig_spec("s2"))
    admin.put_member("acme", "bob", ["consumer_admin"])
    bob = Client(base_url, user="bob", password=PASSWORDS["bob"])
    bob.create_sig("acme", sig_spec())
    for call in (lambda: bob.get_tenant("beta"), lambda: bob.get_sig("beta", "s2"), lambda: bob.list_sigs("beta"),
                 lambda: bob.delete_sig("beta", "s2"), lambda: bob.submit_app("beta", "s2", {"file": "files/x.py"}),
                 lambda: bob.list_members("beta")):
        with pytest.raises(ApiError) as err:
            call()
        assert err.value.status == 404, err.value
    with pytest.raises(ApiError) as missing:
        bob.get_tenant("nope")
    with pytest.raises(ApiError) as other:
        bob.get_tenant("beta")
    assert (missing.value.code, missing.value.message.replace("nope", "X")) == \
        (other.value.code, other.value.message.replace("beta", "X"))
    assert [s["name"] for s in bob.list_sigs("acme")] == ["s1"]


def test_reads_are_retried_on_503_and_writes_are_sent_once() -> None:
    """A stand-in server (the transport boundary) that answers 503 until the third call of each method."""
    from werkzeug.wrappers import Request, Response

    calls: dict[str, int] = {"GET": 0, "POST": 0}

    @Request.application
    def unavailable(request: Request) -> Response:
        calls[request.method] += 1
        if calls[request.method] < 3:
            return Response('{"error": {"code": "TemporaryError", "message": "etcd is away"}}', 503,
                            {"Retry-After": "1", "Content-Type": "application/json"})
        return Response('{"tenants": []}', 200, {"Content-Type": "application/json"})

    server = make_server("127.0.0.1", 0, unavailable, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        slept: list[float] = []
        c = Client(f"http://127.0.0.1:{server.server_port}", "t", sleep=slept.append)
        assert c.list_tenants() == [] and calls["GET"] == 3 and slept == [1.0, 1.0]
        with pytest.raises(ApiError) as err:
            c.submit_app("acme", "s1", {"file": "files/job.py"})
        assert (err.value.status, err.value.code, calls["POST"]) == (503, "TemporaryError", 1)
        # One attempt per read when the caller says so (the console: a page shows the 503).
        calls["GET"] = 0
        once = Client(f"http://127.0.0.1:{server.server_port}", "t", sleep=slept.append, read_retries=1)
        with pytest.raises(ApiError) as err:
            once.list_tenants()
        assert (err.value.status, calls["GET"]) == (503, 1)
    finally:
        server.shutdown()


def test_notebook_servers_are_listed_and_stopped(admin: Client, app: Flask, keys: Keys) -> None:  # noqa: F811
    admin.create_tenant("acme")
    admin.create_sig("acme", sig_spec(notebooks={"jupyter": {"enabled": True}}))
    store_of(app).put(keys.notebook("acme", "s1", "alice"), {"requested_at": 1000.0, "last_activity": 1060.0})
    [server] = admin.list_notebooks("acme", "s1")
    assert (server["user"], server["state"], server["url"], server["last_activity"]) == \
        ("alice", "requested", "/sig/acme/s1/notebooks/alice/", 1060.0)
    assert admin.stop_notebook("acme", "s1", "Alice")["state"] == "stopping"  # names compare folded
    assert admin.list_notebooks("acme", "s1") == []
    with pytest.raises(ApiError) as err:
        admin.stop_notebook("acme", "s1", "alice")
    assert (err.value.status, err.value.field) == (404, "user")
