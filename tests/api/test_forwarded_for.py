"""The API believes X-Forwarded-For only from a trusted proxy (SPAAS_TRUSTED_PROXIES): audit
records and the failed-login limit see the client behind services/proxy, never a client's own claim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spaas.settings import ApiSettings

from services.api.app import create_app
from tests.ldap_fixture import Ldap

API = "/api/v1"
PROXY = {"REMOTE_ADDR": "10.0.0.5"}
STRANGER = {"REMOTE_ADDR": "192.0.2.50"}


def test_audit_and_login_limits_see_the_client_behind_a_trusted_proxy_only(
        etcd_url: str, redis_url: str, tmp_path: Path, prefix: str, ldap_server: Ldap) -> None:
    settings = ApiSettings(etcd_url=etcd_url, redis_url=redis_url, state_dir=tmp_path, etcd_prefix=prefix,
                           admin_token="t", ldap_url=ldap_server.url, ldap_base_dn=ldap_server.base_dn,
                           login_max_failures=100, login_max_failures_per_addr=2, login_window_s=60,
                           trusted_proxies=("10.0.0.0/24",))
    http = create_app(settings).test_client()
    admin = {"Authorization": "Bearer t"}

    def post(path: str, environ: dict[str, str], xff: str, **kw: Any) -> int:
        return http.post(API + path, environ_base=environ, headers={**kw.pop("headers", {}), "X-Forwarded-For": xff},
                         **kw).status_code

    assert post("/tenants", PROXY, "6.6.6.6, 192.0.2.7", json={"name": "fwd"}, headers=admin) == 201
    assert post("/tenants", STRANGER, "10.0.0.9", json={"name": "direct"}, headers=admin) == 201
    entries = http.get(f"{API}/audit", headers=admin).get_json()["entries"]
    # Newest first: the stranger's own address, then the client the proxy saw.
    assert [e["client"] for e in entries if e["action"] == "tenant.create"] == ["192.0.2.50", "192.0.2.7"]
    # Failed logins count against the forwarded client: one client behind the proxy is limited,
    # another one behind the same proxy is not.
    bad = {"username": "alice", "password": "bad"}
    good = {"username": "bob", "password": ldap_server.passwords["bob"]}
    for _ in range(2):
        assert post("/login", PROXY, "192.0.2.7", json=bad) == 401
    assert post("/login", PROXY, "192.0.2.7", json=good) == 429
    assert post("/login", PROXY, "192.0.2.8", json=good) == 200
    # A stranger claiming to be someone else is limited as itself.
    for _ in range(2):
        assert post("/login", STRANGER, "192.0.2.9", json=bad) == 401
    assert post("/login", STRANGER, "192.0.2.10", json=good) == 429
    assert post("/login", PROXY, "192.0.2.50", json=good) == 429  # ... which is its real address
