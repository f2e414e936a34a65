"""`Idempotency-Key` on application submission and SIG creation (services/api/idempotency.py)."""

from __future__ import annotations

import io

from flask import Flask
from flask.testing import FlaskClient

from spaas.auth import Identity, Tokens
from spaas.keys import Keys
from spaas.records import read_apps, read_sigs
from spaas.store import Store

from tests.api.conftest import client_for, error_of, sig_body

APP = {"file": "files/job.py"}


def upload(client: FlaskClient, tenant: str, sig: str) -> None:
    resp = client.post(f"/api/v1/tenants/{tenant}/sigs/{sig}/files", data={"file": (io.BytesIO(b"print(1)\n"), "job.py")},
                       content_type="multipart/form-data")
    assert resp.status_code == 201


def test_a_repeated_submission_answers_the_first_application(client: FlaskClient, tenant: str, sig: str,
                                                             store: Store, keys: Keys) -> None:
    upload(client, tenant, sig)
    url = f"/api/v1/tenants/{tenant}/sigs/{sig}/applications"
    first = client.post(url, json=APP, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = client.post(url, json=APP, headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    other = client.post(url, json={**APP, "args": ["x"]}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 422
    assert error_of(other.get_json())["code"] == "IdempotencyKeyReused"
    assert error_of(other.get_json())["field"] == "Idempotency-Key"
    assert client.post(url, json=APP).status_code == 201  # no key: a new application each time
    assert len([a for a in read_apps(store, keys, tenant, sig) if a.has_spec]) == 2


def test_keys_are_per_principal(app: Flask, client: FlaskClient, tenant: str, sig: str, store: Store,
                                keys: Keys) -> None:
    upload(client, tenant, sig)
    assert client.put(f"/api/v1/tenants/{tenant}/members/user/bob", json={"roles": ["user"]}).status_code == 200
    bob = client_for(app, Tokens(store, keys).issue(Identity("bob"), kind="session", ttl_s=600).token)
    url = f"/api/v1/tenants/{tenant}/sigs/{sig}/applications"
    mine = client.post(url, json=APP, headers={"Idempotency-Key": "same"}).get_json()["id"]
    theirs = bob.post(url, json=APP, headers={"Idempotency-Key": "same"})
    assert theirs.status_code == 201 and theirs.get_json()["id"] != mine


def test_a_failed_first_request_leaves_nothing(client: FlaskClient, tenant: str, sig: str) -> None:
    url = f"/api/v1/tenants/{tenant}/sigs/{sig}/applications"
    assert client.post(url, json=APP, headers={"Idempotency-Key": "k-2"}).status_code == 422  # no such file yet
    upload(client, tenant, sig)
    assert client.post(url, json=APP, headers={"Idempotency-Key": "k-2"}).status_code == 201


def test_bad_keys_are_refused(client: FlaskClient, tenant: str, sig: str) -> None:
    resp = client.post(f"/api/v1/tenants/{tenant}/sigs/{sig}/applications", json=APP,
                       headers={"Idempotency-Key": "x" * 201})
    assert resp.status_code == 422 and error_of(resp.get_json())["field"] == "Idempotency-Key"


def test_a_repeated_sig_creation_answers_the_first(client: FlaskClient, tenant: str, store: Store,
                                                   keys: Keys) -> None:
    url = f"/api/v1/tenants/{tenant}/sigs"
    first = client.post(url, json=sig_body("s9"), headers={"Idempotency-Key": "sig-1"})
    assert first.status_code == 202
    again = client.post(url, json=sig_body("s9"), headers={"Idempotency-Key": "sig-1"})
    assert again.status_code == 200 and again.get_json()["name"] == first.get_json()["name"]
    plain = client.post(url, json=sig_body("s9"))
    assert plain.status_code == 409  # without the key a second create is the usual conflict
    assert [s.sig for s in read_sigs(store, keys, tenant)] == ["s9"]
