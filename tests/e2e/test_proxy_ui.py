"""Through services/proxy, on the embedded stack with real Spark: the master, a worker and a running
application's pages load, every link on them stays under /sig/{t}/{s}/ and works, no redirect
names an internal host, and another tenant's member gets 404 everywhere."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from spaas.auth import Identity, Tokens
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.stack import Stack

from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e

LONG_JOB = """
import time
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("ui").getOrCreate()
spark.range(0, 10000, 1, 4).selectExpr("sum(id) AS total").collect()
spark.range(0, 100).cache().count()
print("RESULT ready", flush=True)
time.sleep(240)
spark.stop()
"""

LINK = re.compile(r'(?:href|src)\s*=\s*"([^"]*)"')
APP_PAGES = ("jobs/", "stages/", "storage/", "environment/", "executors/", "SQL/")


def links(page_url: str, html: str) -> set[str]:
    """Every href/src on the page, resolved against it, as paths (fragments and javascript: dropped)."""
    out = set()
    for raw in LINK.findall(html):
        raw = raw.replace("&amp;", "&")
        if not raw or raw.startswith("#") or raw.startswith("javascript:"):
            continue
        full = urlsplit(urljoin(page_url, raw))
        out.add(full._replace(fragment="").geturl())
    return out


@pytest.fixture(scope="module")
def running(platform: Stack, api: Api) -> dict[str, str]:
    tenant = "uiproxy"
    api.ok("POST", "/tenants", 201, json={"name": tenant})
    api.ok("POST", f"/tenants/{tenant}/sigs", 202, json={"name": "etl", "spark_version": "3.5.9",
                                                          "scaling": {"min_workers": 1, "max_workers": 1}})
    view = api.wait_phase(tenant, "etl", "READY", timeout_s=600)
    path = api.upload(tenant, "etl", "ui.py", LONG_JOB)
    app_id = api.submit(tenant, "etl", file=path)
    app = api.wait(f"app {app_id} ready", lambda: (a := api.app(tenant, "etl", app_id)) and a["state"] == "RUNNING"
                   and a["spark_app_id"] and any("RESULT ready" in line for line in api.log(tenant, "etl", app_id))
                   and a, timeout_s=300)
    return {"tenant": tenant, "sig": "etl", "ui_url": view["status"]["ui_url"], "app_ui_url": app["ui_url"],
            "spark_app_id": app["spark_app_id"], "app_id": app_id}


def check_page(http: requests.Session, url: str, prefix: str, *, follow: bool = True) -> set[str]:
    resp = http.get(url, timeout=30, allow_redirects=False)
    assert resp.status_code == 200, f"{url}: {resp.status_code} {resp.text[:300]}"
    found = links(url, resp.text)
    base = urlsplit(url)
    outside = [u for u in found if urlsplit(u).netloc != base.netloc or not urlsplit(u).path.startswith(prefix)]
    assert not outside, f"links on {url} leave {prefix}: {outside}"
    if follow:
        for link in sorted(found):
            if "kill" in link or "/log" in link.lower():
                continue
            got = http.get(link, timeout=30, allow_redirects=False)
            while got.status_code in (301, 302, 303, 307):
                location = got.headers["Location"]
                assert location.startswith(prefix), f"{link} redirects to {location}"
                got = http.get(urljoin(link, location), timeout=30, allow_redirects=False)
            assert got.status_code == 200, f"{link} (on {url}): {got.status_code}"
    return found


def test_spark_uis_through_the_proxy(platform: Stack, api: Api, running: dict[str, str]) -> None:
    proxy = platform.proxy_url
    tenant, sig, spark_app = running["tenant"], running["sig"], running["spark_app_id"]
    prefix = f"/sig/{tenant}/{sig}/"
    assert running["ui_url"] == f"{proxy}{prefix}"
    assert running["app_ui_url"] == f"{proxy}{prefix}proxy/{spark_app}/"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {platform.admin_token()}"
    master_links = check_page(http, proxy + prefix, prefix)
    workers = sorted(u for u in master_links if "/proxy/worker-" in u)
    assert workers, f"no worker link on the master page: {master_links}"
    check_page(http, workers[0], prefix)
    assert any(f"/proxy/{spark_app}" in u for u in master_links)
    for page in APP_PAGES:
        check_page(http, f"{proxy}{prefix}proxy/{spark_app}/{page}", prefix, follow=page in ("jobs/", "SQL/"))
    # The executors page fills itself from the REST API through the same path.
    resp = http.get(f"{proxy}{prefix}proxy/{spark_app}/api/v1/applications/{spark_app}/allexecutors", timeout=30)
    assert resp.status_code == 200 and resp.json()
    # Redirects (Jetty names the Host it was sent) never name an internal host.
    for path in (f"proxy/{spark_app}", f"proxy/{spark_app}/jobs", "static", f"app?appId={spark_app}"):
        resp = http.get(proxy + prefix + path, timeout=30, allow_redirects=False)
        assert resp.status_code == 302, path
        assert resp.headers["Location"].startswith(prefix), resp.headers["Location"]

    # Forward mode: the master's registered name and UI port, with Proxy-Authorization.
    hosts = requests.get(f"http://127.0.0.1:{platform.registry_port}/hosts/{tenant}/{sig}", timeout=10).json()
    master = next(h for h in hosts["hosts"] if h["role"] == "master")
    target = f"http://{master['host']}:{master['ports']['ui']}/"
    anon = requests.get(target, proxies={"http": proxy}, timeout=30)
    assert anon.status_code == 407
    auth_proxy = proxy.replace("://", f"://admin:{platform.admin_token()}@")
    assert requests.get(target, proxies={"http": auth_proxy}, timeout=30).status_code == 200
    page = requests.get(target + prefix.lstrip("/") + f"proxy/{spark_app}/jobs/", proxies={"http": auth_proxy},
                        timeout=30)
    assert page.status_code == 200 and "Spark Jobs" in page.text


def test_another_tenants_member_and_anonymous_are_kept_out(platform: Stack, api: Api,
                                                          running: dict[str, str]) -> None:
    proxy = platform.proxy_url
    tenant, sig, spark_app = running["tenant"], running["sig"], running["spark_app_id"]
    api.ok("POST", "/tenants", 201, json={"name": "uiother"})
    api.ok("PUT", "/tenants/uiother/members/user/mallory", 200, json={"roles": ["consumer_admin"]})
    keys = Keys()
    token = Tokens(EtcdStore(platform.etcd_url), keys).issue(Identity("mallory"), kind="api", ttl_s=600).token
    paths = ["", "jobs/", f"proxy/{spark_app}/jobs/", f"proxy/{spark_app}/SQL/", "history/", "notebooks/mallory/",
             "static/webui.js"]
    for path in paths:
        url = f"{proxy}/sig/{tenant}/{sig}/{path}"
        theirs = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30, allow_redirects=False)
        assert theirs.status_code == 404, url
        assert theirs.json()["error"] == {"code": "NotFound", "field": "sig",
                                          "message": f"SIG {sig!r} not found in tenant {tenant!r}"}
        anon = requests.get(url, timeout=30, allow_redirects=False)
        assert anon.status_code == 401
        browser = requests.get(url, headers={"Accept": "text/html"}, timeout=30, allow_redirects=False)
        assert browser.status_code == 302 and browser.headers["Location"].startswith("/platform/login?next=")
    hosts = requests.get(f"http://127.0.0.1:{platform.registry_port}/hosts/{tenant}/{sig}", timeout=10).json()
    for host in hosts["hosts"]:
        url = f"http://{host['host']}:{host['ports']['ui']}/"
        resp = requests.get(url, proxies={"http": proxy.replace("://", f"://mallory:{token}@")}, timeout=30)
        assert resp.status_code == 403, url
    # Not a SIG host at all, and the platform's own API: refused to everyone.
    admin_proxy = proxy.replace("://", f"://admin:{platform.admin_token()}@")
    for url in ("http://example.com/", f"http://127.0.0.1:{platform.api_port}/api/v1/healthz"):
        assert requests.get(url, proxies={"http": admin_proxy}, timeout=30).status_code == 403
    # The API through the proxy, unchanged.
    assert requests.get(f"{proxy}/api/v1/tenants/{tenant}", headers={"Authorization": f"Bearer {token}"},
                        timeout=30).status_code == 404
    assert requests.get(f"{proxy}/api/v1/tenants/{tenant}", auth=("admin", platform.admin_token()),
                        timeout=30).json()["name"] == tenant
