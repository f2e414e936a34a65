"""services/proxy on the compose stack: the scaler connects the proxy to the SIG's own network,
and through it the SIG's master, worker and running application pages load with every link
under /sig/{t}/{s}/ and no redirect naming an internal host; forward mode reaches the SIG's
containers by their registered names only with credentials."""

from __future__ import annotations

import pytest
import requests

from tests.docker.conftest import SPARK, STACK, Compose
from tests.e2e.test_proxy_ui import APP_PAGES, LONG_JOB, check_page

pytestmark = pytest.mark.docker


def test_spark_uis_through_the_proxy_on_docker(compose: Compose) -> None:
    api = compose.api
    if api.call("GET", "/tenants/pxa").status_code == 404:
        api.ok("POST", "/tenants", 201, json={"name": "pxa"})
    api.ok("POST", "/tenants/pxa/sigs", 202, json={
        "name": "ui", "spark_version": SPARK, "scaling": {"min_workers": 1, "max_workers": 1},
        "resources": {"cpu": 1, "memory_mb": 1024, "max_cpu": 2, "max_memory_mb": 2048}})
    view = api.wait_phase("pxa", "ui", "READY", timeout_s=900)
    prefix = "/sig/pxa/ui/"
    assert view["status"]["ui_url"] == compose.proxy_url + prefix
    nets = compose.inspect(f"{STACK}-proxy")["NetworkSettings"]["Networks"]
    assert f"{STACK}-pxa-ui" in nets, f"the proxy is not on the SIG network: {sorted(nets)}"
    # The proxy routes on the scaler's verified record: the master's IP on its SIG network, as Docker says.
    master_ip = compose.inspect(f"{STACK}-pxa-ui-master-0")["NetworkSettings"]["Networks"][f"{STACK}-pxa-ui"]["IPAddress"]
    routes = compose.etcd_prefix("/spaas/routes/pxa/ui/")
    assert any(r["role"] == "master" and r["ip"] == master_ip and r["ports"].get("ui") for r in routes), routes
    path = api.upload("pxa", "ui", "ui.py", LONG_JOB)
    app_id = api.submit("pxa", "ui", file=path, executorMemory="512m")
    app = api.wait(f"app {app_id} ready", lambda: (a := api.app("pxa", "ui", app_id)) and a["state"] == "RUNNING"
                   and a["spark_app_id"] and any("RESULT ready" in line for line in api.log("pxa", "ui", app_id))
                   and a, timeout_s=300)
    spark_app = app["spark_app_id"]
    assert app["ui_url"] == f"{compose.proxy_url}{prefix}proxy/{spark_app}/"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {compose.token}"
    master_links = check_page(http, compose.proxy_url + prefix, prefix)
    workers = sorted(u for u in master_links if "/proxy/worker-" in u)
    assert workers
    check_page(http, workers[0], prefix)
    for page in APP_PAGES:
        check_page(http, f"{compose.proxy_url}{prefix}proxy/{spark_app}/{page}", prefix, follow=page == "jobs/")
    resp = http.get(f"{compose.proxy_url}{prefix}proxy/{spark_app}", allow_redirects=False, timeout=30)
    assert resp.status_code == 302 and resp.headers["Location"].startswith(prefix)
    # Forward mode by the container's registered name and UI port.
    target = f"http://pxa-ui-master-0:{_ui_port(compose)}/"
    assert requests.get(target, proxies={"http": compose.proxy_url}, timeout=30).status_code == 407
    auth = compose.proxy_url.replace("://", f"://admin:{compose.token}@")
    assert requests.get(target, proxies={"http": auth}, timeout=30).status_code == 200
    assert requests.get("http://etcd:2379/health", proxies={"http": auth}, timeout=30).status_code == 403
    api.call("DELETE", f"/tenants/pxa/sigs/ui/applications/{app_id}")
    api.ok("DELETE", "/tenants/pxa/sigs/ui", 202)
    api.wait_gone("pxa", "ui", timeout_s=180)


def _ui_port(compose: Compose) -> int:
    records = compose.etcd_prefix("/spaas/hosts/pxa/ui/")
    return int(next(r for r in records if r.get("role") == "master")["ports"]["ui"])
