"""The Helm chart: lint, render with several value sets, and every object passes Kubernetes 1.33's
schemas strictly. What is asserted is what an operator relies on: names scoped by release, the
seed's parameters landing where docs/kubernetes.md says, secrets never inline in pod specs."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helm.conftest import CHART, Render
from tests.kubeschema import KUBERNETES_VERSION, assert_valid, problems

VALUE_SETS: dict[str, list[str]] = {
    "defaults": [],
    "gpu": ["sig.gpu=1", "sig.maxGpu=2"],
    "dli": ["dli.enabled=true", "dli.frameworksStorageClassName=fast", "dli.sharedFsStorageClassName=nfs"],
    "ingress": ["cluster.proxyOption=IngressProxy", "proxy.ingress.host=spaas.example.org",
                "proxy.ingress.tlsSecretName=spaas-tls", "proxy.ingress.className=nginx"],
    "storage-class": ["master.sharedStorageClassName=nfs-client", "cluster.etcdSharedStorageClassName=ssd",
                      "redis.storageClassName=ssd"],
    "loadbalancer": ["proxy.service.type=LoadBalancer"],
    "registries": ["sig.registry=registry.example.org:5000", "sig.registryUser=spaas", "sig.registryPasswd=s3cret",
                   "master.registry=registry.example.org:5000", "master.registryUser=pull", "master.registryPasswd=p"],
    "ldap-arch": ["cluster.ldapServerIp=10.0.0.5", "cluster.ldapBaseDn=dc=example\\,dc=org", "arch.amd64=3",
                  "arch.ppc64le=0"],
    "no-autoscaling": ["api.autoscaling.enabled=false", "proxy.autoscaling.enabled=false", "builder.replicas=2"],
}

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "StorageClass", "PersistentVolume",
                  "CustomResourceDefinition", "PriorityClass", "IngressClass", "ValidatingWebhookConfiguration",
                  "MutatingWebhookConfiguration"}


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_lint(helm: str) -> None:
    proc = subprocess.run([helm, "lint", str(CHART), "--strict"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_value_sets(helm: str, name: str) -> None:
    argv = [helm, "lint", str(CHART)]
    for item in VALUE_SETS[name]:
        argv += ["--set", item]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_object_is_valid_kubernetes_1_33(render: Render, name: str) -> None:
    objects = render("spaas1", "tenants", *VALUE_SETS[name])
    assert len(objects) > 30
    assert_valid(objects)


def test_the_validator_is_strict() -> None:
    """A control: a misspelt field is an error, so a green run above means something."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
           "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolcy": "Always"}]}}
    assert problems([pod])
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def test_default_install_has_every_component(render: Render) -> None:
    objects = render("acme", "spaas")
    deployments = by_kind(objects, "Deployment")
    assert set(deployments) == {f"acme-spaas-{c}" for c in ("api", "builder", "scaler", "proxy", "registry",
                                                            "integrations")}
    for d in deployments.values():
        pod = d["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["readinessProbe"] and container["livenessProbe"]
        probe = yaml.safe_dump(container["readinessProbe"])
        assert "healthz" in probe
        # Only the builder and the scaler get a Kubernetes API token.
        component = d["metadata"]["labels"]["app.kubernetes.io/component"]
        assert pod["automountServiceAccountToken"] is (component in ("builder", "scaler"))
        assert pod["serviceAccountName"] == f"acme-spaas-{component}"
    assert set(by_kind(objects, "PodDisruptionBudget")) >= set(deployments)
    assert set(by_kind(objects, "HorizontalPodAutoscaler")) == {"acme-spaas-api", "acme-spaas-proxy"}
    sts = by_kind(objects, "StatefulSet")
    assert set(sts) == {"acme-spaas-etcd", "acme-spaas-redis"}
    for s in sts.values():
        claim = s["spec"]["volumeClaimTemplates"][0]
        assert claim["spec"]["resources"]["requests"]["storage"]
        # `kubectl delete pvc -l app.kubernetes.io/instance=acme` (docs, Uninstall) reaches them.
        assert claim["metadata"]["labels"]["app.kubernetes.io/instance"] == "acme"
    assert "--appendonly" in sts["acme-spaas-redis"]["spec"]["template"]["spec"]["containers"][0]["command"][2]
    console = by_kind(objects, "Service")["acme-spaas-console"]
    assert console["spec"]["type"] == "NodePort" and console["spec"]["ports"][0]["nodePort"] == 30443
    assert not by_kind(objects, "Ingress")
    tests = [o for o in objects if o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    assert len(tests) == 1 and any("healthz" in a for a in tests[0]["spec"]["containers"][0]["args"])


def test_only_the_scaler_may_create_pods_and_services(render: Render) -> None:
    objects = render("acme", "spaas")
    roles = by_kind(objects, "Role")
    creators = {name for name, role in roles.items() for rule in role["rules"]
                if {"pods", "services"} & set(rule["resources"]) and "create" in rule["verbs"]}
    assert creators == {"acme-spaas-scaler"}
    bindings = by_kind(objects, "RoleBinding")
    assert {b["subjects"][0]["name"] for b in bindings.values()} == {"acme-spaas-scaler", "acme-spaas-builder"}
    assert all(b["subjects"][0]["namespace"] == "spaas" for b in bindings.values())


def test_seed_parameters_reach_the_services(render: Render) -> None:
    objects = render("acme", "spaas", *VALUE_SETS["ldap-arch"], *VALUE_SETS["registries"], *VALUE_SETS["dli"],
                     "master.cpu=3", "master.memory=5Gi", "master.imageName=spaas/services:9",
                     "master.imagePullPolicy=Always")
    d = by_kind(objects, "Deployment")
    api = env_of(d["acme-spaas-api"])
    assert api["SPAAS_LDAP_URL"] == "ldap://10.0.0.5:389" and api["SPAAS_LDAP_BASE_DN"] == "dc=example,dc=org"
    assert api["SPAAS_HISTORY_DEFAULT"] == "true"  # every SIG runs a history server unless its spec says no
    off = by_kind(render("acme", "spaas", "api.historyDefault=false"), "Deployment")
    assert env_of(off["acme-spaas-api"])["SPAAS_HISTORY_DEFAULT"] == "false"
    scaler = env_of(d["acme-spaas-scaler"])
    assert scaler["SPAAS_RUNTIME"] == "kubernetes"
    assert (scaler["SPAAS_K8S_MASTER_CPU"], scaler["SPAAS_K8S_MASTER_MEMORY"]) == ("3", "5Gi")
    assert (scaler["SPAAS_K8S_ARCH_AMD64"], scaler["SPAAS_K8S_ARCH_PPC64LE"]) == ("3", "0")
    assert scaler["SPAAS_K8S_PULL_SECRET"] == "acme-spaas-sig-registry"
    assert scaler["SPAAS_K8S_DLI_FRAMEWORKS_CLAIM"] == "acme-spaas-dli-frameworks"
    builder = env_of(d["acme-spaas-builder"])
    assert builder["SPAAS_REGISTRY"] == "registry.example.org:5000" and builder["SPAAS_REGISTRY_USER"] == "spaas"
    assert builder["SPAAS_SPARK_IMAGE"] == "registry.example.org:5000/spaas-spark:{version}"
    assert builder["SPAAS_RUNTIME"] == "kubernetes" and builder["SPAAS_K8S_PUSH_SECRET"] == "acme-spaas-sig-registry"
    assert builder["SPAAS_K8S_STACK"] == "acme-spaas" and builder["SPAAS_K8S_INSTANCE"] == "acme"
    pod = d["acme-spaas-api"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example.org:5000/spaas/services:9"
    assert pod["containers"][0]["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "acme-spaas-master-registry"}]
    affinity = pod["affinity"]["nodeAffinity"]
    required = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"]
    assert required == [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]
    assert affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 100
    claims = by_kind(objects, "PersistentVolumeClaim")
    assert claims["acme-spaas-dli-frameworks"]["spec"]["storageClassName"] == "fast"
    assert claims["acme-spaas-dli-sharedfs"]["spec"]["storageClassName"] == "nfs"


def test_secrets_are_referenced_never_inline(render: Render) -> None:
    objects = render("acme", "spaas", "secrets.adminToken=tok-123", "secrets.etcdRootPassword=etcd-456",
                     "secrets.redisPassword=redis789", *VALUE_SETS["registries"])
    text = yaml.safe_dump([o for o in objects if o["kind"] != "Secret"])
    for secret in ("tok-123", "etcd-456", "redis789", "s3cret"):
        assert secret not in text
    api = env_of(by_kind(objects, "Deployment")["acme-spaas-api"])
    assert api["SPAAS_ADMIN_TOKEN"] == {"secretKeyRef": {"name": "acme-spaas-secrets", "key": "admin-token"}}
    assert api["SPAAS_REDIS_URL"] == "redis://:$(SPAAS_REDIS_PASSWORD)@acme-spaas-redis:6379/0"
    generated = render("acme", "spaas")
    data = by_kind(generated, "Secret")["acme-spaas-secrets"]["data"]
    assert set(data) == {"admin-token", "etcd-root-password", "redis-password"} and all(data.values())
    existing = render("acme", "spaas", "secrets.existingSecret=mine")
    assert "acme-spaas-secrets" not in by_kind(existing, "Secret")
    api_env = env_of(by_kind(existing, "Deployment")["acme-spaas-api"])
    assert api_env["SPAAS_ETCD_PASSWORD"]["secretKeyRef"]["name"] == "mine"


def test_ingress_proxy(render: Render) -> None:
    objects = render("acme", "spaas", *VALUE_SETS["ingress"])
    ingress = by_kind(objects, "Ingress")["acme-spaas-console"]
    assert ingress["spec"]["rules"][0]["host"] == "spaas.example.org"
    assert ingress["spec"]["tls"][0]["secretName"] == "spaas-tls"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "acme-spaas-console"


def test_existing_storage_classes(render: Render) -> None:
    objects = render("acme", "spaas", *VALUE_SETS["storage-class"])
    assert by_kind(objects, "PersistentVolumeClaim")["acme-spaas-state"]["spec"]["storageClassName"] == "nfs-client"
    sts = by_kind(objects, "StatefulSet")
    assert sts["acme-spaas-etcd"]["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "ssd"
    default = render("acme", "spaas")
    assert "storageClassName" not in by_kind(default, "PersistentVolumeClaim")["acme-spaas-state"]["spec"]


def test_sig_pods_are_fenced_by_network_policies(render: Render) -> None:
    policies = by_kind(render("acme", "spaas"), "NetworkPolicy")
    sig = policies["acme-spaas-sig-baseline"]
    assert sig["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/instance": "acme",
                                                         "app.kubernetes.io/component": "sig"}
    assert set(sig["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    # In: only the proxy. Out: DNS and the platform's etcd, Redis and host registry of this release.
    assert [p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in sig["spec"]["ingress"][0]["from"]] \
        == ["proxy"]
    egress_to = [p["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
                 for p in sig["spec"]["egress"][1]["to"]]
    assert egress_to == ["etcd", "redis", "registry"]
    assert all(p["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "acme"
               for p in sig["spec"]["egress"][1]["to"])
    api_from = [p["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                for p in policies["acme-spaas-api"]["spec"]["ingress"][0]["from"]]
    assert "sig" not in api_from


def test_two_releases_do_not_collide(render: Render, tmp_path: Path) -> None:
    """Two releases in one namespace, and a third in another: no shared names, nothing cluster-wide."""
    a = render("blue", "shared")
    b = render("green", "shared")
    c = render("blue", "other")
    for objects in (a, b, c):
        assert not [o["kind"] for o in objects if o["kind"] in CLUSTER_SCOPED]
        assert_valid(objects)
    names_a = {(o["kind"], o["metadata"]["name"]) for o in a}
    names_b = {(o["kind"], o["metadata"]["name"]) for o in b}
    assert not names_a & names_b
    # Selectors of one release never match the other's pods.
    for d in by_kind(a, "Deployment").values():
        assert d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == "blue"


def test_release_name_containing_master_name_is_not_repeated(render: Render) -> None:
    names = set(by_kind(render("spaas", "spaas"), "Deployment"))
    assert "spaas-api" in names


def test_schema_refuses_bad_values(helm: str, tmp_path: Path) -> None:
    for bad in ("arch.amd64=4", "cluster.proxyOption=NodePort", "cluster.basePort=80",
                "master.imagePullPolicy=Sometimes",
                "secrets.redisPassword=a@b", "nosuchkey=1"):
        proc = subprocess.run([helm, "template", "x", str(CHART), "--set", bad], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode != 0, f"{bad} was accepted"
    proc = subprocess.run([helm, "template", "x", str(CHART), "--set", "arch.amd64=0", "--set", "arch.ppc64le=0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "both 0" in proc.stderr


def test_every_value_is_documented() -> None:
    """Each leaf of values.yaml has a comment above it or above its group, and is in the schema."""
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node: dict[str, Any], sch: dict[str, Any], path: str) -> None:
        for key, value in node.items():
            assert key in sch.get("properties", {}), f"{path}{key} is not in values.schema.json"
            if isinstance(value, dict) and sch["properties"][key].get("properties"):
                walk(value, sch["properties"][key], f"{path}{key}.")

    walk(copy.deepcopy(values), schema, "")
