"""Per-user Jupyter servers on the compose stack: a user's server is a container of its own (role
notebook, the SIG's image with JupyterLab in it) on the SIG's network, reached only through the
proxy container. Through the proxy with a user's token a kernel runs `spark.range(10).count()`
on the SIG's master; the container mounts only that user's folder of the SIG's storage and the
SIG's uploads read-only, so the kernel sees no other user's notebooks (nor driver or event logs)
and reads an upload at the path applications use; another user of the tenant gets 404; the idle
server is culled and its Spark application ends."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.docker.conftest import SPARK, STACK, Compose
from tests.e2e.test_notebooks import execute, wait

pytestmark = pytest.mark.docker

TENANT, SIG = "nbd", "lab"
IDLE_S = 30
STORAGE = f"/var/lib/spaas/storage/{TENANT}/{SIG}"


def user_token(compose: Compose, user: str) -> str:
    """An API token of `user`, issued inside the api container (etcd is not published)."""
    code = ("import sys; from spaas.settings import ApiSettings; from spaas.etcd import EtcdStore;"
            "from spaas.auth import Identity, Tokens; from spaas.keys import Keys; s = ApiSettings.from_env();"
            "store = EtcdStore(s.etcd_url, user=s.etcd_user, password=s.etcd_password);"
            "print(Tokens(store, Keys(s.etcd_prefix)).issue(Identity(sys.argv[1]), kind='api', ttl_s=3600).token)")
    return compose.run("exec", "-T", "api", "python", "-c", code, user).strip().splitlines()[-1]


def master_apps(compose: Compose, http: requests.Session) -> dict[str, list[dict[str, Any]]]:
    data = http.get(f"{compose.proxy_url}/sig/{TENANT}/{SIG}/json/", timeout=30).json()
    return {"active": data.get("activeapps", []), "completed": data.get("completedapps", [])}


def named(apps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in apps if a.get("name") == "notebook-alice"]


# A SIG image with JupyterLab to build, and a kernel's Spark session to start on a loaded 2-core machine.
@pytest.mark.timeout(2400)
def test_notebook_server_on_docker(compose: Compose) -> None:
    import websocket

    api = compose.api
    if api.call("GET", f"/tenants/{TENANT}").status_code == 404:
        api.ok("POST", "/tenants", 201, json={"name": TENANT})
    for user in ("alice", "bob"):
        api.ok("PUT", f"/tenants/{TENANT}/members/user/{user}", 200, json={"roles": ["user"]})
    api.ok("POST", f"/tenants/{TENANT}/sigs", 202, json={
        "name": SIG, "spark_version": SPARK, "history": {"enabled": False},
        "spark_conf": {"spark.executor.memory": "512m", "spark.driver.memory": "512m"},
        "scaling": {"min_workers": 1, "max_workers": 1},
        "resources": {"cpu": 1, "memory_mb": 1024, "max_cpu": 2, "max_memory_mb": 2048},
        "notebooks": {"jupyter": {"enabled": True, "idle_timeout_s": IDLE_S}}})
    api.wait_phase(TENANT, SIG, "READY", timeout_s=1200)
    # An upload (readable in alice's server, read-only) and another user's notebook (not visible).
    api.upload(TENANT, SIG, "shared.csv", "a,b\n1,2\n")
    compose.run("exec", "-T", "api", "sh", "-c", f"mkdir -p {STORAGE}/notebooks/bob && "
                f"echo private > {STORAGE}/notebooks/bob/secret.ipynb")

    alice_token, bob_token = user_token(compose, "alice"), user_token(compose, "bob")
    alice = requests.Session()
    alice.headers["Authorization"] = f"Bearer {alice_token}"
    base = f"{compose.proxy_url}/sig/{TENANT}/{SIG}/notebooks/alice"
    first = alice.get(f"{base}/api/status", timeout=30)
    assert first.status_code in (200, 503), first.text
    wait("alice's server", lambda: alice.get(f"{base}/api/status", timeout=30).status_code == 200, 900, 2)

    # Its own container, on the SIG's network, with only alice's folder mounted.
    (container,) = compose.containers(tenant=TENANT, sig=SIG, role="notebook")
    info = compose.inspect(container["ID"])
    assert f"{STACK}-{TENANT}-{SIG}" in info["NetworkSettings"]["Networks"]
    mounts = {m["Destination"]: m["RW"] for m in info["Mounts"] if m["Type"] == "bind"}
    assert mounts == {f"{STORAGE}/notebooks/alice": True, f"{STORAGE}/files": False}
    # The SIG's other containers have files/ as a mount point of their own (their jobs cannot replace it).
    (worker,) = compose.containers(tenant=TENANT, sig=SIG, role="worker")
    assert {m["Destination"]: m["RW"] for m in compose.inspect(worker["ID"])["Mounts"] if m["Type"] == "bind"} == \
        {STORAGE: True, f"{STORAGE}/files": True}
    assert not [p for p in info["HostConfig"].get("PortBindings") or {}]  # reached through the proxy only

    kernel = alice.post(f"{base}/api/kernels", json={"name": "python3"}, timeout=600)
    assert kernel.status_code == 201, kernel.text
    kid = kernel.json()["id"]
    ws = websocket.create_connection(base.replace("http://", "ws://") + f"/api/kernels/{kid}/channels",
                                     header=[f"Authorization: Bearer {alice_token}"], timeout=600)
    try:
        # Spark's console progress bar (stderr, `\r`-separated) may come first when the stage is slow.
        out = execute(ws, "print(spark.range(10).count())", 600)
        assert out.replace("\r", "\n").strip().splitlines()[-1] == "10", out
        seen = json.loads(execute(ws, "import json, os\n"
                                      f"root = {STORAGE!r}\n"
                                      "print(json.dumps({'sig': sorted(os.listdir(root)),"
                                      " 'notebooks': sorted(os.listdir(root + '/notebooks')),"
                                      " 'files': sorted(os.listdir(root + '/files')),"
                                      " 'cwd': os.getcwd()}))"))
        assert seen == {"sig": ["files", "notebooks"], "notebooks": ["alice"], "files": ["shared.csv"],
                        "cwd": f"{STORAGE}/notebooks/alice"}
        # The upload at the path applications use: Spark (its executors on the workers) reads it;
        # the kernel cannot change it.
        out = execute(ws, f"print(spark.read.csv({STORAGE + '/files/shared.csv'!r}, header=True).collect())", 600)
        assert out.replace("\r", "\n").strip().splitlines()[-1] == "[Row(a='1', b='2')]", out
        out = execute(ws, "import errno\n"
                          "try:\n"
                          f"    open({STORAGE + '/files/shared.csv'!r}, 'a').write('x')\n"
                          "except OSError as e:\n"
                          "    print(errno.errorcode[e.errno])")
        assert out.strip() == "EROFS", out
        execute(ws, "open('note.txt', 'w').write('kept')")
    finally:
        ws.close()
    # What the kernel wrote is in alice's folder of the SIG's storage (it outlives the container).
    assert compose.run("exec", "-T", "api", "cat", f"{STORAGE}/notebooks/alice/note.txt") == "kept"

    apps = wait("the notebook's application on the master", lambda: named(master_apps(compose, alice)["active"]), 120)
    assert apps[0]["state"] in ("RUNNING", "WAITING")

    # Another user of the same tenant: the same 404 as a SIG that does not exist.
    bob = {"Authorization": f"Bearer {bob_token}"}
    for path in ("/lab", "/api/status", "/api/kernels"):
        resp = requests.get(base + path, headers=bob, timeout=30)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "NotFound", (path, resp.text)

    # Closed as a user closing the tab would; then idle, culled with its Spark application.
    assert alice.delete(f"{base}/api/kernels/{kid}", timeout=120).status_code == 204
    wait("alice's server to be culled", lambda: not api.sig(TENANT, SIG)["status"]["notebooks"]["servers"],
         IDLE_S * 4 + 180, 2)
    wait("the notebook container to go", lambda: not compose.containers(tenant=TENANT, sig=SIG, role="notebook"), 120)
    wait("the notebook's application to complete", lambda: named(master_apps(compose, alice)["completed"]), 120)
    assert not named(master_apps(compose, alice)["active"])

    api.ok("DELETE", f"/tenants/{TENANT}/sigs/{SIG}", 202)
    api.wait_gone(TENANT, SIG, timeout_s=180)
    assert compose.containers(tenant=TENANT, sig=SIG) == []
