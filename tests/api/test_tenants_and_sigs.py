"""The API contract for authentication, tenants and SIGs, against a real etcd and Redis.

No builder or scaler runs, so SIGs stay PENDING/BUILDING and a deleted SIG stays DELETING."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.logstream import RedisLogStreams, sig_build_stream
from spaas.settings import ApiSettings

from services.api.app import create_app
from tests.api.conftest import ADMIN_TOKEN, error_of, sig_body

API = "/api/v1"
PROTECTED: list[tuple[str, str]] = [
    ("GET", "/tenants"),
    ("POST", "/tenants"),
    ("GET", "/tenants/acme"),
    ("DELETE", "/tenants/acme"),
    ("GET", "/tenants/acme/sigs"),
    ("POST", "/tenants/acme/sigs"),
    ("GET", "/tenants/acme/sigs/s1"),
    ("PUT", "/tenants/acme/sigs/s1"),
    ("DELETE", "/tenants/acme/sigs/s1"),
    ("GET", "/tenants/acme/sigs/s1/build/log"),
    ("POST", "/tenants/acme/sigs/s1/files"),
    ("GET", "/tenants/acme/sigs/s1/applications"),
    ("POST", "/tenants/acme/sigs/s1/applications"),
    ("GET", "/tenants/acme/sigs/s1/applications/x"),
    ("GET", "/tenants/acme/sigs/s1/applications/x/log"),
    ("DELETE", "/tenants/acme/sigs/s1/applications/x"),
    ("GET", "/nothing"),
]
BAD_CREDENTIALS: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": "Basic dGVzdC1hZG1pbi10b2tlbg=="},
    {"Authorization": "Bearer"},
    {"Authorization": "test-admin-token"},
]


def assert_unauthorized(resp: Any) -> None:
    assert resp.status_code == 401
    assert error_of(resp.get_json())["code"] == "Unauthorized"
    assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer")


def test_healthz_is_public(anon: FlaskClient) -> None:
    resp = anon.get(f"{API}/healthz")
    assert resp.status_code == 200
    assert resp.get_json()["status"] == "ok"


@pytest.mark.parametrize("headers", BAD_CREDENTIALS, ids=["none", "wrong", "basic", "empty-bearer", "no-scheme"])
@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_every_other_route_needs_the_bearer_token(anon: FlaskClient, tenant: str, method: str, path: str,
                                                  headers: dict[str, str]) -> None:
    resp = anon.open(API + path, method=method, headers=headers, json={"name": "zzz"})
    assert_unauthorized(resp)


def test_unauthorized_request_changes_nothing(anon: FlaskClient, client: FlaskClient) -> None:
    assert_unauthorized(anon.post(f"{API}/tenants", json={"name": "sneaky"}))
    assert client.get(f"{API}/tenants/sneaky").status_code == 404


def test_bootstrap_token_is_written_0600_and_only_it_works(etcd_url: str, redis_url: str, tmp_path: Path,
                                                           prefix: str) -> None:
    token_file = tmp_path / "tok"
    settings = ApiSettings(etcd_url=etcd_url, redis_url=redis_url, state_dir=tmp_path, etcd_prefix=prefix + "-boot",
                           admin_token="", admin_token_file=token_file)
    client = create_app(settings).test_client()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert token
    assert client.get(f"{API}/tenants", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert_unauthorized(client.get(f"{API}/tenants", headers={"Authorization": f"Bearer {token}x"}))
    assert_unauthorized(client.get(f"{API}/tenants", headers={"Authorization": "Bearer test-admin-token"}))
    # A second replica on the same prefix reuses the stored token instead of minting a new one.
    again = create_app(settings).test_client()
    assert again.get(f"{API}/tenants", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_tenant_create_fills_quota_defaults(client: FlaskClient) -> None:
    resp = client.post(f"{API}/tenants", json={"name": "acme"})
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["name"] == "acme"
    assert body["quota"] == {"max_containers": 10, "cores": 40, "memory_mb": 61440, "gpus": 0}


def test_duplicate_tenant_is_409_on_name(client: FlaskClient, tenant: str) -> None:
    resp = client.post(f"{API}/tenants", json={"name": tenant})
    assert resp.status_code == 409
    error = error_of(resp.get_json())
    assert error["code"] == "Conflict" and error["field"] == "name"


def test_tenants_are_listed_and_read(client: FlaskClient, tenant: str) -> None:
    assert client.post(f"{API}/tenants", json={"name": "beta", "quota": {"cores": 8}}).status_code == 201
    names = [t["name"] for t in client.get(f"{API}/tenants").get_json()["tenants"]]
    assert sorted(names) == ["acme", "beta"]
    beta = client.get(f"{API}/tenants/beta").get_json()
    assert beta["quota"]["cores"] == 8 and beta["quota"]["max_containers"] == 10


def test_tenant_list_and_read_show_what_the_sigs_hold(client: FlaskClient, tenant: str, sig: str) -> None:
    """A SIG counts its master and at least min_workers workers of its size against the quota."""
    spec = client.get(f"{API}/tenants/{tenant}/sigs/{sig}").get_json()["spec"]
    n = 1 + spec["scaling"]["min_workers"]
    want = {"containers": n, "cores": n * spec["resources"]["cpu"],
            "memory_mb": n * spec["resources"]["memory_mb"], "gpus": n * spec["resources"]["gpu"]}
    listed = {t["name"]: t for t in client.get(f"{API}/tenants").get_json()["tenants"]}
    assert listed[tenant]["usage"] == want
    assert client.get(f"{API}/tenants/{tenant}").get_json()["usage"] == want
    assert client.post(f"{API}/tenants", json={"name": "idle"}).status_code == 201
    listed = {t["name"]: t for t in client.get(f"{API}/tenants").get_json()["tenants"]}
    assert listed["idle"]["usage"] == {"containers": 0, "cores": 0, "memory_mb": 0, "gpus": 0}


def test_tenant_with_sigs_cannot_be_deleted_until_they_are_gone(client: FlaskClient, store: EtcdStore, keys: Keys,
                                                                tenant: str, sig: str) -> None:
    resp = client.delete(f"{API}/tenants/{tenant}")
    assert resp.status_code == 409
    assert error_of(resp.get_json())["field"] == "tenant"
    store.delete_prefix(keys.sig(tenant, sig))  # what the scaler does once a deleted SIG is torn down
    resp = client.delete(f"{API}/tenants/{tenant}")
    assert resp.status_code == 200
    assert resp.get_json() == {"name": tenant, "deleted": True}
    assert client.get(f"{API}/tenants/{tenant}").status_code == 404


def test_sig_create_is_accepted_with_spec_defaults(client: FlaskClient, tenant: str) -> None:
    resp = client.post(f"{API}/tenants/{tenant}/sigs", json=sig_body())
    assert resp.status_code == 202
    body = resp.get_json()
    assert (body["tenant"], body["name"], body["generation"]) == (tenant, "s1", 1)
    spec = body["spec"]
    assert spec["spark_version"] == "3.5.9" and spec["spark_conf"] == {} and spec["python_packages"] == []
    assert {k: spec["resources"][k] for k in ("cpu", "memory_mb", "max_cpu", "max_memory_mb")} == {
        "cpu": 2, "memory_mb": 2048, "max_cpu": 4, "max_memory_mb": 6144}
    assert spec["scaling"]["min_workers"] == 1 and spec["scaling"]["max_workers"] == 10
    assert body["status"]["phase"] in ("PENDING", "BUILDING")
    assert body["status"]["generation"] == 1
    assert client.get(f"{API}/tenants/{tenant}/sigs/s1").get_json()["spec"] == spec


def test_sig_secret_is_in_etcd_and_never_served(client: FlaskClient, store: EtcdStore, keys: Keys, tenant: str) -> None:
    created = client.post(f"{API}/tenants/{tenant}/sigs", json=sig_body())
    entry = store.get(keys.secret(tenant, "s1"))
    assert entry is not None
    secret = entry.value["secret"]
    assert isinstance(secret, str) and len(secret) >= 32
    responses = [created,
                 client.get(f"{API}/tenants/{tenant}/sigs/s1"),
                 client.get(f"{API}/tenants/{tenant}/sigs"),
                 client.put(f"{API}/tenants/{tenant}/sigs/s1", json=sig_body(spark_conf={"spark.executor.cores": "1"})),
                 client.get(f"{API}/tenants/{tenant}/sigs/s1/build/log"),
                 client.delete(f"{API}/tenants/{tenant}/sigs/s1")]
    for resp in responses:
        assert resp.status_code < 300
        assert secret not in resp.get_data(as_text=True)
        assert "secret" not in json.dumps(resp.get_json()).lower()


def test_duplicate_sig_is_409(client: FlaskClient, tenant: str, sig: str) -> None:
    resp = client.post(f"{API}/tenants/{tenant}/sigs", json=sig_body())
    assert resp.status_code == 409
    assert error_of(resp.get_json())["field"] == "name"


def test_put_with_changed_conf_bumps_generation(client: FlaskClient, tenant: str, sig: str) -> None:
    changed = sig_body(spark_conf={"spark.sql.shuffle.partitions": "8"})
    resp = client.put(f"{API}/tenants/{tenant}/sigs/{sig}", json=changed)
    assert resp.status_code == 202
    body = resp.get_json()
    assert body["generation"] == 2 and body["status"]["generation"] == 2
    assert body["spec"]["spark_conf"] == {"spark.sql.shuffle.partitions": "8"}
    # Identical again: nothing to do, generation stays.
    resp = client.put(f"{API}/tenants/{tenant}/sigs/{sig}", json=changed)
    assert resp.status_code == 200
    assert resp.get_json()["generation"] == 2


def test_put_identical_spec_is_200_and_keeps_generation(client: FlaskClient, tenant: str, sig: str) -> None:
    without_name = {k: v for k, v in sig_body().items() if k != "name"}
    for body in (sig_body(), without_name):
        resp = client.put(f"{API}/tenants/{tenant}/sigs/{sig}", json=body)
        assert resp.status_code == 200
        assert resp.get_json()["generation"] == 1


def test_put_cannot_rename_a_sig(client: FlaskClient, tenant: str, sig: str) -> None:
    resp = client.put(f"{API}/tenants/{tenant}/sigs/{sig}", json=sig_body(name="s2"))
    assert resp.status_code == 422
    assert error_of(resp.get_json())["field"] == "name"
    assert client.get(f"{API}/tenants/{tenant}/sigs/s2").status_code == 404


def test_delete_sig_is_accepted_and_shows_deleting(client: FlaskClient, tenant: str, sig: str) -> None:
    resp = client.delete(f"{API}/tenants/{tenant}/sigs/{sig}")
    assert resp.status_code == 202
    assert resp.get_json()["status"]["phase"] == "DELETING"
    assert client.get(f"{API}/tenants/{tenant}/sigs/{sig}").get_json()["status"]["phase"] == "DELETING"
    listed = client.get(f"{API}/tenants/{tenant}/sigs").get_json()["sigs"]
    assert [(s["name"], s["status"]["phase"]) for s in listed] == [(sig, "DELETING")]
    # A SIG being deleted takes no changes.
    resp = client.put(f"{API}/tenants/{tenant}/sigs/{sig}", json=sig_body(spark_conf={"spark.executor.cores": "1"}))
    assert resp.status_code == 409


def test_quota_refuses_a_sig_that_does_not_fit(client: FlaskClient) -> None:
    resp = client.post(f"{API}/tenants", json={"name": "small", "quota": {"max_containers": 2}})
    assert resp.status_code == 201
    first = client.post(f"{API}/tenants/small/sigs", json=sig_body("one", scaling={"min_workers": 1}))
    assert first.status_code == 202
    second = client.post(f"{API}/tenants/small/sigs", json=sig_body("two", scaling={"min_workers": 1}))
    assert second.status_code == 422
    error = error_of(second.get_json())
    assert error["field"] == "scaling.min_workers"
    assert "needs 2 containers" in error["message"] and "2 of 2" in error["message"]
    assert client.get(f"{API}/tenants/small/sigs/two").status_code == 404


def test_build_log_serves_appended_lines_with_paging(client: FlaskClient, logs: RedisLogStreams, tenant: str,
                                                     sig: str) -> None:
    url = f"{API}/tenants/{tenant}/sigs/{sig}/build/log"
    assert client.get(url).get_json()["log"] == []
    logs.append(sig_build_stream(tenant, sig, 1), *(f"step {i}" for i in range(5)))
    body = client.get(url).get_json()
    assert body["log"] == [f"step {i}" for i in range(5)] and body["total"] == 5
    assert body["generation"] == 1
    page = client.get(url, query_string={"from": 1, "size": 2}).get_json()
    assert page["log"] == ["step 1", "step 2"] and page["total"] == 5


def test_history_server_counts_in_usage_and_quota(client: FlaskClient) -> None:
    """An enabled history server is one container of fixed size (1 cpu, 1024 MiB) in the tenant's
    usage and in the quota check of a new SIG."""
    assert client.post(f"{API}/tenants", json={"name": "hist", "quota": {"max_containers": 3}}).status_code == 201
    body = sig_body("one", scaling={"min_workers": 1}, history={"enabled": True})
    resp = client.post(f"{API}/tenants/hist/sigs", json=body)
    assert resp.status_code == 202, resp.get_json()
    res = resp.get_json()["spec"]["resources"]
    assert client.get(f"{API}/tenants/hist").get_json()["usage"] == {
        "containers": 3, "cores": 2 * res["cpu"] + 1, "memory_mb": 2 * res["memory_mb"] + 1024, "gpus": 0}
    resp = client.post(f"{API}/tenants/hist/sigs", json=sig_body("two", scaling={"min_workers": 0}))
    assert resp.status_code == 422
    error = error_of(resp.get_json())
    assert error["field"] == "scaling.min_workers" and "3 of 3" in error["message"], error


@pytest.mark.parametrize("default", [True, False])
def test_history_default_decides_an_unset_history_and_is_stored(settings, logs, default: bool) -> None:  # type: ignore[no-untyped-def]
    """SPAAS_HISTORY_DEFAULT decides `history.enabled` where a spec leaves it unset, at create and
    update; the stored spec says what was chosen; an explicit choice always wins."""
    app = create_app(settings.replace(history_default=default), logs=logs)
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {ADMIN_TOKEN}"
    assert c.post(f"{API}/tenants", json={"name": "hdef"}).status_code == 201
    assert c.post(f"{API}/tenants/hdef/sigs", json=sig_body("unset")).get_json()["spec"]["history"] == {"enabled": default}
    assert c.get(f"{API}/tenants/hdef/sigs/unset").get_json()["spec"]["history"] == {"enabled": default}
    for explicit in (True, False):
        body = sig_body(f"x{int(explicit)}", history={"enabled": explicit})
        assert c.post(f"{API}/tenants/hdef/sigs", json=body).get_json()["spec"]["history"] == {"enabled": explicit}
    # An update that leaves it unset gets the default again; one that says it keeps its word.
    assert c.put(f"{API}/tenants/hdef/sigs/x1", json=sig_body("x1")).get_json()["spec"]["history"] == {"enabled": default}
    # Master + one worker each, and the history servers chosen ("unset" and "x1" by the default).
    assert c.get(f"{API}/tenants/hdef").get_json()["usage"]["containers"] == 3 * 2 + (2 if default else 0)
