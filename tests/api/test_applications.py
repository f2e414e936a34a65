"""The API contract for files and Livy-shaped batch applications: upload, submit, read, list,
kill and driver logs, and that an application is only reachable under its own tenant and SIG.

No agent runs, so applications stay SUBMITTED until killed."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask.testing import FlaskClient

from spaas.settings import ApiSettings
from spaas.storage import SigStorage

from tests.api.conftest import error_of, sig_body

T = "/api/v1/tenants/acme"
S = f"{T}/sigs/s1"
LIVY_REQUEST: dict[str, Any] = {
    "file": "files/job.py",
    "className": "org.example.Job",
    "args": ["--rows", "10"],
    "pyFiles": ["files/lib.py"],
    "conf": {"spark.executor.memory": "1g"},
    "name": "nightly",
    "driverMemory": "512m",
    "executorMemory": "1g",
    "executorCores": 1,
    "numExecutors": 2,
}


def upload(client: FlaskClient, sig_url: str, name: str, data: bytes = b"print('hi')\n") -> Any:
    return client.post(f"{sig_url}/files", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def submit(client: FlaskClient, sig_url: str, **request: Any) -> str:
    resp = client.post(f"{sig_url}/applications", json={"file": "files/job.py", **request})
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])


@pytest.fixture
def files(client: FlaskClient, sig: str) -> list[str]:
    """files/job.py and files/lib.py uploaded to acme/s1."""
    paths = []
    for name in ("job.py", "lib.py"):
        resp = upload(client, S, name)
        assert resp.status_code == 201, resp.get_json()
        paths.append(resp.get_json()["path"])
    return paths


def test_upload_stores_the_file_under_files(client: FlaskClient, settings: ApiSettings, sig: str) -> None:
    resp = upload(client, S, "job.py", b"print(42)\n")
    assert resp.status_code == 201
    assert resp.get_json()["path"] == "files/job.py"
    stored = SigStorage(settings.storage_dir).files_dir("acme", sig) / "job.py"
    assert stored.read_bytes() == b"print(42)\n"


def test_upload_again_replaces_the_file(client: FlaskClient, settings: ApiSettings, sig: str) -> None:
    assert upload(client, S, "job.py", b"v1").status_code == 201
    assert upload(client, S, "job.py", b"v2").status_code == 201
    assert (SigStorage(settings.storage_dir).files_dir("acme", sig) / "job.py").read_bytes() == b"v2"


def test_submit_answers_201_with_id_and_submitted(client: FlaskClient, files: list[str]) -> None:
    resp = client.post(f"{S}/applications", json={"file": "files/job.py"})
    assert resp.status_code == 201
    body = resp.get_json()
    assert set(body) == {"id", "state"}
    assert body["state"] == "SUBMITTED"
    assert isinstance(body["id"], str) and body["id"]


def test_get_shows_state_submitter_and_the_livy_request(client: FlaskClient, files: list[str]) -> None:
    app_id = submit(client, S, **{k: v for k, v in LIVY_REQUEST.items() if k != "file"})
    resp = client.get(f"{S}/applications/{app_id}")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["id"] == app_id
    assert body["state"] == "SUBMITTED"
    assert body["name"] == "nightly"
    assert body["submitter"] == "admin"
    assert body["kill_requested"] is False
    assert isinstance(body["submitted_at"], float)
    assert {k: body["request"][k] for k in LIVY_REQUEST} == LIVY_REQUEST


def test_list_contains_the_submitted_application(client: FlaskClient, files: list[str]) -> None:
    app_id = submit(client, S)
    resp = client.get(f"{S}/applications")
    assert resp.status_code == 200
    apps = resp.get_json()["applications"]
    assert [(a["id"], a["state"]) for a in apps] == [(app_id, "SUBMITTED")]


def test_ids_sort_in_submission_order(client: FlaskClient, files: list[str]) -> None:
    ids = [submit(client, S, name=f"run-{i}") for i in range(3)]
    assert sorted(ids) == ids
    listed = client.get(f"{S}/applications").get_json()["applications"]
    assert [a["id"] for a in listed] == ids
    assert [a["name"] for a in listed] == ["run-0", "run-1", "run-2"]


def test_kill_of_a_never_started_app_records_killed_before_start(client: FlaskClient, files: list[str]) -> None:
    app_id = submit(client, S)
    resp = client.delete(f"{S}/applications/{app_id}")
    assert resp.status_code == 202
    assert resp.get_json()["state"] == "KILLED"
    body = client.get(f"{S}/applications/{app_id}").get_json()
    assert (body["state"], body["reason"]) == ("KILLED", "KilledBeforeStart")
    assert body["kill_requested"] is True
    assert isinstance(body["finished_at"], float)


def test_kill_of_a_terminal_app_is_200_and_changes_nothing(client: FlaskClient, files: list[str]) -> None:
    app_id = submit(client, S)
    assert client.delete(f"{S}/applications/{app_id}").status_code == 202
    before = client.get(f"{S}/applications/{app_id}").get_json()
    resp = client.delete(f"{S}/applications/{app_id}")
    assert resp.status_code == 200
    assert resp.get_json() == before
    assert client.get(f"{S}/applications/{app_id}").get_json() == before


def test_log_of_an_app_without_driver_log_is_empty(client: FlaskClient, files: list[str]) -> None:
    app_id = submit(client, S)
    resp = client.get(f"{S}/applications/{app_id}/log")
    assert resp.status_code == 200
    body = resp.get_json()
    assert (body["log"], body["total"]) == ([], 0)


def test_driver_log_is_served_with_paging(client: FlaskClient, settings: ApiSettings, files: list[str]) -> None:
    app_id = submit(client, S)
    path = SigStorage(settings.storage_dir).driver_log("acme", "s1", app_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"line {i}\n" for i in range(10)))
    page = client.get(f"{S}/applications/{app_id}/log", query_string={"from": 3, "size": 4}).get_json()
    assert page["log"] == ["line 3", "line 4", "line 5", "line 6"]
    assert (page["total"], page["from"], page["id"]) == (10, 3, app_id)
    whole = client.get(f"{S}/applications/{app_id}/log").get_json()
    assert whole["log"] == [f"line {i}" for i in range(10)] and whole["total"] == 10
    past_end = client.get(f"{S}/applications/{app_id}/log", query_string={"from": 20}).get_json()
    assert (past_end["log"], past_end["total"]) == ([], 10)


def test_app_is_not_reachable_under_another_sig_of_the_tenant(client: FlaskClient, files: list[str]) -> None:
    app_id = submit(client, S)
    assert client.post(f"{T}/sigs", json=sig_body("s2")).status_code == 202
    other = f"{T}/sigs/s2"
    for method, suffix in (("GET", ""), ("GET", "/log"), ("DELETE", "")):
        resp = client.open(f"{other}/applications/{app_id}{suffix}", method=method)
        assert resp.status_code == 404, (method, suffix)
        assert error_of(resp.get_json())["code"] == "NotFound"
    assert client.get(f"{other}/applications").get_json()["applications"] == []
    assert client.get(f"{S}/applications/{app_id}").get_json()["state"] == "SUBMITTED"


def test_app_is_not_reachable_under_another_tenant(client: FlaskClient, files: list[str]) -> None:
    app_id = submit(client, S)
    assert client.post("/api/v1/tenants", json={"name": "other"}).status_code == 201
    assert client.post("/api/v1/tenants/other/sigs", json=sig_body("s1")).status_code == 202
    other = "/api/v1/tenants/other/sigs/s1"
    for method, suffix in (("GET", ""), ("GET", "/log"), ("DELETE", "")):
        resp = client.open(f"{other}/applications/{app_id}{suffix}", method=method)
        assert resp.status_code == 404, (method, suffix)
    assert client.get(f"{other}/applications").get_json()["applications"] == []
    assert client.get(f"{S}/applications/{app_id}").get_json()["state"] == "SUBMITTED"


def test_files_of_another_tenant_cannot_be_submitted(client: FlaskClient, files: list[str]) -> None:
    assert client.post("/api/v1/tenants", json={"name": "other"}).status_code == 201
    assert client.post("/api/v1/tenants/other/sigs", json=sig_body("s1")).status_code == 202
    other = "/api/v1/tenants/other/sigs/s1"
    for path in ("files/job.py", "../../acme/s1/files/job.py"):
        resp = client.post(f"{other}/applications", json={"file": path})
        assert resp.status_code == 422, path
        assert error_of(resp.get_json())["field"] == "file"


def test_submit_to_a_deleting_sig_is_409(client: FlaskClient, files: list[str]) -> None:
    assert client.delete(S).status_code == 202
    resp = client.post(f"{S}/applications", json={"file": "files/job.py"})
    assert resp.status_code == 409
    assert error_of(resp.get_json())["field"] == "sig"
