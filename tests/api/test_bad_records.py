"""One bad record hurts only itself, as API users see it: with malformed records in etcd (where a
SIG's etcd user can write: its hosts and apps prefixes; and where it cannot: a SIG spec, a tenant
record, a grant, a token record), every list endpoint still answers 200 with the others, a bad
application shows FAILED with reason InvalidRecord, a bad SIG spec shows FAILED/InvalidRecord and
can be replaced or deleted, and nothing answers 500."""

from __future__ import annotations

import base64
import io

import pytest
from flask import Flask
from flask.testing import FlaskClient

from spaas.etcd import EtcdStore
from spaas.keys import Keys

from tests.api.conftest import client_for, error_of, login, sig_body

A = "/api/v1/tenants/acme/sigs/s1"


def put_raw(store: EtcdStore, key: str, raw: bytes) -> None:
    store.call("/v3/kv/put", {"key": base64.b64encode(key.encode()).decode(),
                              "value": base64.b64encode(raw).decode()})


@pytest.fixture
def good_app(client: FlaskClient, sig: str) -> str:
    resp = client.post(f"{A}/files", data={"file": (io.BytesIO(b"print(1)\n"), "job.py")},
                       content_type="multipart/form-data")
    assert resp.status_code == 201
    resp = client.post(f"{A}/applications", json={"file": "files/job.py"})
    assert resp.status_code == 201
    return str(resp.get_json()["id"])


def test_bad_application_records_show_their_reason_and_the_list_still_answers(
        client: FlaskClient, store: EtcdStore, keys: Keys, good_app: str) -> None:
    store.put(keys.app_spec("acme", "s1", "bad1"), {"request": {"file": "files/job.py",
                                                                "conf": {"spark.executor.cores": "x"}}})
    store.put(keys.app_spec("acme", "s1", "bad2"), {"request": {"file": "files/job.py", "numExecutors": 10**12}})
    put_raw(store, keys.app_spec("acme", "s1", "bad3"), b"not json")
    store.put(keys.app_spec("acme", "s1", "bad4"), {"request": {"file": "files/job.py"}, "submitter": "x"})
    put_raw(store, keys.app_state("acme", "s1", "bad4"), b"[]")
    put_raw(store, keys.apps("acme", "s1") + "x", b"junk")
    put_raw(store, keys.app("acme", "s1", "junk") + "garbage", b"junk")

    resp = client.get(f"{A}/applications")
    assert resp.status_code == 200
    apps = {a["id"]: a for a in resp.get_json()["applications"]}
    assert sorted(apps) == sorted([good_app, "bad1", "bad2", "bad3", "bad4"])
    assert apps[good_app]["state"] == "SUBMITTED" and apps[good_app]["reason"] is None
    for app_id, needle in (("bad1", "spark.executor.cores"), ("bad2", "numExecutors"), ("bad3", "not JSON"),
                           ("bad4", "not a JSON object")):
        assert (apps[app_id]["state"], apps[app_id]["reason"]) == ("FAILED", "InvalidRecord"), apps[app_id]
        assert needle in apps[app_id]["message"] and keys.app("acme", "s1", app_id) in apps[app_id]["message"]
    one = client.get(f"{A}/applications/bad1")
    assert one.status_code == 200 and one.get_json()["reason"] == "InvalidRecord"
    assert client.delete(f"{A}/applications/bad1").status_code == 200, "a malformed app is final already"
    assert client.get(f"{A}/applications/x").status_code == 404
    assert client.get(f"{A}/applications/junk").status_code == 404


def test_a_bad_sig_spec_shows_failed_and_can_be_replaced_or_deleted(
        client: FlaskClient, store: EtcdStore, keys: Keys, sig: str) -> None:
    assert client.post("/api/v1/tenants/acme/sigs", json=sig_body("s2")).status_code == 202
    assert client.post("/api/v1/tenants/acme/sigs", json=sig_body("s3")).status_code == 202
    store.put(keys.sig_spec("acme", "s2"), {"spec": {"name": "s2", "spark_version": 3}, "generation": "one"})
    put_raw(store, keys.sig_spec("acme", "s3"), b"garbage")
    put_raw(store, keys.sig_status("acme", "s1"), b"garbage")
    store.put(keys.sig("acme", "s1") + "junk", {"x": 1})
    put_raw(store, keys.sigs("acme") + "stray", b"x")

    resp = client.get("/api/v1/tenants/acme/sigs")
    assert resp.status_code == 200
    sigs = {s["name"]: s for s in resp.get_json()["sigs"]}
    assert sorted(sigs) == ["s1", "s2", "s3"]
    assert sigs["s1"]["status"]["phase"] == "PENDING" and sigs["s1"]["spec"]["name"] == "s1"
    for name in ("s2", "s3"):
        assert (sigs[name]["status"]["phase"], sigs[name]["status"]["reason"]) == ("FAILED", "InvalidRecord")
    assert "spec.spark_version" in sigs["s2"]["status"]["message"]

    # Actions that need the spec say why they cannot; a new spec repairs it; delete still works.
    files = client.post("/api/v1/tenants/acme/sigs/s2/files", data={"file": (io.BytesIO(b"x"), "a.py")},
                        content_type="multipart/form-data")
    assert files.status_code == 409 and "invalid" in error_of(files.get_json())["message"]
    fixed = client.put("/api/v1/tenants/acme/sigs/s2", json=sig_body("s2"))
    assert fixed.status_code == 202, fixed.get_json()
    assert fixed.get_json()["status"]["phase"] != "FAILED" and fixed.get_json()["generation"] >= 1
    gone = client.delete("/api/v1/tenants/acme/sigs/s3")
    assert gone.status_code == 202 and gone.get_json()["status"]["phase"] == "DELETING"


def test_bad_tenant_grant_and_token_records_break_nothing_else(
        app: Flask, client: FlaskClient, store: EtcdStore, keys: Keys, tenant: str) -> None:
    put_raw(store, keys.tenant("broken"), b"{{{")
    store.put(keys.tenant("liar"), {"name": "acme", "quota": {"cores": "lots"}})
    assert client.put("/api/v1/tenants/acme/members/user/alice", json={"roles": ["user"]}).status_code == 200
    store.put(keys.member("acme", "user", "mallory"), {"roles": "consumer_admin"})
    put_raw(store, keys.member("acme", "group", "ops"), b"no")

    resp = client.get("/api/v1/tenants")
    assert resp.status_code == 200
    tenants = {t["name"]: t for t in resp.get_json()["tenants"]}
    assert tenants["acme"]["quota"]["cores"] == 40
    assert tenants["broken"]["invalid"].startswith("InvalidRecord") and tenants["broken"]["quota"] is None
    assert client.get("/api/v1/tenants/broken").status_code == 200
    refused = client.post("/api/v1/tenants/broken/sigs", json=sig_body("s9"))
    assert refused.status_code == 409 and error_of(refused.get_json())["field"] == "tenant"

    members = client.get("/api/v1/tenants/acme/members")
    assert members.status_code == 200
    assert [(m["kind"], m["name"]) for m in members.get_json()["members"]] == [("user", "alice")]

    token = login(app, "alice", "alice-pw-1")
    alice = client_for(app, token)
    assert alice.get("/api/v1/tenants").status_code == 200
    assert [t["name"] for t in alice.get("/api/v1/tenants").get_json()["tenants"]] == ["acme"]
    made = alice.post("/api/v1/tokens", json={"name": "ci"})
    assert made.status_code == 201, made.get_json()
    put_raw(store, keys.user_token("alice", "deadbeef"), b"garbage")
    listed = alice.get("/api/v1/tokens")
    assert listed.status_code == 200 and [t["name"] for t in listed.get_json()["tokens"]] == ["ci"]
    # A token record that cannot be read authenticates nobody (401, not 500).
    put_raw(store, keys.token("0" * 64), b"garbage")
    assert client_for(app, "whatever").get("/api/v1/tenants").status_code == 401
