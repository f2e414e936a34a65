"""What the API keeps per unchanged record (spaas/memo.py: verified tokens, a caller's roles in a
tenant, the encoded SIG and application views) never outlives the record: with everything warm,
a revoked or expired token, a removed grant, a changed status or a deleted SIG show on the very
next request once the API's cache shows the change, and a user still cannot read another user's
application whose view is kept. The bound for a change made by another process (another replica,
a hand edit of etcd) is the watch latency of the API's cache, as without the memo."""

from __future__ import annotations

import time
import unicodedata

from flask import Flask
from flask.testing import FlaskClient

from spaas.auth import Identity, Tokens, hash_token
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.model import Application
from spaas.records import AppSpecRecord, AppStateRecord, SigStatus

from services.api import inputcheck
from tests.api.conftest import client_for, sig_body

API = "/api/v1"


def _warm(client: FlaskClient, path: str, times: int = 3) -> None:
    for _ in range(times):
        assert client.get(path).status_code == 200


def _tenant_with_user(client: FlaskClient, user: str = "alice", roles: tuple[str, ...] = ("user",)) -> None:
    assert client.post(f"{API}/tenants", json={"name": "acme"}).status_code == 201
    assert client.put(f"{API}/tenants/acme/members/user/{user}", json={"roles": list(roles)}).status_code == 200


def test_a_token_revoked_by_another_process_is_refused_within_the_watch_latency(
        app: Flask, client: FlaskClient, etcd_url: str, keys: Keys) -> None:
    _tenant_with_user(client)
    raw = EtcdStore(etcd_url, timeout_s=5.0)  # another replica's writes: no waiting for this API's cache
    issued = Tokens(raw, keys).issue(Identity("alice"), kind="api", ttl_s=3600)
    alice = client_for(app, issued.token)
    deadline = time.monotonic() + 10
    while alice.get(f"{API}/tenants/acme").status_code != 200:  # the API's cache shows the new token
        assert time.monotonic() < deadline
        time.sleep(0.01)
    _warm(alice, f"{API}/tenants/acme/sigs")
    raw.delete(keys.token(hash_token(issued.token)))
    revoked_at = time.monotonic()
    while alice.get(f"{API}/tenants/acme/sigs").status_code == 200:
        assert time.monotonic() - revoked_at < 5.0, "a revoked token still worked 5 s later"
        time.sleep(0.005)
    assert alice.get(f"{API}/tenants/acme/sigs").status_code == 401
    cached = app.extensions["spaas"].store
    assert cached.cache_for(keys.token(hash_token(issued.token))).get(keys.token(hash_token(issued.token))) is None


def test_an_expired_token_is_refused_though_its_record_is_still_stored(
        app: Flask, client: FlaskClient, store: EtcdStore, keys: Keys) -> None:
    _tenant_with_user(client)
    issued = Tokens(store, keys).issue(Identity("alice"), kind="api", ttl_s=2)
    alice = client_for(app, issued.token)
    _warm(alice, f"{API}/tenants/acme/sigs")
    while time.time() <= issued.expires_at:
        time.sleep(0.05)
    assert alice.get(f"{API}/tenants/acme/sigs").status_code == 401
    assert store.get(keys.token(hash_token(issued.token))) is not None  # the lease outlives expires_at


def test_a_token_dies_with_its_revoked_parent_while_warm(app: Flask, client: FlaskClient, store: EtcdStore,
                                                         keys: Keys) -> None:
    _tenant_with_user(client)
    tokens = Tokens(store, keys)
    parent = tokens.issue(Identity("alice"), kind="session", ttl_s=3600)
    parent_record = tokens.lookup(parent.token)
    assert parent_record is not None
    child = tokens.issue(Identity("alice"), kind="api", ttl_s=3600, parent=parent_record)
    alice = client_for(app, child.token)
    _warm(alice, f"{API}/tenants/acme/sigs")
    store.delete(keys.token(parent_record.token_hash))  # the parent alone: the child's own record stays
    assert store.get(keys.token(hash_token(child.token))) is not None
    assert alice.get(f"{API}/tenants/acme/sigs").status_code == 401


def test_a_removed_or_changed_grant_takes_effect_on_the_next_request(
        app: Flask, client: FlaskClient, store: EtcdStore, keys: Keys) -> None:
    _tenant_with_user(client)
    assert client.post(f"{API}/tenants/acme/sigs", json=sig_body()).status_code == 202
    alice = client_for(app, Tokens(store, keys).issue(Identity("alice"), kind="api", ttl_s=3600).token)
    _warm(alice, f"{API}/tenants/acme/sigs/s1")
    assert alice.delete(f"{API}/tenants/acme/sigs/s1").status_code == 403  # a user cannot delete SIGs
    # A grant edited by another process (raw etcd): sig_configure now.
    store.put(keys.member("acme", "user", "alice"), {"roles": ["user", "sig_configure"]})
    assert alice.put(f"{API}/tenants/acme/sigs/s1", json=sig_body()).status_code in (200, 202)
    store.delete(keys.member("acme", "user", "alice"))
    assert alice.get(f"{API}/tenants/acme/sigs/s1").status_code == 404
    assert alice.get(f"{API}/tenants/acme/sigs").status_code == 404


def test_views_follow_status_changes_and_deletion(app: Flask, client: FlaskClient, store: EtcdStore,
                                                  keys: Keys) -> None:
    _tenant_with_user(client)
    assert client.post(f"{API}/tenants/acme/sigs", json=sig_body()).status_code == 202
    _warm(client, f"{API}/tenants/acme/sigs/s1")
    _warm(client, f"{API}/tenants/acme/sigs")
    assert client.get(f"{API}/tenants/acme/sigs/s1").get_json()["status"]["phase"] == "PENDING"
    store.put(keys.sig_status("acme", "s1"), SigStatus(phase="READY", observed_generation=1,
                                                       master_url="spark://10.0.0.9:7077").to_value())
    one = client.get(f"{API}/tenants/acme/sigs/s1").get_json()
    assert one["status"]["phase"] == "READY" and one["status"]["master_url"] == "spark://10.0.0.9:7077"
    assert client.get(f"{API}/tenants/acme/sigs").get_json()["sigs"][0]["status"]["phase"] == "READY"
    assert client.post(f"{API}/tenants/acme/sigs", json=sig_body("s2")).status_code == 202
    assert [s["name"] for s in client.get(f"{API}/tenants/acme/sigs").get_json()["sigs"]] == ["s1", "s2"]
    store.delete_prefix(keys.sig("acme", "s2"))
    assert [s["name"] for s in client.get(f"{API}/tenants/acme/sigs").get_json()["sigs"]] == ["s1"]
    assert client.get(f"{API}/tenants/acme/sigs/s2").status_code == 404
    # The body is what Flask's JSON would send.
    resp = client.get(f"{API}/tenants/acme/sigs/s1")
    assert resp.mimetype == "application/json" and resp.get_data(as_text=True).endswith("}\n")


def test_a_kept_application_view_is_still_only_for_its_submitter_and_admins(
        app: Flask, client: FlaskClient, store: EtcdStore, keys: Keys) -> None:
    _tenant_with_user(client)
    assert client.put(f"{API}/tenants/acme/members/user/bob", json={"roles": ["user"]}).status_code == 200
    assert client.post(f"{API}/tenants/acme/sigs", json=sig_body()).status_code == 202
    store.create(keys.app_spec("acme", "s1", "app-1"), AppSpecRecord(
        request=Application(file="local:///opt/job.py", name="mine"), submitter="alice",
        submitted_at=time.time()).to_value())
    tokens = Tokens(store, keys)
    alice = client_for(app, tokens.issue(Identity("alice"), kind="api", ttl_s=3600).token)
    bob = client_for(app, tokens.issue(Identity("bob"), kind="api", ttl_s=3600).token)
    path = f"{API}/tenants/acme/sigs/s1/applications/app-1"
    _warm(alice, path)
    assert alice.get(path).get_json()["state"] == "SUBMITTED"
    assert bob.get(path).status_code == 403
    assert client.get(path).status_code == 200  # the cluster admin
    store.put(keys.app_state("acme", "s1", "app-1"), AppStateRecord(state="RUNNING", agent="a").to_value())
    assert alice.get(path).get_json()["state"] == "RUNNING"
    assert bob.get(path).status_code == 403
    assert bob.get(f"{API}/tenants/acme/sigs/s1/applications/nope").status_code == 404
    store.delete_prefix(keys.app("acme", "s1", "app-1"))
    assert alice.get(path).status_code == 404


def test_the_control_character_check_is_exactly_unicode_category_cc_and_separators() -> None:
    for code in range(0x3000):
        ch = chr(code)
        control = unicodedata.category(ch) == "Cc" or ch in "\u2028\u2029"
        assert (inputcheck.bad_char(f"a{ch}b") == ch) is control, hex(code)
        assert (inputcheck.bad_char(f"a{ch}b", allow=inputcheck.TEXT_OK) == ch) is (control and ch not in "\t\n\r")
    assert inputcheck.bad_char("x\ty\u2028", allow=frozenset("\t")) == "\u2028"
