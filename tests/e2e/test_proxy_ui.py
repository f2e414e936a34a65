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
from spaas.store import Entry

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
EMPTY = Entry("", {}, 0, 0)
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
            chain = [link]
            while got.status_code in (301, 302, 303, 307):
                location = got.headers["Location"]
                assert location.startswith(prefix), f"{link} redirects to {location}"
                chain.append(urljoin(chain[-1], location))
                got = http.get(chain[-1], timeout=30, allow_redirects=False)
            assert got.status_code == 200, f"{' -> '.join(chain)} (on {url}): {got.status_code} {got.text[:300]}"
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
    # Spark's master at times names a truncated application id in the redirects it passes on
    # (`/proxy/<id less 6 characters>/...`, which it then refuses): each is followed to its page.
    for path in (f"proxy/{spark_app}", f"proxy/{spark_app}/jobs", f"proxy/{spark_app}/stages",
                 f"proxy/{spark_app}/SQL", "static", f"app?appId={spark_app}"):
        for _ in range(3):
            resp = http.get(proxy + prefix + path, timeout=30, allow_redirects=False)
            assert resp.status_code == 302, path
            assert resp.headers["Location"].startswith(prefix), resp.headers["Location"]
            if path != "static":
                page = http.get(urljoin(proxy + prefix + path, resp.headers["Location"]), timeout=30)
                assert page.status_code == 200, f"{path} -> {resp.headers['Location']}: {page.status_code}"

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


# Tenant code: a job that rewrites its SIG's host records with the etcd access its driver has (the
# SIG's own etcd user where etcd has authentication), pointing them at a platform service.
REROUTE = r"""
import base64, json, os, sys, urllib.request
url, prefix = os.environ["SPAAS_ETCD_URL"].rstrip("/"), os.environ.get("SPAAS_ETCD_PREFIX", "/spaas")
tenant, sig = os.environ["SPAAS_TENANT"], os.environ["SPAAS_SIG"]
headers = {"Content-Type": "application/json"}
def call(path, body):
    req = urllib.request.Request(url + path, json.dumps(body).encode(), headers)
    return json.loads(urllib.request.urlopen(req, timeout=10).read() or b"{}")
if os.environ.get("SPAAS_ETCD_USER"):
    headers["Authorization"] = call("/v3/auth/authenticate", {"name": os.environ["SPAAS_ETCD_USER"],
                                                             "password": os.environ["SPAAS_ETCD_PASSWORD"]})["token"]
b64 = lambda text: base64.b64encode(text.encode()).decode()
mode, port = sys.argv[1], int(sys.argv[2])
hosts = f"{prefix}/hosts/{tenant}/{sig}/"
if mode == "plant":  # a record of its own, sorted after the master's
    record = {"role": "master", "ready": True, "ip": "127.0.0.1", "ports": {"ui": port, "spark": port}}
    call("/v3/kv/put", {"key": b64(hosts + "zz-evil"), "value": b64(json.dumps(record))})
else:  # the master's own record
    key = hosts + f"{tenant}-{sig}-master-0"
    record = json.loads(base64.b64decode(call("/v3/kv/range", {"key": b64(key)})["kvs"][0]["value"]))
    record["ports"] = dict(record["ports"], ui=port)
    call("/v3/kv/put", {"key": b64(key), "value": b64(json.dumps(record))})
print("RESULT rerouted", mode, flush=True)
"""


def test_tenant_code_cannot_point_the_proxy_at_a_platform_service(platform: Stack, api: Api,
                                                                  running: dict[str, str]) -> None:
    proxy, tenant, sig = platform.proxy_url, running["tenant"], running["sig"]
    store, keys = EtcdStore(platform.etcd_url), Keys()
    master_key = keys.host(tenant, sig, f"{tenant}-{sig}-master-0")
    genuine = store.get(master_key)
    assert genuine is not None
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {platform.admin_token()}"
    forward = {"http": proxy.replace("://", f"://admin:{platform.admin_token()}@")}
    # The registry: a platform service with no entry in the proxy's deny list; its answer to this
    # path is JSON naming the SIG's hosts.
    service = platform.registry_port
    probe = f"{proxy}/sig/{tenant}/{sig}/hosts/{tenant}/{sig}"
    assert "hosts" in requests.get(f"http://127.0.0.1:{service}/hosts/{tenant}/{sig}", timeout=10).json()

    def never_the_service(resp: requests.Response) -> requests.Response:
        assert '"hosts"' not in resp.text, f"the proxy forwarded to the platform service: {resp.text[:300]}"
        return resp

    path = api.upload(tenant, sig, "reroute.py", REROUTE)
    try:
        # 1. A record of its own naming the service: never routed; the genuine UI keeps working.
        app_id = api.submit(tenant, sig, file=path, args=["plant", str(service)])
        assert api.wait_app(tenant, sig, app_id, timeout_s=300)["state"] == "FINISHED"
        # (The planted record has no lease: the registry's sweep may remove it at any moment.)
        for _ in range(3):
            never_the_service(http.get(probe, timeout=30))
            page = http.get(f"{proxy}/sig/{tenant}/{sig}/", timeout=30)
            assert page.status_code == 200 and "Spark Master" in page.text
        for host in ("zz-evil", f"zz-evil.{sig}.{tenant}", "127.0.0.1"):
            resp = never_the_service(requests.get(f"http://{host}:{service}/hosts/{tenant}/{sig}", proxies=forward,
                                                  timeout=30))
            assert resp.status_code == 403, host
        assert store.get(keys.route(tenant, sig, "zz-evil")) is None
        # 2. (The planted record stays: once the master's UI route is gone below, nothing may
        # take its place.) The master's own record rewritten to name the service (then the API): its UI route
        # goes (503), the service is never answered; with the agent's record back, the UI is back.
        for target in (service, platform.api_port):
            app_id = api.submit(tenant, sig, file=path, args=["rewrite", str(target)])
            assert api.wait_app(tenant, sig, app_id, timeout_s=300)["state"] == "FINISHED"
            api.wait("the master's route to lose its UI port", lambda: "ui" not in (
                (store.get(keys.route(tenant, sig, f"{tenant}-{sig}-master-0")) or EMPTY).value.get("ports") or {}),
                timeout_s=60)
            body = api.wait("the proxy to stop routing to the master", lambda: (r := never_the_service(
                http.get(probe, timeout=30))).status_code == 503 and r.json(), timeout_s=60)
            assert body["error"]["code"] == "NotRunning"
            resp = requests.get(f"http://{tenant}-{sig}-master-0:{target}/", proxies=forward, timeout=30)
            assert resp.status_code == 403
            never_the_service(resp)
            store.put(master_key, genuine.value, lease=genuine.lease)  # as the agent wrote it
            api.wait("the genuine UI back", lambda: "Spark Master" in never_the_service(
                http.get(f"{proxy}/sig/{tenant}/{sig}/", timeout=30)).text, timeout_s=60)
    finally:
        store.put(master_key, genuine.value, lease=genuine.lease)
        store.delete(keys.host(tenant, sig, "zz-evil"))
