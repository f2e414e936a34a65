"""The console's pages (served by the API under /platform), in-process: each page renders what the
API answers the caller, offers only what the caller may do, and checks the form's CSRF token.
The browser tests (tests/console) drive the same pages through the proxy in Chromium."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
import requests

from flask import Flask
from flask.testing import FlaskClient

from spaas.auth import csrf_token

from tests.api.conftest import ADMIN_TOKEN, client_for, login

P = "/platform"


def form(client: FlaskClient, token: str, path: str, data: dict, **kw) -> object:
    return client.post(path, data=dict(data, csrf_token=csrf_token(token)), **kw)


def test_pages_render_for_the_admin_and_changes_go_through_the_api(client: FlaskClient) -> None:
    assert "Create a tenant" in client.get(P + "/").get_data(as_text=True)
    resp = form(client, ADMIN_TOKEN, P + "/tenants", {"name": "acme", "max_containers": "8"})
    assert resp.status_code == 303
    assert client.get("/api/v1/tenants/acme").get_json()["quota"]["max_containers"] == 8
    assert form(client, ADMIN_TOKEN, P + "/t/acme/quota", {"max_containers": "12", "cores": "30"}).status_code == 303
    assert client.get("/api/v1/tenants/acme").get_json()["quota"]["max_containers"] == 12
    resp = form(client, ADMIN_TOKEN, P + "/t/acme/quota", {"max_containers": "-1"})
    assert resp.status_code == 422 and "max_containers" in resp.get_data(as_text=True)
    # A SIG through the form; then its page, live fragments and the scaling chart.
    resp = form(client, ADMIN_TOKEN, P + "/t/acme/sigs/new", {
        "name": "s1", "spark_version": "3.5.9", "conf_key": ["spark.executor.cores", ""], "conf_value": ["1", ""],
        "python_packages": "", "resources.cpu": "1", "resources.memory_mb": "1024", "resources.max_cpu": "2",
        "resources.max_memory_mb": "2048", "scaling.min_workers": "1", "scaling.max_workers": "2",
        "scaling.allocation_unit": "1", "scaling.interval_s": "5", "scaling.idle_timeout_s": "60"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/platform/t/acme/sigs/s1/")
    assert client.get("/api/v1/tenants/acme/sigs/s1").get_json()["spec"]["spark_conf"] == {"spark.executor.cores": "1"}
    usage = client.get("/api/v1/tenants/acme").get_json()["usage"]
    assert usage == {"containers": 2, "cores": 2, "memory_mb": 2048, "gpus": 0}  # master + min_workers
    assert "2 containers, 2 cores, 2048 MiB, 0 GPUs" in client.get(P + "/t/acme/").get_data(as_text=True)
    home = client.get(P + "/").get_data(as_text=True)
    assert "<td>2 / 12</td><td>2 / 30</td><td>2048 / " in home  # the tenants list: used / quota
    text = client.get(P + "/t/acme/sigs/s1/").get_data(as_text=True)
    assert "PENDING" in text and "Edit SIG" in text and 'data-follow="/api/v1/tenants/acme/sigs/s1/build/log"' in text
    assert "PENDING" in client.get(P + "/t/acme/sigs/s1/live").get_data(as_text=True)
    # Upload and submit in one form.
    resp = form(client, ADMIN_TOKEN, P + "/t/acme/sigs/s1/apps", {
        "file": (io.BytesIO(b"print('RESULT 1')\n"), "job.py"), "args": "a\nb", "name": "first"},
        content_type="multipart/form-data")
    assert resp.status_code == 303, resp.get_data(as_text=True)
    app_id = resp.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    assert client.get(f"/api/v1/tenants/acme/sigs/s1/applications/{app_id}").get_json()["request"]["args"] == ["a", "b"]
    assert "first" in client.get(P + "/t/acme/sigs/s1/apps").get_data(as_text=True)
    assert "Kill application" in client.get(P + f"/t/acme/sigs/s1/apps/{app_id}").get_data(as_text=True)
    resp = form(client, ADMIN_TOKEN, P + f"/t/acme/sigs/s1/apps/{app_id}/kill", {})
    assert resp.status_code == 303
    assert "KILLED" in client.get(P + f"/t/acme/sigs/s1/apps/{app_id}/live").get_data(as_text=True)


def test_api_422_is_shown_next_to_the_field_it_names(client: FlaskClient, tenant: str) -> None:
    resp = form(client, ADMIN_TOKEN, P + f"/t/{tenant}/sigs/new", {
        "name": "s9", "spark_version": "3.5.9", "resources.cpu": "8", "resources.max_cpu": "2",
        "resources.memory_mb": "1024", "resources.max_memory_mb": "2048", "scaling.min_workers": "1",
        "scaling.max_workers": "2", "scaling.allocation_unit": "1", "scaling.interval_s": "5",
        "scaling.idle_timeout_s": "60"})
    assert resp.status_code == 422
    text = resp.get_data(as_text=True)
    assert re.search(r'id="err-resources[^"]*" role="alert">[^<]*max_cpu', text), text
    resp = form(client, ADMIN_TOKEN, P + f"/t/{tenant}/sigs/new", {"name": "s9", "spark_version": "3.5.9",
                                                                    "scaling.min_workers": "x"})
    assert 'id="err-scaling-min_workers" role="alert"' in resp.get_data(as_text=True)


def test_a_form_without_the_csrf_token_is_refused(client: FlaskClient, tenant: str) -> None:
    resp = client.post(P + "/tenants", data={"name": "nope"})
    assert resp.status_code == 403 and "reload the page" in resp.get_data(as_text=True)
    assert client.get("/api/v1/tenants/nope").status_code == 404


def test_a_user_sees_no_edit_button_and_no_other_tenant(app: Flask, client: FlaskClient, sig: str) -> None:
    assert client.post("/api/v1/tenants", json={"name": "beta"}).status_code == 201
    assert client.put("/api/v1/tenants/acme/members/group/acme-devs", json={"roles": ["user"]}).status_code == 200
    bob = login(app, "bob", "bob-pw-2")
    as_bob = client_for(app, bob)
    text = as_bob.get(P + "/").get_data(as_text=True)
    assert "acme" in text and "beta" not in text and "Create a tenant" not in text
    text = as_bob.get(P + f"/t/acme/sigs/{sig}/").get_data(as_text=True)
    assert "Edit SIG" not in text and "Delete SIG" not in text and "Submit" in text
    assert "Create a SIG" not in as_bob.get(P + "/t/acme/").get_data(as_text=True)
    assert as_bob.get(P + "/t/beta/").status_code == 404
    # Not offered, and still refused by the API when tried.
    assert as_bob.get(P + f"/t/acme/sigs/{sig}/edit").status_code == 403
    resp = form(as_bob, bob, P + f"/t/acme/sigs/{sig}/delete", {})
    assert resp.status_code == 403 and "needs one of the roles" in resp.get_data(as_text=True)
    assert client.get(f"/api/v1/tenants/acme/sigs/{sig}").get_json()["status"]["phase"] != "DELETING"


def test_tokens_are_shown_once_listed_and_revoked(app: Flask) -> None:
    alice = login(app, "alice", "alice-pw-1")
    c = client_for(app, alice)
    text = form(c, alice, P + "/tokens", {"name": "ci", "days": "2"}).get_data(as_text=True)
    token = re.search(r'id="new-token" readonly size="60" value="([^"]+)"', text).group(1)
    assert client_for(app, token).get("/api/v1/tokens").status_code == 200
    text = c.get(P + "/tokens").get_data(as_text=True)
    assert token not in text and "Revoke ci" in text
    token_id = re.search(r'/platform/tokens/([^/]+)/delete', text).group(1)
    assert form(c, alice, P + f"/tokens/{token_id}/delete", {}).status_code == 303
    assert client_for(app, token).get("/api/v1/tokens").status_code == 401


def test_history_server_from_the_form_to_the_sig_page(client: FlaskClient, store, keys) -> None:  # type: ignore[no-untyped-def]
    """The SIG form's checkbox turns the history server on (an edit keeps it as shown), and the
    SIG page links it once the scaler reports it ready."""
    assert form(client, ADMIN_TOKEN, P + "/tenants", {"name": "acme"}).status_code == 303
    fields = {"name": "h1", "spark_version": "3.5.9", "scaling.min_workers": "0", "history.enabled": "true"}
    assert form(client, ADMIN_TOKEN, P + "/t/acme/sigs/new", fields).status_code == 303
    assert client.get("/api/v1/tenants/acme/sigs/h1").get_json()["spec"]["history"] == {"enabled": True}
    edit = client.get(P + "/t/acme/sigs/h1/edit").get_data(as_text=True)
    assert re.search(r'name="history.enabled" value="true" checked', edit)
    assert form(client, ADMIN_TOKEN, P + "/t/acme/sigs/h1/edit", {"spark_version": "3.5.9",
                                                                "history.enabled": "true"}).status_code == 303
    assert client.get("/api/v1/tenants/acme/sigs/h1").get_json()["spec"]["history"] == {"enabled": True}
    assert "/sig/acme/h1/history/" not in client.get(P + "/t/acme/sigs/h1/live").get_data(as_text=True)
    store.put(keys.sig_status("acme", "h1"), {"phase": "READY", "observed_generation": 2, "history": {
        "enabled": True, "ready": True, "ui_url": "http://10.0.0.9:18080"}})
    assert 'href="/sig/acme/h1/history/"' in client.get(P + "/t/acme/sigs/h1/live").get_data(as_text=True)
    # Unticked: off.
    assert form(client, ADMIN_TOKEN, P + "/t/acme/sigs/h1/edit", {"spark_version": "3.5.9"}).status_code == 303
    assert client.get("/api/v1/tenants/acme/sigs/h1").get_json()["spec"]["history"] == {"enabled": False}


def test_the_console_calls_the_api_through_the_sdk_in_process_as_the_caller(
        client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # No HTTP hop: a page's API calls are served by the app itself (services/api/console/api.py), never
    # by requests' network adapter (which the store's etcd client still uses, to other URLs).
    over_http: list[str] = []
    send = requests.adapters.HTTPAdapter.send

    def spy(self: requests.adapters.HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kw: Any) -> Any:
        over_http.append(str(request.url))
        return send(self, request, *args, **kw)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", spy)
    resp = form(client, ADMIN_TOKEN, P + "/tenants", {"name": "viaconsole"},
                environ_base={"REMOTE_ADDR": "192.0.2.77"})
    assert resp.status_code == 303
    # The API audited the change as the caller, from the browser's address.
    entries = client.get("/api/v1/audit").get_json()["entries"]
    created = [e for e in entries if e["action"] == "tenant.create"]
    assert (created[0]["client"], created[0]["resource"]) == ("192.0.2.77", "/api/v1/tenants")
    # An error answer (the SDK's ApiError) is the page's status and message.
    resp = form(client, ADMIN_TOKEN, P + "/tenants", {"name": "viaconsole"})
    assert resp.status_code == 409 and "viaconsole" in resp.get_data(as_text=True)
    assert client.get(P + "/t/nosuch/").status_code == 404
    assert not [u for u in over_http if "/api/v1/" in u]
