"""etcd RBAC for SIG containers (`spaas/etcdauth.py`) and the store's authentication
(`spaas/etcd.py`), against a real etcd with authentication enabled (`auth_etcd_url`)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from spaas.errors import PermanentError
from spaas.etcd import EtcdForbidden, EtcdStore
from spaas.etcdauth import (READ, READWRITE, Permission, SigCredentials, delete_sig_user, enable_auth,
                            ensure_sig_user, sig_password, sig_permissions, sig_user)
from spaas.keys import Keys
from spaas.model import AppState

from services.agent.apps import AppController
from services.agent.drivers import Driver
from services.agent.host import HostRegistration
from tests.conftest import AUTH_ETCD_ROOT_PASSWORD, AUTH_ETCD_TOKEN_TTL_S

SECRET = "platform-secret"


# -- pure ---------------------------------------------------------------------------------------
def test_the_role_of_a_sig_is_its_spec_secret_hosts_and_apps_only() -> None:
    assert sig_permissions(Keys("/spaas"), "acme", "etl") == (
        Permission(READ, "/spaas/sigs/acme/etl/spec"),
        Permission(READ, "/spaas/secrets/acme/etl"),
        Permission(READWRITE, "/spaas/hosts/acme/etl/", prefix=True),
        Permission(READWRITE, "/spaas/apps/acme/etl/", prefix=True),
    )


@pytest.mark.parametrize(("prefix", "tenant", "sig", "user"), [
    ("/spaas", "acme", "etl", "spaas.sig.acme.etl"),
    ("/spaas", "acme", "etl-2", "spaas.sig.acme.etl-2"),
    ("/test-ab12", "acme", "etl", "test-ab12.sig.acme.etl"),
    ("/a/b", "t", "s", "a.b.sig.t.s"),
])
def test_sig_user_names_are_deterministic_and_per_platform(prefix: str, tenant: str, sig: str, user: str) -> None:
    assert sig_user(Keys(prefix), tenant, sig) == user


def test_sig_passwords_are_deterministic_secret_keyed_and_distinct() -> None:
    k = Keys("/spaas")
    one = sig_password(SECRET, k, "acme", "etl")
    assert one == sig_password(SECRET, k, "acme", "etl") and len(one) == 64
    others = {sig_password("other", k, "acme", "etl"), sig_password(SECRET, k, "acme", "etl2"),
              sig_password(SECRET, k, "acme2", "etl"), sig_password(SECRET, Keys("/x"), "acme", "etl")}
    assert one not in others and len(others) == 4


def test_the_prefix_range_of_a_permission_covers_its_keys_only() -> None:
    import base64
    perm = Permission(READWRITE, "/spaas/hosts/acme/etl/", prefix=True)
    assert base64.b64decode(perm.range_end()) == b"/spaas/hosts/acme/etl0"
    assert Permission(READ, "/spaas/secrets/acme/etl").range_end() == ""


# -- real etcd with authentication ----------------------------------------------------------------
@pytest.fixture
def sig_store(root_store: EtcdStore, keys: Keys) -> EtcdStore:
    """acme/etl's containers' store, after the scaler's `SigCredentials.env` made its user;
    acme/etl and acme/other both exist, with specs and secrets."""
    for sig in ("etl", "other"):
        root_store.put(keys.sig_spec("acme", sig), {"spec": {"spark_conf": {"spark.x": sig}}, "generation": 1})
        root_store.put(keys.secret("acme", sig), {"secret": f"secret-of-{sig}"})
    root_store.put(keys.tenant("acme"), {"name": "acme"})
    env = SigCredentials(root_store, keys, secret=SECRET).env("acme", "etl")
    assert env == {"SPAAS_ETCD_USER": sig_user(keys, "acme", "etl"),
                   "SPAAS_ETCD_PASSWORD": sig_password(SECRET, keys, "acme", "etl")}
    return root_store.as_user(env["SPAAS_ETCD_USER"], env["SPAAS_ETCD_PASSWORD"])


def test_enable_auth_is_idempotent_and_checks_the_root_password(auth_etcd_url: str) -> None:
    assert enable_auth(auth_etcd_url, AUTH_ETCD_ROOT_PASSWORD) is False  # the fixture enabled it
    with pytest.raises(EtcdForbidden, match="rejected the credentials of user 'root'"):
        enable_auth(auth_etcd_url, "wrong")


def test_without_credentials_or_with_wrong_ones_etcd_refuses_clearly(auth_etcd_url: str, keys: Keys) -> None:
    with pytest.raises(EtcdForbidden, match="requires authentication"):
        EtcdStore(auth_etcd_url).get(keys.tenant("acme"))
    with pytest.raises(EtcdForbidden, match="rejected the credentials") as info:
        EtcdStore(auth_etcd_url, user="root", password="nope").get(keys.tenant("acme"))
    assert isinstance(info.value, PermanentError)  # not a TemporaryError: loops must not retry it forever


def test_a_sig_user_does_what_the_agent_needs(sig_store: EtcdStore, root_store: EtcdStore, keys: Keys,
                                              tmp_path: Path) -> None:
    # Its spec and secret (Agent._sig_inputs).
    assert sig_store.get(keys.secret("acme", "etl")).value == {"secret": "secret-of-etl"}
    assert sig_store.get(keys.sig_spec("acme", "etl")).value["spec"]["spark_conf"] == {"spark.x": "etl"}
    # Its host record: put with a lease, keepalive, list, revoke (services/agent/host.py).
    reg = HostRegistration(sig_store, keys, "acme", "etl", "acme-etl-master-0", ttl_s=5)
    reg.publish({"host": "acme-etl-master-0", "role": "master", "ready": True})
    [host] = sig_store.list(keys.hosts("acme", "etl"))
    assert host.lease and sig_store.keepalive(host.lease) > 0
    reg.withdraw()
    assert sig_store.list(keys.hosts("acme", "etl")) == []
    # Its applications: list, claim (create the state), update it (services/agent/apps.py).
    root_store.put(keys.app_spec("acme", "etl", "app-1"), {"request": {"file": "job.py"}})

    def make_driver(app_id: str, spec: dict[str, object]) -> Driver:
        raise FileNotFoundError("job.py is not in the SIG's storage")

    controller = AppController(sig_store, keys, tenant="acme", sig="etl", container="acme-etl-master-0",
                               make_driver=make_driver)
    controller.scan()
    state = root_store.get(keys.app_state("acme", "etl", "app-1")).value
    assert state["state"] == AppState.FAILED.value and state["reason"] == "DriverStartFailed"


@pytest.mark.parametrize("what", ["other sig's secret", "other sig's spec", "own build", "tenant", "everything",
                                  "all secrets"])
def test_a_sig_user_cannot_read_what_is_not_its_own(sig_store: EtcdStore, keys: Keys, what: str) -> None:
    read = {
        "other sig's secret": lambda: sig_store.get(keys.secret("acme", "other")),
        "other sig's spec": lambda: sig_store.get(keys.sig_spec("acme", "other")),
        "own build": lambda: sig_store.get(keys.sig_build("acme", "etl")),
        "tenant": lambda: sig_store.get(keys.tenant("acme")),
        "everything": lambda: sig_store.list(keys.prefix + "/"),
        "all secrets": lambda: sig_store.list(keys.prefix + "/secrets/"),
    }[what]
    with pytest.raises(EtcdForbidden, match="permission denied"):
        read()


@pytest.mark.parametrize("key", ["member", "token", "tenant", "own spec", "own status", "other hosts", "other apps",
                                 "own route"])
def test_a_sig_user_cannot_write_outside_its_hosts_and_apps(sig_store: EtcdStore, root_store: EtcdStore, keys: Keys,
                                                            key: str) -> None:
    target = {
        "member": keys.member("acme", "user", "mallory"),
        "token": keys.token("0" * 64),
        "tenant": keys.tenant("evil"),
        "own spec": keys.sig_spec("acme", "etl"),
        "own status": keys.sig_status("acme", "etl"),
        "other hosts": keys.host("acme", "other", "x"),
        "other apps": keys.app_state("acme", "other", "app-1"),
        # The proxy routes only to these (written by the scaler from what the runtime verified).
        "own route": keys.route("acme", "etl", "acme-etl-master-0"),
    }[key]
    before = root_store.get(target)
    with pytest.raises(EtcdForbidden, match="permission denied"):
        sig_store.put(target, {"roles": ["cluster_admin"]})
    with pytest.raises(EtcdForbidden):
        sig_store.create(target, {"roles": ["cluster_admin"]})
    assert root_store.get(target) == before


def test_the_store_authenticates_again_after_its_token_expires_or_is_invalidated(
        sig_store: EtcdStore, root_store: EtcdStore, keys: Keys) -> None:
    secret = keys.secret("acme", "etl")
    assert sig_store.get(secret) is not None
    first = sig_store.authentications
    time.sleep(AUTH_ETCD_TOKEN_TTL_S + 1.5)  # etcd's simple token expires
    assert sig_store.get(secret) is not None
    assert sig_store.authentications == first + 1
    # A password change (here: set to the same) invalidates every token of the user.
    user = sig_user(keys, "acme", "etl")
    root_store.call("/v3/auth/user/changepw", {"name": user, "password": sig_password(SECRET, keys, "acme", "etl")})
    assert sig_store.get(secret) is not None
    assert sig_store.authentications == first + 2


def test_ensure_repairs_the_role_and_password_and_delete_removes_both(root_store: EtcdStore, keys: Keys) -> None:
    password = sig_password(SECRET, keys, "acme", "fix")
    user = ensure_sig_user(root_store, keys, "acme", "fix", password)
    assert ensure_sig_user(root_store, keys, "acme", "fix", password) == user  # idempotent
    # Someone widened the role and changed the password by hand: ensure puts both back.
    root_store.call("/v3/auth/role/grant", {"name": user, "perm": {"permType": "READWRITE", "key": "Lw==",
                                                                    "range_end": "AA=="}})
    root_store.call("/v3/auth/user/changepw", {"name": user, "password": "changed"})
    ensure_sig_user(root_store, keys, "acme", "fix", password)
    perms = root_store.call("/v3/auth/role/get", {"role": user})["perm"]
    assert len(perms) == 4
    sig = root_store.as_user(user, password)
    with pytest.raises(EtcdForbidden, match="permission denied"):
        sig.get(keys.tenant("acme"))
    assert sig.authenticate()
    delete_sig_user(root_store, keys, "acme", "fix")
    delete_sig_user(root_store, keys, "acme", "fix")  # gone already: fine
    with pytest.raises(EtcdForbidden, match="rejected the credentials"):
        root_store.as_user(user, password).get(keys.sig_spec("acme", "fix"))
    assert "roles" not in root_store.call("/v3/auth/role/list", {}) or \
        user not in root_store.call("/v3/auth/role/list", {})["roles"]


def test_a_store_with_credentials_works_against_an_etcd_without_auth(etcd_url: str, keys: Keys) -> None:
    store = EtcdStore(etcd_url, user="root", password="whatever")
    store.put(keys.tenant("acme"), {"name": "acme"})
    assert store.get(keys.tenant("acme")).value == {"name": "acme"}
    assert store.authenticate() is False
