"""KubernetesRuntime against the API emulator over HTTP, no node: the objects it creates, reads
back and deletes, and its idempotence (the scaler's retries and a restarted scaler)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes.client
import requests

from spaas.runtimes.base import MASTER, WORKER, ContainerSpec, container_name
from spaas.runtimes.kube_manifests import KubeOptions
from spaas.runtimes.kubernetes import KubernetesRuntime
from tests.kubeschema import assert_valid
from tests.kubernetes.harness import ApiServer

NS = "spaas1"
OPTS = KubeOptions(namespace=NS, stack="r1-spaas", instance="r1",
                   env={"SPAAS_REDIS_URL": "redis://:pw@r1-spaas-redis:6379/0"})
QUOTAS = [{"max_containers": 10, "cores": 40, "memory_mb": 61440, "gpus": 0}]


def spec(role: str, index: int, sig: str = "etl", chash: str = "h1") -> ContainerSpec:
    return ContainerSpec(name=container_name("acme", sig, role, index), tenant="acme", sig=sig, role=role, index=index,
                         config_hash=chash, generation=1, artifact="img:1",
                         env={"SPAAS_ETCD_PASSWORD": "derived"})


def objects(server: ApiServer, plural: str) -> dict[str, dict[str, Any]]:
    """What the API server holds, read with plain HTTP (not through the runtime under test)."""
    group = "apis/networking.k8s.io/v1" if plural == "networkpolicies" else "api/v1"
    resp = requests.get(f"{server.url}/{group}/namespaces/{NS}/{plural}", timeout=10)
    resp.raise_for_status()
    return {o["metadata"]["name"]: o for o in resp.json()["items"]}


def test_start_list_stop_cleanup(kube_api: ApiServer) -> None:
    rt = KubernetesRuntime(kube_api.client(), OPTS, tenant_quotas=lambda: QUOTAS)
    rt.start(spec(MASTER, 0))
    rt.start(spec(WORKER, 0))
    rt.start(spec(WORKER, 0))  # idempotent
    rt.start(spec(MASTER, 0, sig="other"))
    pods = objects(kube_api, "pods")
    assert set(pods) == {"r1-spaas-acme-etl-master-0", "r1-spaas-acme-etl-worker-0", "r1-spaas-acme-other-master-0"}
    assert_valid(pods.values())
    assert set(objects(kube_api, "services")) == {"r1-spaas-acme-etl", "r1-spaas-acme-other"}
    assert set(objects(kube_api, "networkpolicies")) == {"r1-spaas-acme-etl", "r1-spaas-acme-other"}
    secrets = objects(kube_api, "secrets")
    assert secrets["r1-spaas-acme-etl-worker-0"]["stringData"]["SPAAS_ETCD_PASSWORD"] == "derived"
    quota = objects(kube_api, "resourcequotas")["r1-spaas-sigs"]
    assert quota["spec"]["hard"]["pods"] == "10"

    listed = {c.name: c for c in rt.list()}
    assert set(listed) == {"acme-etl-master-0", "acme-etl-worker-0", "acme-other-master-0"}
    worker = listed["acme-etl-worker-0"]
    assert (worker.tenant, worker.sig, worker.role, worker.index, worker.config_hash, worker.running) == \
        ("acme", "etl", WORKER, 0, "h1", True)
    assert worker.started_at > 0

    # A restarted scaler (a new runtime object) sees the same containers.
    assert {c.name for c in KubernetesRuntime(kube_api.client(), OPTS).list()} == set(listed)

    rt.stop("acme-etl-worker-0", grace_s=0)
    assert "r1-spaas-acme-etl-worker-0" not in objects(kube_api, "pods")
    assert "r1-spaas-acme-etl-worker-0" not in objects(kube_api, "secrets")
    rt.stop("acme-etl-worker-0", grace_s=0)  # already gone: fine

    rt.cleanup_sig("acme", "etl")
    assert set(objects(kube_api, "pods")) == {"r1-spaas-acme-other-master-0"}
    assert set(objects(kube_api, "services")) == {"r1-spaas-acme-other"}
    assert set(objects(kube_api, "networkpolicies")) == {"r1-spaas-acme-other"}
    assert set(objects(kube_api, "secrets")) == {"r1-spaas-acme-other-master-0"}


def test_a_failed_pod_is_not_running_and_is_replaced(kube_api: ApiServer) -> None:
    rt = KubernetesRuntime(kube_api.client(), OPTS)
    rt.start(spec(WORKER, 3))
    core = kubernetes.client.CoreV1Api(kube_api.client())
    core.patch_namespaced_pod_status("r1-spaas-acme-etl-worker-3", NS, {"status": {"phase": "Failed"}})
    assert [c.running for c in rt.list()] == [False]
    rt.start(spec(WORKER, 3, chash="h2"))
    (c,) = rt.list()
    assert c.running and c.config_hash == "h2"


def test_addresses_are_pod_ips_from_pod_status_of_running_pods(kube_api: ApiServer) -> None:
    from spaas.runtimes.base import Address

    rt = KubernetesRuntime(kube_api.client(), OPTS)
    rt.start(spec(MASTER, 0))
    rt.start(spec(WORKER, 0))
    rt.start(spec(WORKER, 1))
    assert rt.addresses() == {}  # no pod has been scheduled yet
    core = kubernetes.client.CoreV1Api(kube_api.client())
    core.patch_namespaced_pod_status("r1-spaas-acme-etl-master-0", NS, {"status": {"phase": "Running",
                                                                                   "podIP": "10.42.0.7"}})
    core.patch_namespaced_pod_status("r1-spaas-acme-etl-worker-0", NS, {"status": {"phase": "Running",
                                                                                   "podIP": "10.42.0.8"}})
    core.patch_namespaced_pod_status("r1-spaas-acme-etl-worker-1", NS, {"status": {"phase": "Failed",
                                                                                   "podIP": "10.42.0.9"}})
    assert rt.addresses() == {"acme-etl-master-0": Address("10.42.0.7"), "acme-etl-worker-0": Address("10.42.0.8")}
    assert rt.addresses()["acme-etl-master-0"].owns("10.42.0.7", 4040)


def test_other_releases_pods_are_not_ours(kube_api: ApiServer) -> None:
    mine = KubernetesRuntime(kube_api.client(), OPTS)
    theirs = KubernetesRuntime(kube_api.client(), KubeOptions(namespace=NS, stack="r2-spaas", instance="r2"))
    mine.start(spec(MASTER, 0))
    theirs.start(spec(MASTER, 0))
    assert [c.name for c in mine.list()] == ["acme-etl-master-0"]
    theirs.cleanup_sig("acme", "etl")
    assert [c.name for c in mine.list()] == ["acme-etl-master-0"]
    assert set(objects(kube_api, "pods")) == {"r1-spaas-acme-etl-master-0"}


UNINSTALL_SELECTOR = "app.kubernetes.io/instance=r1,app.kubernetes.io/managed-by in (spaas-scaler,spaas-builder)"


def test_the_documented_uninstall_selector_finds_every_sig_object(kube_api: ApiServer) -> None:
    """docs/kubernetes.md's one command (`kubectl delete ... -l <this>`) reaches everything the
    runtime made, and nothing of another release."""
    rt = KubernetesRuntime(kube_api.client(), OPTS, tenant_quotas=lambda: QUOTAS)
    rt.start(spec(MASTER, 0))
    rt.start(spec(WORKER, 1, sig="b"))
    KubernetesRuntime(kube_api.client(), KubeOptions(namespace=NS, stack="r2-spaas", instance="r2")).start(
        spec(MASTER, 0))
    docs = (Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md").read_text()
    assert UNINSTALL_SELECTOR.replace("r1", "RELEASE") in docs
    for plural in ("pods", "secrets", "services", "networkpolicies", "resourcequotas"):
        everything = objects(kube_api, plural)
        group = "apis/networking.k8s.io/v1" if plural == "networkpolicies" else "api/v1"
        selected = requests.get(f"{kube_api.url}/{group}/namespaces/{NS}/{plural}",
                                params={"labelSelector": UNINSTALL_SELECTOR}, timeout=10).json()["items"]
        assert {o["metadata"]["name"] for o in selected} == {n for n in everything if n.startswith("r1-")}, plural
        assert selected, plural


def test_the_sigs_storage_directory_exists_before_its_pod(kube_api: ApiServer, tmp_path: Path) -> None:
    opts = KubeOptions(namespace=NS, stack="r1-spaas", instance="r1", state_claim="r1-spaas-state",
                       state_dir=str(tmp_path))
    KubernetesRuntime(kube_api.client(), opts).start(spec(MASTER, 0))
    assert (tmp_path / "storage" / "acme" / "etl").is_dir()
    mount = objects(kube_api, "pods")["r1-spaas-acme-etl-master-0"]["spec"]["containers"][0]["volumeMounts"][1]
    assert mount == {"name": "storage", "mountPath": f"{tmp_path}/storage/acme/etl", "subPath": "storage/acme/etl"}
