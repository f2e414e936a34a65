"""One identity per login name, against the real slapd: " Alice", "ALICE" and "alice" are the
same principal, count against the same failed-login counter and match the same grants and
cluster-admin setting; tokens minted with a token never outlive it and die with it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from flask import Flask

from spaas.auth import hash_token
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.settings import ApiSettings

from services.api.app import create_app
from tests.api.conftest import client_for, error_of, login, sig_body
from tests.ldap_fixture import Ldap

API = "/api/v1"
VARIANTS = [" alice", "ALICE", "alice ", "Alice", "aLiCe"]


def test_name_variants_share_one_failed_login_counter(etcd_url: str, redis_url: str, tmp_path: Path, prefix: str,
                                                      ldap_server: Ldap) -> None:
    settings = ApiSettings(etcd_url=etcd_url, redis_url=redis_url, state_dir=tmp_path, etcd_prefix=prefix,
                           admin_token="t", ldap_url=ldap_server.url, ldap_base_dn=ldap_server.base_dn,
                           login_max_failures=len(VARIANTS), login_max_failures_per_addr=100, login_window_s=60)
    anon = create_app(settings).test_client()
    for variant in VARIANTS:
        resp = anon.post(f"{API}/login", json={"username": variant, "password": "wrong"})
        assert resp.status_code == 401, (variant, resp.get_json())
    # Every spelling is now locked out, the right password notwithstanding.
    for variant in ("alice", "ALICE", "  Alice  "):
        resp = anon.post(f"{API}/login", json={"username": variant, "password": ldap_server.passwords["alice"]})
        assert resp.status_code == 429, variant
    # Another user is not.
    assert anon.post(f"{API}/login", json={"username": "BOB", "password": ldap_server.passwords["bob"]}).status_code == 200


def test_name_variants_are_one_principal_with_the_same_grants(app: Flask, client, ldap_server: Ldap) -> None:  # type: ignore[no-untyped-def]
    assert client.post(f"{API}/tenants", json={"name": "acme"}).status_code == 201
    # A grant written in another case matches too (grants are stored in the one form).
    resp = client.put(f"{API}/tenants/acme/members/user/ALICE", json={"roles": ["sig_configure"]})
    assert resp.status_code == 200 and resp.get_json()["name"] == "alice"
    assert client.put(f"{API}/tenants/acme/members/group/ACME-Devs", json={"roles": ["user"]}).status_code == 200
    users = {}
    for variant in (" Alice", "ALICE"):
        resp = app.test_client().post(f"{API}/login", json={"username": variant,
                                                             "password": ldap_server.passwords["alice"]})
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json()["user"] == "alice"
        users[variant] = client_for(app, resp.get_json()["token"])
    a, b = users[" Alice"], users["ALICE"]
    assert a.post(f"{API}/tenants/acme/sigs", json=sig_body("one")).status_code == 202
    assert b.put(f"{API}/tenants/acme/sigs/one", json=sig_body("one", spark_conf={"spark.x": "1"})).status_code == 202
    # Both spellings see each other's applications as their own.
    assert a.post(f"{API}/tenants/acme/sigs/one/files", data={"file": (__import__("io").BytesIO(b"print(1)"), "j.py")},
                  content_type="multipart/form-data").status_code == 201
    app_id = a.post(f"{API}/tenants/acme/sigs/one/applications", json={"file": "files/j.py"}).get_json()["id"]
    assert b.get(f"{API}/tenants/acme/sigs/one/applications/{app_id}").status_code == 200
    # A group granted in another case matches bob's posixGroup.
    bob = client_for(app, login(app, "Bob", ldap_server.passwords["bob"]))
    assert bob.get(f"{API}/tenants/acme").status_code == 200
    assert {m["name"] for m in client.get(f"{API}/tenants/acme/members").get_json()["members"]} == {"alice", "acme-devs"}


def test_cluster_admin_users_setting_matches_any_spelling(settings: ApiSettings, logs, ldap_server: Ldap) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings.replace(cluster_admin_users=("Carol ",)), logs=logs)
    carol = client_for(app, login(app, " CAROL", ldap_server.passwords["carol"]))
    assert carol.post(f"{API}/tenants", json={"name": "carols"}).status_code == 201
    dave = client_for(app, login(app, "dave", ldap_server.passwords["dave"]))
    assert dave.post(f"{API}/tenants", json={"name": "daves"}).status_code == 403


@pytest.mark.parametrize("name", ["\talice", "ali\u0000ce", "alice\u001b", "ali\u200bce", "ali\u2028ce", "   "])
def test_control_characters_or_blank_login_names_are_422(app: Flask, name: str) -> None:
    resp = app.test_client().post(f"{API}/login", json={"username": name, "password": "x"})
    assert resp.status_code == 422, resp.get_json()
    assert error_of(resp.get_json())["field"] == "username"


def test_a_token_minted_with_a_login_token_expires_with_it_and_dies_at_logout(app: Flask, settings: ApiSettings,
                                                                               ldap_server: Ldap) -> None:
    session = app.test_client().post(f"{API}/login", json={"username": "alice",
                                                            "password": ldap_server.passwords["alice"]}).get_json()
    alice = client_for(app, session["token"])
    child = alice.post(f"{API}/tokens", json={"name": "ci"})  # default lifetime: a year
    assert child.status_code == 201
    assert child.get_json()["expires_at"] <= session["expires_at"]
    assert child.get_json()["expires_at"] == pytest.approx(session["expires_at"], abs=5)
    script = client_for(app, child.get_json()["token"])
    grandchild = script.post(f"{API}/tokens", json={"name": "nested", "expires_in_s": 3600})
    assert grandchild.status_code == 201
    nested = client_for(app, grandchild.get_json()["token"])
    assert script.get(f"{API}/tenants").status_code == 200 and nested.get(f"{API}/tenants").status_code == 200
    assert alice.delete(f"{API}/login").status_code == 200
    for dead in (alice, script, nested):
        assert dead.get(f"{API}/tenants").status_code == 401
    again = client_for(app, login(app, "alice", ldap_server.passwords["alice"]))
    assert again.get(f"{API}/tokens").get_json() == {"tokens": []}  # revoked, not just unusable


def test_revoking_a_token_revokes_what_was_minted_with_it(app: Flask, ldap_server: Ldap) -> None:
    alice = client_for(app, login(app, "alice", ldap_server.passwords["alice"]))
    parent = alice.post(f"{API}/tokens", json={"name": "parent", "expires_in_s": 3600}).get_json()
    child = client_for(app, parent["token"]).post(f"{API}/tokens", json={"name": "child"}).get_json()
    assert child["expires_at"] <= parent["expires_at"]
    sibling = alice.post(f"{API}/tokens", json={"name": "sibling", "expires_in_s": 3600}).get_json()
    assert alice.delete(f"{API}/tokens/{parent['id']}").status_code == 200
    assert client_for(app, child["token"]).get(f"{API}/tenants").status_code == 401
    assert client_for(app, sibling["token"]).get(f"{API}/tenants").status_code == 200
    assert [t["id"] for t in alice.get(f"{API}/tokens").get_json()["tokens"]] == [sibling["id"]]


def test_a_child_dies_when_its_parent_expires(app: Flask, store: EtcdStore, keys: Keys, ldap_server: Ldap) -> None:
    token = login(app, "alice", ldap_server.passwords["alice"])
    child = client_for(app, token).post(f"{API}/tokens", json={"name": "ci"}).get_json()
    script = client_for(app, child["token"])
    assert script.get(f"{API}/tenants").status_code == 200
    entry = store.get(keys.token(hash_token(token)))
    assert entry is not None
    store.put(entry.key, dict(entry.value, expires_at=time.time() - 1))  # the login token expired
    assert script.get(f"{API}/tenants").status_code == 401
