"""Tenant code can change everything under its SIG's storage. Planted symlinks, hard links and
FIFOs there never make the API read a platform secret, write into another tenant's SIG, or hang."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from spaas.settings import ApiSettings

from tests.api.conftest import ADMIN_TOKEN, error_of, sig_body

S = "/api/v1/tenants/acme/sigs/s1"


def upload(client: FlaskClient, name: str = "job.py", data: bytes = b"print(1)\n", path: str = S) -> Any:
    return client.post(f"{path}/files", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


@pytest.fixture
def app_id(client: FlaskClient, sig: str) -> str:
    assert upload(client).status_code == 201
    resp = client.post(f"{S}/applications", json={"file": "files/job.py"})
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])


def sig_root(settings: ApiSettings, tenant: str = "acme", sig: str = "s1") -> Path:
    return settings.storage_dir / tenant / sig


def bounded(fn, seconds: float = 10):  # type: ignore[no-untyped-def]
    out: dict[str, Any] = {}
    t = threading.Thread(target=lambda: out.setdefault("v", fn()), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the API blocked"
    return out["v"]


def test_admin_token_file_is_where_the_test_expects(settings: ApiSettings, client: FlaskClient) -> None:
    assert ADMIN_TOKEN in settings.token_path.read_text()


@pytest.mark.parametrize("plant", ["symlink", "hardlink", "fifo", "dir-symlink"])
def test_a_planted_driver_log_never_serves_the_admin_token(client: FlaskClient, settings: ApiSettings, app_id: str,
                                                            plant: str) -> None:
    app_dir = sig_root(settings) / "apps" / app_id
    if plant == "dir-symlink":
        (sig_root(settings) / "apps").mkdir(parents=True)
        (settings.state_dir / "driver.log").symlink_to(settings.token_path)
        app_dir.symlink_to(settings.state_dir)  # apps/<id>/driver.log -> STATE/driver.log -> admin-token
    else:
        app_dir.mkdir(parents=True)
        log = app_dir / "driver.log"
        {"symlink": lambda: log.symlink_to(settings.token_path), "hardlink": lambda: os.link(settings.token_path, log),
         "fifo": lambda: os.mkfifo(log)}[plant]()
    resp = bounded(lambda: client.get(f"{S}/applications/{app_id}/log"))
    assert ADMIN_TOKEN not in resp.get_data(as_text=True)
    assert resp.status_code == 409, resp.get_json()
    error = error_of(resp.get_json())
    assert error["code"] == "UnsafeFile" and "not served" in error["message"]


def test_a_regular_driver_log_is_served_and_bounded(client: FlaskClient, settings: ApiSettings, app_id: str) -> None:
    assert client.get(f"{S}/applications/{app_id}/log").get_json()["log"] == []  # none yet
    app_dir = sig_root(settings) / "apps" / app_id
    app_dir.mkdir(parents=True)
    (app_dir / "driver.log").write_text("line 1\nline 2\n")
    body = client.get(f"{S}/applications/{app_id}/log").get_json()
    assert body["log"] == ["line 1", "line 2"] and body["total"] == 2 and "truncated" not in body


def test_upload_through_a_symlinked_files_dir_does_not_reach_another_tenant(client: FlaskClient,
                                                                             settings: ApiSettings, sig: str) -> None:
    assert client.post("/api/v1/tenants", json={"name": "other"}).status_code == 201
    assert client.post("/api/v1/tenants/other/sigs", json=sig_body("victim")).status_code == 202
    victim = sig_root(settings, "other", "victim")
    assert upload(client, "theirs.py", b"print('theirs')", path="/api/v1/tenants/other/sigs/victim").status_code == 201
    mine = sig_root(settings)
    mine.mkdir(parents=True, exist_ok=True)
    (mine / "files").symlink_to(victim / "files")
    resp = upload(client, "theirs.py", b"print('pwned')")
    assert resp.status_code == 409 and error_of(resp.get_json())["field"] == "file"
    assert (victim / "files" / "theirs.py").read_bytes() == b"print('theirs')"
    # The same when the SIG directory itself is the link.
    (mine / "files").unlink()
    os.rename(mine, settings.state_dir / "moved")
    mine.symlink_to(victim)
    assert upload(client, "theirs.py", b"print('pwned')").status_code == 409
    assert (victim / "files" / "theirs.py").read_bytes() == b"print('theirs')"


def test_upload_over_a_planted_link_or_fifo_replaces_it(client: FlaskClient, settings: ApiSettings, sig: str) -> None:
    files = sig_root(settings) / "files"
    files.mkdir(parents=True)
    (files / "job.py").symlink_to(settings.token_path)
    os.mkfifo(files / "pipe.py")
    assert bounded(lambda: upload(client, "job.py")).status_code == 201
    assert bounded(lambda: upload(client, "pipe.py")).status_code == 201
    assert ADMIN_TOKEN in settings.token_path.read_text()  # untouched
    assert (files / "job.py").read_bytes() == b"print(1)\n" and not (files / "job.py").is_symlink()


@pytest.mark.parametrize("plant", ["symlink", "fifo", "dir-symlink"])
def test_submit_refuses_files_that_are_links_or_special(client: FlaskClient, settings: ApiSettings, sig: str,
                                                         plant: str) -> None:
    files = sig_root(settings) / "files"
    files.mkdir(parents=True)
    if plant == "symlink":
        (files / "job.py").symlink_to(settings.token_path)
        rel = "files/job.py"
    elif plant == "fifo":
        os.mkfifo(files / "job.py")
        rel = "files/job.py"
    else:
        (files / "lib").symlink_to(settings.state_dir)
        rel = "files/lib/admin-token"
    resp = bounded(lambda: client.post(f"{S}/applications", json={"file": "files/ok.py", "pyFiles": [rel]}))
    assert resp.status_code == 422
    resp = bounded(lambda: client.post(f"{S}/applications", json={"file": rel}))
    assert resp.status_code == 422 and error_of(resp.get_json())["field"] == "file"


def test_the_admin_token_file_may_not_live_in_sig_storage(settings: ApiSettings, logs) -> None:  # type: ignore[no-untyped-def]
    from services.api.app import create_app

    with pytest.raises(SystemExit, match="must not be inside SIG storage"):
        create_app(settings.replace(admin_token_file=settings.storage_dir / "acme" / "admin-token"), logs=logs)


def test_a_link_planted_at_the_token_file_is_replaced_not_written_through(settings: ApiSettings, logs,  # type: ignore[no-untyped-def]
                                                                          tmp_path: Path) -> None:
    from services.api.app import create_app

    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("keep")
    token_file = tmp_path / "tokens" / "admin-token"
    token_file.parent.mkdir()
    token_file.symlink_to(elsewhere)
    create_app(settings.replace(admin_token_file=token_file), logs=logs)
    assert elsewhere.read_text() == "keep"
    assert not token_file.is_symlink() and token_file.stat().st_mode & 0o777 == 0o600
