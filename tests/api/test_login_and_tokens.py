"""Login against a real slapd, group-granted roles, logout, personal API tokens, the failed-login
rate limit, the audit log, and that no secret ever reaches a response or a log line."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.settings import ApiSettings
from spaas.auth import hash_token

from services.api.app import create_app
from tests.api.conftest import client_for, error_of, login, sig_body
from tests.ldap_fixture import Ldap

API = "/api/v1"


def test_ldap_login_returns_a_token_and_group_roles_take_effect(app: Flask, client: FlaskClient,
                                                                 ldap_server: Ldap) -> None:
    resp = app.test_client().post(f"{API}/login", json={"username": "bob", "password": ldap_server.passwords["bob"]})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["user"] == "bob" and body["groups"] == ["acme-devs"]
    assert body["expires_at"] > time.time() + 3600
    bob = client_for(app, body["token"])
    assert bob.get(f"{API}/tenants").get_json() == {"tenants": []}
    assert client.post(f"{API}/tenants", json={"name": "acme"}).status_code == 201
    assert bob.get(f"{API}/tenants/acme").status_code == 404
    # A grant to bob's posixGroup makes him a user of acme; sig_configure to the group lets him create SIGs.
    assert client.put(f"{API}/tenants/acme/members/group/acme-devs", json={"roles": ["user"]}).status_code == 200
    assert bob.get(f"{API}/tenants/acme").status_code == 200
    assert bob.post(f"{API}/tenants/acme/sigs", json=sig_body()).status_code == 403
    assert client.put(f"{API}/tenants/acme/members/group/acme-devs",
                      json={"roles": ["user", "sig_configure"]}).status_code == 200
    assert bob.post(f"{API}/tenants/acme/sigs", json=sig_body()).status_code == 202
    members = client.get(f"{API}/tenants/acme/members").get_json()["members"]
    assert members == [{"kind": "group", "name": "acme-devs", "roles": ["sig_configure", "user"]}]
    assert client.delete(f"{API}/tenants/acme/members/group/acme-devs").status_code == 200
    assert bob.get(f"{API}/tenants/acme").status_code == 404


def test_cluster_admin_by_group_setting(app: Flask, ldap_server: Ldap) -> None:
    ops = client_for(app, login(app, "opsadmin", ldap_server.passwords["opsadmin"]))
    assert ops.post(f"{API}/tenants", json={"name": "ops-made"}).status_code == 201
    assert ops.get(f"{API}/audit").status_code == 200


@pytest.mark.parametrize(("user", "password"), [("alice", "wrong"), ("nobody", "x"), ("alice", "bob-pw-2")])
def test_failed_logins_are_one_indistinguishable_401(anon: FlaskClient, user: str, password: str) -> None:
    resp = anon.post(f"{API}/login", json={"username": user, "password": password})
    assert resp.status_code == 401
    assert error_of(resp.get_json()) == {"code": "Unauthorized", "message": "invalid credentials"}


def test_expired_revoked_and_forged_tokens_are_the_same_401(app: Flask, store: EtcdStore, keys: Keys,
                                                            ldap_server: Ldap) -> None:
    token = login(app, "alice", ldap_server.passwords["alice"])
    alice = client_for(app, token)
    assert alice.get(f"{API}/tenants").status_code == 200
    # Expired: rewrite the record's expiry into the past.
    entry = store.get(keys.token(hash_token(token)))
    assert entry is not None
    store.put(entry.key, dict(entry.value, expires_at=time.time() - 1))
    expired = alice.get(f"{API}/tenants")
    # Revoked: log in again, log out, reuse.
    token2 = login(app, "alice", ldap_server.passwords["alice"])
    assert client_for(app, token2).delete(f"{API}/login").status_code == 200
    revoked = client_for(app, token2).get(f"{API}/tenants")
    forged = client_for(app, token2[:-2] + "xx").get(f"{API}/tenants")
    for resp in (expired, revoked, forged):
        assert resp.status_code == 401
        assert resp.get_json() == expired.get_json()


def test_personal_tokens_are_shown_once_listed_without_secrets_and_revocable(app: Flask, ldap_server: Ldap) -> None:
    alice = client_for(app, login(app, "alice", ldap_server.passwords["alice"]))
    created = alice.post(f"{API}/tokens", json={"name": "ci", "expires_in_s": 3600})
    assert created.status_code == 201
    body = created.get_json()
    secret, token_id = body["token"], body["id"]
    assert body["expires_at"] == pytest.approx(time.time() + 3600, abs=30)
    script = client_for(app, secret)
    assert script.get(f"{API}/tenants").status_code == 200
    listed = alice.get(f"{API}/tokens")
    assert [t["id"] for t in listed.get_json()["tokens"]] == [token_id]
    assert secret not in listed.get_data(as_text=True) and "hash" not in listed.get_data(as_text=True)
    # Bob can neither see nor revoke alice's token.
    bob = client_for(app, login(app, "bob", ldap_server.passwords["bob"]))
    assert bob.get(f"{API}/tokens").get_json() == {"tokens": []}
    assert bob.delete(f"{API}/tokens/{token_id}").status_code == 404
    assert script.get(f"{API}/tenants").status_code == 200
    assert alice.delete(f"{API}/tokens/{token_id}").status_code == 200
    assert script.get(f"{API}/tenants").status_code == 401
    assert alice.get(f"{API}/tokens").get_json() == {"tokens": []}


def test_token_lifetime_is_capped(app: Flask, ldap_server: Ldap) -> None:
    alice = client_for(app, login(app, "alice", ldap_server.passwords["alice"]))
    resp = alice.post(f"{API}/tokens", json={"name": "forever", "expires_in_s": 10 * 365 * 86400})
    assert resp.status_code == 422 and error_of(resp.get_json())["field"] == "expires_in_s"


def test_bootstrap_admin_cannot_mint_or_revoke_itself(client: FlaskClient) -> None:
    assert client.post(f"{API}/tokens", json={"name": "x"}).status_code == 422
    assert client.delete(f"{API}/login").status_code == 422
    assert client.get(f"{API}/tenants").status_code == 200


def test_repeated_failures_are_rate_limited_per_user_and_address(etcd_url: str, redis_url: str, tmp_path: Path,
                                                                 prefix: str, ldap_server: Ldap) -> None:
    settings = ApiSettings(etcd_url=etcd_url, redis_url=redis_url, state_dir=tmp_path, etcd_prefix=prefix,
                           admin_token="t", ldap_url=ldap_server.url, ldap_base_dn=ldap_server.base_dn,
                           login_max_failures=3, login_max_failures_per_addr=5, login_window_s=60)
    app = create_app(settings)
    anon = app.test_client()
    for _ in range(3):
        assert anon.post(f"{API}/login", json={"username": "alice", "password": "bad"}).status_code == 401
    limited = anon.post(f"{API}/login", json={"username": "alice", "password": ldap_server.passwords["alice"]})
    assert limited.status_code == 429
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert error_of(limited.get_json())["code"] == "TooManyRequests"
    # Another replica (same Redis) sees the same counters.
    again = create_app(settings).test_client()
    assert again.post(f"{API}/login", json={"username": "alice", "password": "bad"}).status_code == 429
    # Other names still work from this address until the address limit (5 failures) is reached.
    assert anon.post(f"{API}/login", json={"username": "bob", "password": ldap_server.passwords["bob"]}).status_code == 200
    for _ in range(2):
        assert anon.post(f"{API}/login", json={"username": "carol", "password": "bad"}).status_code == 401
    blocked = anon.post(f"{API}/login", json={"username": "erin", "password": ldap_server.passwords["erin"]})
    assert blocked.status_code == 429
    other_addr = app.test_client()
    ok = other_addr.post(f"{API}/login", json={"username": "erin", "password": ldap_server.passwords["erin"]},
                         environ_base={"REMOTE_ADDR": "127.0.0.9"})
    assert ok.status_code == 200


def test_audit_log_records_mutations_newest_first_and_survives_a_restart(app: Flask, client: FlaskClient,
                                                                          settings: ApiSettings,
                                                                          ldap_server: Ldap) -> None:
    assert client.post(f"{API}/tenants", json={"name": "acme"}).status_code == 201
    assert client.post(f"{API}/tenants", json={"name": "beta"}).status_code == 201
    assert client.post(f"{API}/tenants/acme/sigs", json=sig_body()).status_code == 202
    bob = client_for(app, login(app, "bob", ldap_server.passwords["bob"]))
    assert bob.post(f"{API}/tenants/acme/sigs", json=sig_body("s2")).status_code == 404
    assert client.get(f"{API}/tenants/acme").status_code == 200  # reads are not audited
    restarted = create_app(settings).test_client()
    restarted.environ_base["HTTP_AUTHORIZATION"] = client.environ_base["HTTP_AUTHORIZATION"]
    entries = restarted.get(f"{API}/audit").get_json()["entries"]
    summary = [(e["principal"], e["action"], e["tenant"], e["status"]) for e in entries]
    assert summary[:5] == [
        ("bob", "sig.create", "acme", 404),
        ("bob", "login.create", None, 200),
        ("admin", "sig.create", "acme", 202),
        ("admin", "tenant.create", None, 201),
        ("admin", "tenant.create", None, 201),
    ]
    assert all(e["client"] and e["time"] > 0 and e["method"] in ("POST", "PUT", "DELETE") for e in entries)
    acme = restarted.get(f"{API}/audit", query_string={"tenant": "acme", "limit": 1}).get_json()["entries"]
    assert [(e["principal"], e["resource"]) for e in acme] == [("bob", "/api/v1/tenants/acme/sigs")]


def test_audit_prunes_days_past_retention(store: EtcdStore, keys: Keys) -> None:
    from spaas.audit import AuditLog, AuditRecord

    now = time.time()
    log = AuditLog(store, keys, retention_days=2, clock=lambda: now)
    for age_days in (5, 3, 1, 0):
        log.record(AuditRecord("admin", "tenant.create", "POST", "/x", 201, "127.0.0.1", now - age_days * 86400))
    log.prune()  # (the first record already pruned once: a fresh AuditLog prunes on its first write)
    assert [round((now - e["time"]) / 86400) for e in log.query()] == [0, 1]


def test_secrets_never_reach_responses_or_logs(app: Flask, client: FlaskClient, store: EtcdStore, keys: Keys,
                                               ldap_server: Ldap, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password = ldap_server.passwords["alice"]
    login_resp = app.test_client().post(f"{API}/login", json={"username": "alice", "password": password})
    session = login_resp.get_json()["token"]
    alice = client_for(app, session)
    api_token = alice.post(f"{API}/tokens", json={"name": "ci"}).get_json()["token"]
    app.test_client().post(f"{API}/login", json={"username": "alice", "password": password + "x"})
    assert client.post(f"{API}/tenants", json={"name": "acme"}).status_code == 201
    assert client.post(f"{API}/tenants/acme/sigs", json=sig_body()).status_code == 202
    spark_secret = store.get(keys.secret("acme", "s1")).value["secret"]  # type: ignore[union-attr]
    alice.get(f"{API}/tokens")
    client_for(app, api_token).delete(f"{API}/login")
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in (password, session, api_token, spark_secret, hash_token(session)):
        assert secret not in logged
    audit = client.get(f"{API}/audit").get_data(as_text=True)
    for secret in (password, session, api_token, spark_secret):
        assert secret not in audit
    assert api_token not in alice.get(f"{API}/tokens").get_data(as_text=True)


def test_a_revoked_token_and_a_removed_grant_stop_working_on_every_replica(
        app: Flask, client: FlaskClient, settings: ApiSettings, keys: Keys, ldap_server: Ldap) -> None:
    """Two API replicas on one etcd, each with its watch-backed caches: a logout and a grant removal
    made through one take effect on the other as soon as its cache applied the delete."""
    other = create_app(settings)
    cached = other.extensions["spaas"].store
    assert client.post(f"{API}/tenants", json={"name": "acme"}).status_code == 201
    assert client.put(f"{API}/tenants/acme/members/user/alice", json={"roles": ["user"]}).status_code == 200
    token = login(app, "alice", ldap_server.passwords["alice"])
    here, there = client_for(app, token), client_for(other, token)
    token_key, grant_key = keys.token(hash_token(token)), keys.member("acme", "user", "alice")

    def applied(key: str, present: bool) -> None:
        cache = cached.cache_for(key)
        assert cache is not None and cache.wait_until(lambda c: (c.get(key) is not None) == present, 10.0)

    applied(token_key, True)
    applied(grant_key, True)
    assert there.get(f"{API}/tenants/acme").status_code == 200
    assert client.delete(f"{API}/tenants/acme/members/user/alice").status_code == 200
    applied(grant_key, False)
    assert there.get(f"{API}/tenants/acme").status_code == 404
    assert here.delete(f"{API}/login").status_code == 200
    assert here.get(f"{API}/tenants").status_code == 401  # the replica that revoked it: at once
    applied(token_key, False)
    assert there.get(f"{API}/tenants").status_code == 401
