"""The console's SIG page for notebooks and the history server (issue 14), in-process: each user's
own "Open JupyterLab" link with their server's state, the history server's link and state, what
the SIG counts toward the quota (notebook and history containers included), the admins' list of
notebook servers with a Stop button (CSRF-checked, through the API), finished applications
linking their history page, and the SIG form's notebooks fields. The browser test is in
tests/console/test_console_notebooks.py."""

from __future__ import annotations

import dataclasses
import html
import io
import re
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.settings import ApiSettings

from tests.api.conftest import ADMIN_TOKEN, client_for, login
from tests.api.test_console import P, form

T, S = "acme", "lab"
PAGE = f"{P}/t/{T}/sigs/{S}/"


@pytest.fixture
def settings(settings: ApiSettings) -> ApiSettings:
    """As deployed: the API knows the proxy's public URL, so applications get their `history_url`."""
    return dataclasses.replace(settings, proxy_public_url="https://spaas.example")


@pytest.fixture
def lab(client: FlaskClient, store: EtcdStore, keys: Keys) -> dict[str, float]:
    """Tenant acme (alice admin, bob and carol users), SIG lab with notebooks and history on; the
    scaler's status says READY with alice's server running and bob's starting, and the proxy's
    demand records say when each was opened."""
    assert client.post("/api/v1/tenants", json={"name": T}).status_code == 201
    assert client.put(f"/api/v1/tenants/{T}/members/group/acme-admins", json={"roles": ["consumer_admin"]}).status_code == 200
    assert client.put(f"/api/v1/tenants/{T}/members/group/acme-devs", json={"roles": ["user"]}).status_code == 200
    body = {"name": S, "spark_version": "3.5.9", "resources": {"cpu": 1, "memory_mb": 1024},
            "scaling": {"min_workers": 1, "max_workers": 2}, "history": {"enabled": True},
            "notebooks": {"jupyter": {"enabled": True, "idle_timeout_s": 600}}}
    assert client.post(f"/api/v1/tenants/{T}/sigs", json=body).status_code == 202
    now = time.time()
    store.put(keys.sig_status(T, S), {
        "phase": "READY", "observed_generation": 1, "workers": {"desired": 1, "ready": 1},
        "history": {"enabled": True, "ready": True, "ui_url": "http://10.0.0.9:18080"},
        "notebooks": {"enabled": True, "idle_timeout_s": 600, "servers": [
            {"user": "alice", "state": "ready", "url": "/sig/acme/lab/notebooks/alice/", "container": "c-a"},
            {"user": "bob", "state": "starting", "url": "/sig/acme/lab/notebooks/bob/", "container": "c-b"}]}})
    store.put(keys.notebook(T, S, "alice"), {"requested_at": now - 600, "last_activity": now - 60})
    store.put(keys.notebook(T, S, "bob"), {"requested_at": now - 5})
    return {"now": now}


def test_each_user_sees_their_own_jupyterlab_link_and_its_state(app: Flask, lab: dict[str, float]) -> None:
    alice, bob, carol = (login(app, u, p) for u, p in (("alice", "alice-pw-1"), ("bob", "bob-pw-2"),
                                                       ("carol", "carol-pw-3")))
    live = client_for(app, alice).get(PAGE + "live").get_data(as_text=True)
    assert re.search(r'id="jupyter-state">running<.*href="/sig/acme/lab/notebooks/alice/"[^>]*>Open JupyterLab<', live, re.S)
    live = client_for(app, bob).get(PAGE + "live").get_data(as_text=True)
    assert re.search(r'id="jupyter-state">starting<.*href="/sig/acme/lab/notebooks/bob/"', live, re.S)
    assert "/notebooks/alice/" not in live  # only his own link
    text = client_for(app, carol).get(PAGE).get_data(as_text=True)
    assert re.search(r'id="jupyter-state">stopped<.*href="/sig/acme/lab/notebooks/carol/"', text, re.S)
    # The history server, running, for every member.
    assert re.search(r'id="history-state">running<.*href="/sig/acme/lab/history/"', text, re.S)


def test_the_page_shows_what_the_sig_counts_toward_the_quota(client: FlaskClient, lab: dict[str, float]) -> None:
    # master + 1 worker + 2 notebook servers (1 cpu / 1024 MiB each) + the history server (1 / 1024).
    sig = client.get(f"/api/v1/tenants/{T}/sigs/{S}").get_json()
    assert sig["status"]["usage"] == {"containers": 5, "cores": 5, "memory_mb": 5120, "gpus": 0,
                                      "by_role": {"master": 1, "worker": 1, "notebook": 2, "history": 1}}
    assert client.get(f"/api/v1/tenants/{T}").get_json()["usage"]["containers"] == 5
    live = client.get(PAGE + "live").get_data(as_text=True)
    assert "5 containers (1 master, 1 workers, 2 notebook servers, 1 history server), 5 cores, 5120 MiB" in live
    assert "Tenant acme in all: 5 / 10 containers, 5 / 40 cores, 5120 / 61440 MiB" in live


def test_admins_list_every_server_users_only_their_own(app: Flask, client: FlaskClient, lab: dict[str, float]) -> None:
    alice, bob = login(app, "alice", "alice-pw-1"), login(app, "bob", "bob-pw-2")
    for c in (client, client_for(app, alice)):  # the cluster admin and the tenant admin
        text = c.get(PAGE).get_data(as_text=True)
        assert "<h2>Notebook servers</h2>" in text
        assert "Stop the server of alice" in text and "Stop the server of bob" in text
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lab["now"] - 600))
    assert re.search(rf"<td>alice</td><td>ready</td><td>{started}</td><td>[0-9-]+ [0-9:]+</td>",
                     client.get(PAGE + "notebooks").get_data(as_text=True))
    text = client_for(app, bob).get(PAGE).get_data(as_text=True)
    assert "<h2>Your notebook server</h2>" in text and "Stop the server of bob" in text
    assert "alice" not in text.split("<h2>Your notebook server</h2>")[1].split("</section>")[0]
    assert "Stop the server of alice" not in client_for(app, bob).get(PAGE + "notebooks").get_data(as_text=True)


def test_the_stop_button_goes_through_the_api_and_needs_the_csrf_token(
        app: Flask, lab: dict[str, float], store: EtcdStore, keys: Keys) -> None:
    alice, bob = login(app, "alice", "alice-pw-1"), login(app, "bob", "bob-pw-2")
    as_alice = client_for(app, alice)
    stop = PAGE + "notebooks/bob/stop"
    resp = as_alice.post(stop, data={})
    assert resp.status_code == 403 and "reload the page" in resp.get_data(as_text=True)
    assert store.get(keys.notebook(T, S, "bob")) is not None  # nothing stopped
    # bob may stop his own server, not alice's (the API's 403, on a page).
    resp = form(client_for(app, bob), bob, PAGE + "notebooks/alice/stop", {})
    assert resp.status_code == 403 and "only 'alice' and the tenant's admins" in html.unescape(resp.get_data(as_text=True))
    assert store.get(keys.notebook(T, S, "alice")) is not None
    resp = form(as_alice, alice, stop, {})
    assert resp.status_code == 303 and "notice=The%20notebook%20server%20of%20bob%20is%20stopping" in resp.headers["Location"]
    assert store.get(keys.notebook(T, S, "bob")) is None  # the scaler stops the container on its next pass
    assert form(as_alice, alice, PAGE + "notebooks/nobody/stop", {}).status_code == 404


def test_another_tenants_user_gets_404(app: Flask, client: FlaskClient, lab: dict[str, float], store: EtcdStore,
                                       keys: Keys) -> None:
    assert client.post("/api/v1/tenants", json={"name": "beta"}).status_code == 201
    assert client.put("/api/v1/tenants/beta/members/group/beta-users", json={"roles": ["user"]}).status_code == 200
    dave = login(app, "dave", "dave-pw-4")
    as_dave = client_for(app, dave)
    for path in (PAGE, PAGE + "live", PAGE + "notebooks"):
        resp = as_dave.get(path)
        assert resp.status_code == 404 and "/notebooks/" not in resp.get_data(as_text=True), path
    assert form(as_dave, dave, PAGE + "notebooks/alice/stop", {}).status_code == 404
    assert store.get(keys.notebook(T, S, "alice")) is not None


def test_notebooks_off_show_no_link_and_history_starting_shows_its_state(
        client: FlaskClient, lab: dict[str, float], store: EtcdStore, keys: Keys) -> None:
    resp = form(client, ADMIN_TOKEN, PAGE + "edit", {"spark_version": "3.5.9", "history.enabled": "true",
                                                     "resources.cpu": "1", "resources.memory_mb": "1024"})
    assert resp.status_code == 303
    spec = client.get(f"/api/v1/tenants/{T}/sigs/{S}").get_json()["spec"]
    assert spec["notebooks"] == {"jupyter": {"enabled": False, "idle_timeout_s": 3600}}
    store.put(keys.sig_status(T, S), {"phase": "READY", "observed_generation": 2,
                                      "history": {"enabled": True, "ready": False}})
    store.delete(keys.notebook(T, S, "alice"))
    store.delete(keys.notebook(T, S, "bob"))
    text = client.get(PAGE).get_data(as_text=True)
    assert "Open JupyterLab" not in text and "Notebook servers" not in text
    assert re.search(r'id="history-state">starting<', text) and 'href="/sig/acme/lab/history/"' not in text


def test_the_sig_form_turns_notebooks_on_and_names_a_bad_field(client: FlaskClient, lab: dict[str, float]) -> None:
    edit = client.get(PAGE + "edit").get_data(as_text=True)
    assert re.search(r'name="notebooks.jupyter.enabled" value="true" checked', edit)
    assert 'name="notebooks.jupyter.idle_timeout_s" inputmode="numeric" value="600"' in edit
    fields = {"spark_version": "3.5.9", "resources.cpu": "1", "resources.memory_mb": "1024",
              "notebooks.jupyter.enabled": "true", "notebooks.jupyter.idle_timeout_s": "5"}
    resp = form(client, ADMIN_TOKEN, PAGE + "edit", fields)
    assert resp.status_code == 422
    assert re.search(r'id="err-notebooks[^"]*" role="alert">[^<]*idle_timeout_s', resp.get_data(as_text=True))
    resp = form(client, ADMIN_TOKEN, PAGE + "edit", dict(fields, **{"notebooks.jupyter.idle_timeout_s": "900"}))
    assert resp.status_code == 303
    spec = client.get(f"/api/v1/tenants/{T}/sigs/{S}").get_json()["spec"]
    assert spec["notebooks"] == {"jupyter": {"enabled": True, "idle_timeout_s": 900}}
    new = client.get(f"{P}/t/{T}/sigs/new").get_data(as_text=True)
    assert 'name="notebooks.jupyter.enabled" value="true">' in new  # off by default


def test_a_finished_application_links_its_history_page(client: FlaskClient, lab: dict[str, float], store: EtcdStore,
                                                       keys: Keys) -> None:
    assert client.post(f"/api/v1/tenants/{T}/sigs/{S}/files", data={"file": (io.BytesIO(b"print(1)\n"), "job.py")},
                       content_type="multipart/form-data").status_code == 201
    resp = client.post(f"/api/v1/tenants/{T}/sigs/{S}/applications", json={"file": "files/job.py", "name": "done"})
    assert resp.status_code == 201, resp.get_json()
    app_id = resp.get_json()["id"]
    assert "History of done" not in client.get(PAGE + "apps").get_data(as_text=True)
    store.put(keys.app_state(T, S, app_id), {"state": "FINISHED", "spark_app_id": "app-20260101-0001",
                                             "finished_at": time.time()})
    view = client.get(f"/api/v1/tenants/{T}/sigs/{S}/applications/{app_id}").get_json()
    assert view["history_url"] == "https://spaas.example/sig/acme/lab/history/history/app-20260101-0001/jobs/"
    # Same origin as the console (the proxy): the link is the path.
    link = r'href="/sig/acme/lab/history/history/app-20260101-0001/jobs/"[^>]*'
    assert re.search(link + r'aria-label="History of done"', client.get(PAGE + "apps").get_data(as_text=True))
    assert re.search(link + r">Open the application in the SIG's history server<",
                     client.get(PAGE + f"apps/{app_id}").get_data(as_text=True))
