"""The SIG's Spark history server, end to end on the embedded stack with real Spark, through
services/proxy with a tenant user's token: after a PySpark application finishes, the history
server lists it, its jobs page loads (redirects followed, none naming an internal host) with every
link under /sig/{t}/{s}/history/, the application's record links it, another tenant's member gets
404, and deleting the SIG stops the history server with the rest."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest
import requests

from spaas.auth import Identity, Tokens
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.stack import Stack

from tests.e2e.conftest import Api
from tests.e2e.test_proxy_ui import links

pytestmark = pytest.mark.e2e

TENANT, SIG = "histe", "etl"
JOB = """
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("history-e2e").getOrCreate()
print(f"RESULT {spark.range(0, 1000, 1, 4).selectExpr('sum(id) AS s').collect()[0].s}", flush=True)  # one write
spark.stop()
"""


def token_for(platform: Stack, user: str) -> str:
    return Tokens(EtcdStore(platform.etcd_url), Keys()).issue(Identity(user), kind="api", ttl_s=900).token


def get_following(http: requests.Session, url: str, prefix: str) -> requests.Response:
    """GET, following redirects by hand: every Location must stay under the prefix (a path,
    never an internal host)."""
    for _ in range(5):
        resp = http.get(url, timeout=60, allow_redirects=False)
        if resp.status_code not in (301, 302, 303, 307, 308):
            return resp
        location = resp.headers["Location"]
        assert urlsplit(location).netloc in ("", urlsplit(url).netloc), f"{url} redirects to {location}"
        assert urlsplit(location).path.startswith(prefix), f"{url} redirects to {location}"
        url = urljoin(url, location)
    raise AssertionError(f"too many redirects from {url}")


def assert_links_under(url: str, html: str, prefix: str) -> set[str]:
    found = links(url, html)
    base = urlsplit(url)
    outside = [u for u in found if urlsplit(u).netloc != base.netloc or not urlsplit(u).path.startswith(prefix)]
    assert not outside, f"links on {url} leave {prefix}: {outside}"
    return found


@pytest.fixture(scope="module")
def finished(platform: Stack, api: Api) -> dict[str, str]:
    api.ok("POST", "/tenants", 201, json={"name": TENANT})
    api.ok("PUT", f"/tenants/{TENANT}/members/user/alice", 200, json={"roles": ["user"]})
    api.ok("POST", f"/tenants/{TENANT}/sigs", 202, json={"name": SIG, "spark_version": "3.5.9",
                                                         "history": {"enabled": True},
                                                         "scaling": {"min_workers": 1, "max_workers": 1}})
    api.wait_phase(TENANT, SIG, "READY", timeout_s=600)
    view = api.wait("history server ready", lambda: (v := api.sig(TENANT, SIG))["status"]["history"]["ready"] and v,
                    timeout_s=300)
    path = api.upload(TENANT, SIG, "hist.py", JOB)
    app_id = api.submit(TENANT, SIG, file=path)
    app = api.wait_app(TENANT, SIG, app_id, timeout_s=400)
    assert app["state"] == "FINISHED", (app, api.log(TENANT, SIG, app_id))
    return {"app_id": app_id, "spark_app_id": app["spark_app_id"], "history_url": app["history_url"],
            "sig_history_url": view["status"]["history"]["ui_url"]}


def test_finished_application_is_in_its_sigs_history_server(platform: Stack, api: Api,
                                                            finished: dict[str, str]) -> None:
    proxy, spark_app = platform.proxy_url, finished["spark_app_id"]
    prefix = f"/sig/{TENANT}/{SIG}/history/"
    assert finished["sig_history_url"] == f"{proxy}{prefix}"
    assert finished["history_url"] == f"{proxy}{prefix}history/{spark_app}/jobs/"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token_for(platform, 'alice')}"

    def listed() -> list[dict] | None:
        resp = http.get(f"{proxy}{prefix}api/v1/applications", timeout=60)
        if resp.status_code == 503:  # status says ready; the proxy routes it after its next refresh
            assert resp.json()["error"]["code"] == "HistoryStarting" and resp.headers["Retry-After"], resp.text[:300]
            return None
        assert resp.status_code == 200, resp.text[:300]
        apps = [a for a in resp.json() if a["id"] == spark_app]
        return apps if apps and all(at["completed"] for at in apps[0]["attempts"]) else None
    (listing,) = api.wait(f"{spark_app} in the history server", listed, timeout_s=180, interval_s=2)
    assert listing["name"] == "history-e2e"

    page = get_following(http, finished["history_url"], prefix)
    assert page.status_code == 200 and "Spark Jobs" in page.text, page.text[:500]
    found = assert_links_under(page.url, page.text, prefix)
    assert any(f"/history/{spark_app}/stages/" in u for u in found), found
    # Without the trailing path the loader redirects to the request's own path: still under the prefix.
    assert get_following(http, f"{proxy}{prefix}history/{spark_app}", prefix).status_code == 200
    home = get_following(http, f"{proxy}/sig/{TENANT}/{SIG}/history", prefix)
    assert home.status_code == 200 and "History Server" in home.text
    assert_links_under(home.url, home.text, prefix)
    # The SIG's own event log directory holds it (platform-owned: a tenant cannot redirect it).
    assert (platform.state_dir / "storage" / TENANT / SIG / "eventlog" / spark_app).is_file()


def test_another_tenants_member_gets_404_and_delete_stops_the_history_server(platform: Stack, api: Api,
                                                                            finished: dict[str, str]) -> None:
    proxy = platform.proxy_url
    api.ok("POST", "/tenants", 201, json={"name": "histo"})
    api.ok("PUT", "/tenants/histo/members/user/mallory", 200, json={"roles": ["consumer_admin"]})
    mallory = token_for(platform, "mallory")
    for path in ("", "api/v1/applications", f"history/{finished['spark_app_id']}/jobs/"):
        resp = requests.get(f"{proxy}/sig/{TENANT}/{SIG}/history/{path}", headers={"Authorization": f"Bearer {mallory}"},
                            timeout=30, allow_redirects=False)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "NotFound", path
    hosts = requests.get(f"http://127.0.0.1:{platform.registry_port}/hosts/{TENANT}/{SIG}", timeout=10).json()
    assert [h["role"] for h in hosts["hosts"]].count("history") == 1
    api.ok("DELETE", f"/tenants/{TENANT}/sigs/{SIG}", 202)
    api.wait_gone(TENANT, SIG, timeout_s=180)
    resp = requests.get(f"{proxy}/sig/{TENANT}/{SIG}/history/", auth=("admin", platform.admin_token()), timeout=30)
    assert resp.status_code == 404
