"""The whole platform on the kubernetes runtime: the real API, builder, etcd, Redis and a scaler
with SPAAS_RUNTIME=kubernetes talking HTTP to kmock's API emulator, and a test node agent that
runs the pods' agents (real Spark) as processes and reports their status. A tenant sees its SIG
become READY, a job FINISH, the SIG grow pods for a demanding job and shrink back, and deleting
the SIG removes every Kubernetes object it had.

What this proves and what it does not: docs/kubernetes.md, "What the kubernetes runtime's tests prove".
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from spaas.stack import ROOT, Stack, _spawn, _wait, free_port, stop_pid
from tests.e2e.conftest import JOB, Api
from tests.kubernetes.harness import ApiServer, NodeAgent
from tests.kubeschema import assert_valid

pytestmark = pytest.mark.e2e

NS = "spaas-e2e"
STACK = "e2e-spaas"
SPARK = "3.5.9"
SMALL = {"cpu": 1, "memory_mb": 1024, "max_cpu": 1, "max_memory_mb": 1024}
WIDE_JOB = """
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
sc = spark.sparkContext
executors = sc._jsc.sc().getExecutorIds().size()
print(f"RESULT executors={executors} total={sc.parallelize(range(300), 3).map(lambda x: x + 1).sum()}")
spark.stop()
"""
WAIT_FOR_ALL = {"spark.scheduler.minRegisteredResourcesRatio": "1.0",
                "spark.scheduler.maxRegisteredResourcesWaitingTime": "120s"}


class KubePlatform:
    def __init__(self, stack: Stack, server: ApiServer, node: NodeAgent) -> None:
        self.stack, self.server, self.node = stack, server, node

    def objects(self, plural: str) -> dict[str, dict[str, Any]]:
        group = "apis/networking.k8s.io/v1" if plural == "networkpolicies" else "api/v1"
        resp = requests.get(f"{self.server.url}/{group}/namespaces/{NS}/{plural}", timeout=10)
        resp.raise_for_status()
        return {o["metadata"]["name"]: o for o in resp.json()["items"]}

    def pods_of(self, tenant: str, sig: str, role: str | None = None) -> dict[str, dict[str, Any]]:
        return {n: p for n, p in self.objects("pods").items()
                if p["metadata"]["labels"].get("spaas.io/tenant") == tenant
                and p["metadata"]["labels"].get("spaas.io/sig") == sig
                and (role is None or p["metadata"]["labels"].get("spaas.io/role") == role)}


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubePlatform]:
    state = tmp_path_factory.mktemp("kube-platform")
    stack = Stack(state_dir=state, api_port=free_port(), registry_port=free_port(),
                  layers_dir=Path.home() / ".cache" / "spaas" / "layers",
                  extra_env={"SPAAS_RESYNC_S": "1", "SPAAS_HISTORY_DEFAULT": "false"})
    with ApiServer() as server:
        stack.up()
        node: NodeAgent | None = None
        try:
            # The embedded stack's scaler runs processes; swap it for one on the kubernetes runtime.
            stack.stop_service("scaler")
            env = stack.env()
            port = free_port()
            env.update(SPAAS_RUNTIME="kubernetes", SPAAS_K8S_API_URL=server.url, SPAAS_K8S_NAMESPACE=NS,
                       SPAAS_K8S_STACK=STACK, SPAAS_K8S_INSTANCE="e2e", SPAAS_HEALTH_PORT=str(port),
                       SPAAS_STOP_GRACE_S="10")
            proc = _spawn([sys.executable, "-m", "services.scaler"], state / "logs" / "scaler-kubernetes.log", env,
                          cwd=ROOT)
            _wait(lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok, "the kubernetes scaler",
                  60, proc)
            stack.health_ports["scaler"] = port
            node = NodeAgent(server.client(), NS, state).__enter__()
            yield KubePlatform(stack, server, node)
        finally:
            if "proc" in locals():
                stop_pid(proc.pid)
            if node is not None:
                node.__exit__(None, None, None)
            stack.down()


@pytest.fixture(scope="module")
def api(kube: KubePlatform) -> Api:
    return Api(kube.stack.api_url, kube.stack.admin_token())


def scaler_log(kube: KubePlatform) -> str:
    return (kube.stack.state_dir / "logs" / "scaler-kubernetes.log").read_text()[-3000:]


def test_sig_lifecycle_on_kubernetes(kube: KubePlatform, api: Api) -> None:
    tenant = "kube" + str(os.getpid() % 1000)
    api.ok("POST", "/tenants", 201, json={"name": tenant})
    api.ok("POST", f"/tenants/{tenant}/sigs", 202, json={
        "name": "etl", "spark_version": SPARK, "resources": SMALL,
        "scaling": {"min_workers": 1, "max_workers": 3, "allocation_unit": 2, "interval_s": 2, "idle_timeout_s": 8}})
    try:
        view = api.wait_phase(tenant, "etl", "READY", timeout_s=300)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nscaler log:\n{scaler_log(kube)}\nnode errors: {kube.node.errors}") from None
    assert view["status"]["workers"]["ready"] == 1

    # What Kubernetes holds for the SIG: a master and a worker pod, stable names, all valid.
    pods = kube.pods_of(tenant, "etl")
    assert set(pods) == {f"{STACK}-{tenant}-etl-master-0", f"{STACK}-{tenant}-etl-worker-0"}
    assert_valid(pods.values())
    assert all(p["status"]["phase"] == "Running" for p in pods.values())
    worker = pods[f"{STACK}-{tenant}-etl-worker-0"]["spec"]["containers"][0]
    assert worker["resources"] == {"requests": {"cpu": "1000m", "memory": "1024Mi"},
                                   "limits": {"cpu": "1000m", "memory": "1024Mi"}}
    sig_objects = f"{STACK}-{tenant}-etl"
    assert sig_objects in kube.objects("services") and sig_objects in kube.objects("networkpolicies")
    assert kube.objects("resourcequotas")[f"{STACK}-sigs"]["spec"]["hard"]["pods"] == "10"

    # A job finishes.
    path = api.upload(tenant, "etl", "job.py", JOB)
    app_id = api.submit(tenant, "etl", file=path, args=["k8s"])
    app = api.wait_app(tenant, "etl", app_id, timeout_s=240)
    assert app["state"] == "FINISHED", app
    assert any("RESULT total=1001000" in line for line in api.log(tenant, "etl", app_id))

    # A demanding job adds worker pods; once idle they go.
    wide = api.upload(tenant, "etl", "wide.py", WIDE_JOB)
    app_id = api.submit(tenant, "etl", file=wide, numExecutors=3, executorCores=1, executorMemory="512m",
                        conf=WAIT_FOR_ALL)
    api.wait("3 worker pods", lambda: len(kube.pods_of(tenant, "etl", "worker")) == 3, 120, 0.5)
    app = api.wait_app(tenant, "etl", app_id, timeout_s=240)
    assert app["state"] == "FINISHED", app
    assert [line for line in api.log(tenant, "etl", app_id) if "RESULT" in line] == ["RESULT executors=3 total=45150"]
    api.wait("idle worker pods to go", lambda: len(kube.pods_of(tenant, "etl", "worker")) == 1, 90, 1)
    assert api.sig(tenant, "etl")["status"]["phase"] == "READY"

    # Deleting the SIG removes every object it had.
    api.ok("DELETE", f"/tenants/{tenant}/sigs/etl", 202)
    api.wait_gone(tenant, "etl")
    for plural in ("pods", "secrets", "services", "networkpolicies"):
        left = [n for n in kube.objects(plural) if f"-{tenant}-etl" in n]
        assert not left, f"{plural} left after deleting the SIG: {left}"
    assert not [c for c in kube.node.processes.list() if c.tenant == tenant]
    assert not kube.node.errors, kube.node.errors
