"""The SIG's history server on the compose stack: its own container (role history, fixed size,
only its SIG's storage mounted) on the SIG's network; through the proxy a finished application
is listed and its jobs page loads with every link and redirect under /sig/{t}/{s}/history/;
deleting the SIG removes the container."""

from __future__ import annotations

import pytest
import requests

from tests.docker.conftest import SPARK, STACK, Compose
from tests.e2e.test_history import JOB, assert_links_under, get_following

pytestmark = pytest.mark.docker


def test_history_server_on_docker(compose: Compose) -> None:
    api = compose.api
    if api.call("GET", "/tenants/hsd").status_code == 404:
        api.ok("POST", "/tenants", 201, json={"name": "hsd"})
    api.ok("POST", "/tenants/hsd/sigs", 202, json={
        "name": "h", "spark_version": SPARK, "history": {"enabled": True},
        "scaling": {"min_workers": 1, "max_workers": 1},
        "resources": {"cpu": 1, "memory_mb": 1024, "max_cpu": 2, "max_memory_mb": 2048}})
    api.wait_phase("hsd", "h", "READY", timeout_s=900)
    view = api.wait("history server ready", lambda: (v := api.sig("hsd", "h"))["status"]["history"]["ready"] and v,
                    timeout_s=300)
    prefix = "/sig/hsd/h/history/"
    assert view["status"]["history"]["ui_url"] == compose.proxy_url + prefix
    (container,) = compose.containers(tenant="hsd", sig="h", role="history")
    info = compose.inspect(container["ID"])
    assert info["HostConfig"]["Memory"] == 1024 * 2**20 and info["HostConfig"]["NanoCpus"] == 10**9
    # Its SIG's storage, and files/ bound onto itself (a mount point job code cannot replace).
    assert sorted(m["Destination"] for m in info["Mounts"] if m["Type"] == "bind") == [
        "/var/lib/spaas/storage/hsd/h", "/var/lib/spaas/storage/hsd/h/files"]
    assert f"{STACK}-hsd-h" in info["NetworkSettings"]["Networks"]

    path = api.upload("hsd", "h", "hist.py", JOB)
    app_id = api.submit("hsd", "h", file=path, executorMemory="512m")
    app = api.wait_app("hsd", "h", app_id, timeout_s=900)
    assert app["state"] == "FINISHED", app
    spark_app = app["spark_app_id"]
    assert app["history_url"] == f"{compose.proxy_url}{prefix}history/{spark_app}/jobs/"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {compose.token}"

    def listed() -> bool:
        resp = http.get(f"{compose.proxy_url}{prefix}api/v1/applications", timeout=60)
        return resp.ok and any(a["id"] == spark_app and all(at["completed"] for at in a["attempts"]) for a in resp.json())
    api.wait(f"{spark_app} in the history server", listed, timeout_s=180, interval_s=2)
    page = get_following(http, app["history_url"], prefix)
    assert page.status_code == 200 and "Spark Jobs" in page.text
    assert_links_under(page.url, page.text, prefix)

    api.ok("DELETE", "/tenants/hsd/sigs/h", 202)
    api.wait_gone("hsd", "h", timeout_s=180)
    assert compose.containers(tenant="hsd", sig="h") == []
