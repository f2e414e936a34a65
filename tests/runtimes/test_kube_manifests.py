"""Pure rendering of a SIG's Kubernetes objects, from tables of specs; every object passes
Kubernetes 1.33's schemas strictly."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from spaas import notebooks as nb
from spaas.model import HISTORY_CPU, HISTORY_MEMORY_MB
from spaas.runtimes.base import HISTORY, MASTER, WORKER, ContainerSpec, container_name
from spaas.runtimes.kube_manifests import (
    BuildJobSpec, KubeOptions, affinity, build_job_name, cpu_millis, dns_label, make_build_job,
    make_network_policy, make_pod, make_resource_quota, make_secret, make_service, memory_bytes, resources,
)
from tests.kubeschema import assert_valid

OPTS = KubeOptions(namespace="spaas1", stack="spaas1-spaas", instance="spaas1", state_claim="spaas1-spaas-state",
                   service_account="spaas1-spaas-sig", pull_secret="spaas1-spaas-sig-registry",
                   env={"SPAAS_ETCD_URL": "http://spaas1-spaas-etcd:2379",
                        "SPAAS_REDIS_URL": "redis://:pw@spaas1-spaas-redis:6379/0", "SPAAS_LOG_LEVEL": "INFO"})


def spec(role: str = WORKER, index: int = 1, **kw: Any) -> ContainerSpec:
    base = dict(name=container_name("acme", "etl", role, index), tenant="acme", sig="etl", role=role, index=index,
                config_hash="ab12cd34ef56", generation=3, artifact="registry.example.org:5000/spaas-sig:k1",
                env={"SPAAS_ETCD_USER": "spaas.sig.acme.etl", "SPAAS_ETCD_PASSWORD": "derived"})
    base.update(kw)
    return ContainerSpec(**base)  # type: ignore[arg-type]


# (case, spec, options, expected resources)
RESOURCES = [
    ("defaults", spec(), OPTS,
     {"requests": {"cpu": "2000m", "memory": "2048Mi"}, "limits": {"cpu": "4000m", "memory": "6144Mi"}}),
    ("gpu", spec(gpu=2), OPTS,
     {"requests": {"cpu": "2000m", "memory": "2048Mi", "nvidia.com/gpu": "2"},
      "limits": {"cpu": "4000m", "memory": "6144Mi", "nvidia.com/gpu": "2"}}),
    ("master uses master.cpu/memory", spec(MASTER, 0),
     dataclasses.replace(OPTS, master_cpu="3000m", master_memory="4Gi"),
     {"requests": {"cpu": "3000m", "memory": "4096Mi"}, "limits": {"cpu": "4000m", "memory": "6144Mi"}}),
    ("limit never below the master's request", spec(MASTER, 0),
     dataclasses.replace(OPTS, master_cpu="8", master_memory="8192Mi"),
     {"requests": {"cpu": "8000m", "memory": "8192Mi"}, "limits": {"cpu": "8000m", "memory": "8192Mi"}}),
    ("workers ignore master.cpu", spec(WORKER, 4, cpu=1, memory_mb=1024, max_cpu=1, max_memory_mb=1024),
     dataclasses.replace(OPTS, master_cpu="8"),
     {"requests": {"cpu": "1000m", "memory": "1024Mi"}, "limits": {"cpu": "1000m", "memory": "1024Mi"}}),
]


@pytest.mark.parametrize("case,s,opts,expected", RESOURCES, ids=[r[0] for r in RESOURCES])
def test_resources(case: str, s: ContainerSpec, opts: KubeOptions, expected: dict[str, Any]) -> None:
    assert resources(s, opts) == expected
    assert_valid([make_pod(s, opts)])


ARCH = [
    ({"amd64": 2, "ppc64le": 2}, ["amd64", "ppc64le"], []),
    ({"amd64": 3, "ppc64le": 1}, ["amd64", "ppc64le"], [("amd64", 100), ("ppc64le", 1)]),
    ({"amd64": 0, "ppc64le": 3}, ["ppc64le"], [("ppc64le", 100)]),
    ({"amd64": 2, "ppc64le": 0}, ["amd64"], []),
]


@pytest.mark.parametrize("prefs,allowed,preferred", ARCH)
def test_arch_preferences_become_node_affinity(prefs: dict[str, int], allowed: list[str],
                                               preferred: list[tuple[str, int]]) -> None:
    node = affinity(prefs)["nodeAffinity"]
    terms = node["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": allowed}]}]
    got = [(p["preference"]["matchExpressions"][0]["values"][0], p["weight"])
           for p in node.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
    assert got == preferred
    assert_valid([make_pod(spec(), dataclasses.replace(OPTS, arch=prefs))])


def test_no_architecture_at_all_is_refused() -> None:
    with pytest.raises(ValueError, match="both are 0"):
        affinity({"amd64": 0, "ppc64le": 0})


def test_worker_pod_whole() -> None:
    pod = make_pod(spec(WORKER, 2), OPTS)
    assert pod["metadata"] == {
        "name": "spaas1-spaas-acme-etl-worker-2", "namespace": "spaas1",
        "labels": {"app.kubernetes.io/name": "spaas", "app.kubernetes.io/instance": "spaas1",
                   "app.kubernetes.io/component": "sig", "app.kubernetes.io/managed-by": "spaas-scaler",
                   "spaas.io/tenant": "acme", "spaas.io/sig": "etl", "spaas.io/role": "worker", "spaas.io/index": "2",
                   "spaas.io/generation": "3", "spaas.io/config-hash": "ab12cd34ef56"},
        "annotations": {"spaas.io/name": "acme-etl-worker-2",
                        "spaas.io/image": "registry.example.org:5000/spaas-sig:k1"},
    }
    ps = pod["spec"]
    assert (ps["hostname"], ps["subdomain"]) == ("acme-etl-worker-2", "spaas1-spaas-acme-etl")
    assert ps["restartPolicy"] == "Never" and ps["automountServiceAccountToken"] is False
    assert ps["serviceAccountName"] == "spaas1-spaas-sig"
    assert ps["imagePullSecrets"] == [{"name": "spaas1-spaas-sig-registry"}]
    c = ps["containers"][0]
    assert c["image"] == "registry.example.org:5000/spaas-sig:k1"
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
    assert env["SPAAS_CONTAINER"] == "acme-etl-worker-2" and env["SPAAS_ROLE"] == "worker" and env["SPAAS_INDEX"] == "2"
    assert env["SPAAS_ADVERTISE_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["SPAAS_ETCD_USER"] == "spaas.sig.acme.etl"
    # Credentials are in the pod's Secret, not in its spec.
    assert "SPAAS_ETCD_PASSWORD" not in env and "SPAAS_REDIS_URL" not in env
    assert c["envFrom"] == [{"secretRef": {"name": "spaas1-spaas-acme-etl-worker-2"}}]
    # Only this SIG's storage directory of the platform's volume.
    assert {"name": "storage", "mountPath": "/var/lib/spaas/storage/acme/etl", "subPath": "storage/acme/etl"} \
        in c["volumeMounts"]
    secret = make_secret(spec(WORKER, 2), OPTS)
    assert secret["metadata"]["name"] == pod["metadata"]["name"]
    assert secret["stringData"] == {"SPAAS_ETCD_PASSWORD": "derived",
                                    "SPAAS_REDIS_URL": "redis://:pw@spaas1-spaas-redis:6379/0"}
    assert_valid([pod, secret])


def test_stable_names_by_member_index() -> None:
    names = [make_pod(spec(WORKER, i), OPTS)["metadata"]["name"] for i in (0, 5, 0)]
    assert names == ["spaas1-spaas-acme-etl-worker-0", "spaas1-spaas-acme-etl-worker-5",
                     "spaas1-spaas-acme-etl-worker-0"]
    assert make_pod(spec(MASTER, 0), OPTS)["metadata"]["name"] == "spaas1-spaas-acme-etl-master-0"


def test_dli_volumes_and_gpu_toleration() -> None:
    opts = dataclasses.replace(OPTS, dli_frameworks_claim="fw", dli_sharedfs_claim="shared")
    pod = make_pod(spec(gpu=1), opts)
    mounts = {m["mountPath"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/opt/dli/frameworks"]["readOnly"] is True and "/opt/dli/shared" in mounts
    assert pod["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert_valid([pod])


def test_service_and_network_policy() -> None:
    svc = make_service(OPTS, "acme", "etl")
    assert svc["metadata"]["name"] == "spaas1-spaas-acme-etl" and svc["spec"]["clusterIP"] == "None"
    selector = {"app.kubernetes.io/instance": "spaas1", "app.kubernetes.io/component": "sig",
                "spaas.io/tenant": "acme", "spaas.io/sig": "etl"}
    assert svc["spec"]["selector"] == selector
    np = make_network_policy(OPTS, "acme", "etl")
    assert np["spec"] == {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress", "Egress"],
                          "ingress": [{"from": [{"podSelector": {"matchLabels": selector}}]}],
                          "egress": [{"to": [{"podSelector": {"matchLabels": selector}}]}]}
    # Another SIG of the same tenant is another selector: it is not let in.
    other = make_network_policy(OPTS, "acme", "etl2")["spec"]["podSelector"]["matchLabels"]
    assert other != selector
    assert_valid([svc, np])


def test_long_names_stay_dns_labels() -> None:
    opts = dataclasses.replace(OPTS, stack="a-very-long-release-name-spaas-xxxxxxxxx")
    s = spec(WORKER, 999, tenant="t" * 24, sig="s" * 24, name=container_name("t" * 24, "s" * 24, WORKER, 999))
    objs = [make_pod(s, opts), make_secret(s, opts), make_service(opts, s.tenant, s.sig),
            make_network_policy(opts, s.tenant, s.sig)]
    for o in objs:
        assert len(o["metadata"]["name"]) <= 63
    assert make_pod(s, opts)["spec"]["subdomain"] == make_service(opts, s.tenant, s.sig)["metadata"]["name"]
    assert dns_label("x" * 70) != dns_label("x" * 71)
    assert_valid(objs)


def test_resource_quota_sums_tenants_over_sig_pods_only() -> None:
    quota = make_resource_quota(OPTS, [{"max_containers": 10, "cores": 40, "memory_mb": 61440, "gpus": 0},
                                       {"max_containers": 5, "cores": 8, "memory_mb": 8192, "gpus": 2}])
    assert quota["spec"] == {"hard": {"pods": "15", "requests.cpu": "48", "requests.memory": "69632Mi",
                                      "requests.nvidia.com/gpu": "2"}, "scopes": ["Terminating"]}
    # SIG pods are in the Terminating scope; the chart's platform pods carry no deadline.
    assert make_pod(spec(), OPTS)["spec"]["activeDeadlineSeconds"] > 0
    assert_valid([quota])


def test_build_job() -> None:
    job = make_build_job(BuildJobSpec(build_key="f" * 64, dockerfile="FROM spaas-spark:3.5.9\nRUN pip install toolz\n",
                                      destination="registry.example.org:5000/spaas-sig:" + "f" * 64,
                                      tenant="acme", sig="etl", push_secret="spaas1-spaas-sig-registry"), OPTS)
    assert job["metadata"]["name"] == build_job_name(OPTS, "f" * 64) == "spaas1-spaas-build-ffffffffffffffff"
    pod = job["spec"]["template"]["spec"]
    kaniko = pod["containers"][0]
    assert "--destination=registry.example.org:5000/spaas-sig:" + "f" * 64 in kaniko["args"]
    assert {"name": "docker-config", "mountPath": "/kaniko/.docker", "readOnly": True} in kaniko["volumeMounts"]
    assert "securityContext" not in kaniko  # unprivileged: no privileged flag, no Docker socket
    assert not any("docker.sock" in str(v) for v in pod["volumes"])
    assert pod["initContainers"][0]["env"][0]["value"].startswith("FROM spaas-spark:3.5.9")
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 1800
    assert_valid([job])


@pytest.mark.parametrize("text,millis", [("500m", 500), ("2", 2000), ("2.5", 2500), ("4000m", 4000)])
def test_cpu_quantities(text: str, millis: int) -> None:
    assert cpu_millis(text) == millis


@pytest.mark.parametrize("text,n", [("4096Mi", 4 * 2**30), ("4Gi", 4 * 2**30), ("1G", 10**9), ("1024", 1024)])
def test_memory_quantities(text: str, n: int) -> None:
    assert memory_bytes(text) == n


def test_history_server_pod_is_the_plan_s_fixed_size_and_mounts_only_its_sig_storage() -> None:
    """The scaler's history container (role history, 1 cpu / 1024 MiB, services.scaler.reconcile)
    renders as a pod like any other: same agent, same image, only its SIG's storage (event logs)."""
    history = spec(HISTORY, 0, cpu=HISTORY_CPU, memory_mb=HISTORY_MEMORY_MB, max_cpu=HISTORY_CPU,
                   max_memory_mb=HISTORY_MEMORY_MB)
    pod = make_pod(history, OPTS)
    assert pod["metadata"]["name"] == "spaas1-spaas-acme-etl-history-0"
    assert pod["metadata"]["labels"]["spaas.io/role"] == "history"
    c = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SPAAS_ROLE"] == "history" and env["SPAAS_CONTAINER"] == "acme-etl-history-0"
    assert c["resources"] == {"requests": {"cpu": "1000m", "memory": "1024Mi"},
                              "limits": {"cpu": "1000m", "memory": "1024Mi"}}
    storage = [m for m in c["volumeMounts"] if m["name"] == "storage"]
    assert storage == [{"name": "storage", "mountPath": "/var/lib/spaas/storage/acme/etl", "subPath": "storage/acme/etl"}]
    assert_valid([pod, make_secret(history, OPTS)])


def test_notebook_pod_keeps_its_token_in_the_secret() -> None:
    name = nb.container_name("acme", "etl", "alice")
    s = spec(nb.ROLE, 0, name=name, env={"SPAAS_NOTEBOOK_USER": "alice", "SPAAS_NOTEBOOK_TOKEN": "tok-secret"})
    pod, secret = make_pod(s, OPTS), make_secret(s, OPTS)
    assert_valid([pod, secret])
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["SPAAS_ROLE"] == "notebook" and env["SPAAS_NOTEBOOK_USER"] == "alice"
    assert "tok-secret" not in str(pod) and secret["stringData"]["SPAAS_NOTEBOOK_TOKEN"] == "tok-secret"
    assert pod["metadata"]["labels"]["spaas.io/role"] == "notebook" and pod["spec"]["hostname"] == name
