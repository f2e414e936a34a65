"""Kubernetes objects of a SIG, rendered by pure functions (no client, no I/O).

    Pod            <stack>-<tenant>-<sig>-<role>-<i>   one per container; stable name by member index,
                                                      hostname <tenant>-<sig>-<role>-<i> in subdomain:
    Service        <stack>-<tenant>-<sig>             headless, so every pod has a DNS name
    NetworkPolicy  <stack>-<tenant>-<sig>             the SIG's pods reach each other (in and out);
                                                      the chart's baseline policy adds the proxy (in)
                                                      and DNS/etcd/Redis/registry (out)
    Secret         <pod name>                         the pod's credentials (etcd user, Redis URL),
                                                      so they are not readable in the pod spec
    ResourceQuota  <stack>-sigs                       the sum of every tenant's quota, counting only
                                                      SIG pods (see make_resource_quota)
    Job            <stack>-build-<key>                a Kaniko build of a SIG image (for the builder)

Labels tie everything to its release, tenant, SIG, role, member index, generation and config hash:
`list()` on the runtime reads containers back from them, as the Docker runtime reads its labels.
All names are DNS labels (<= 63 characters): a long one is cut and given a hash suffix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from spaas.runtimes.base import MASTER, ContainerSpec

GROUP = "spaas.io/"
COMPONENT = "sig"
# The Spark/SIG image layout (deploy/images/spark): where the SIG's manifest.json lives.
ARTIFACT_DIR = "/opt/sig"
# The pod's private work directory (Spark work dirs, conf, logs): an emptyDir.
CONTAINER_DIR = "/var/lib/spaas-container"
# SIG pods carry this activeDeadlineSeconds (about 30 years), which puts them, and only them, in
# the ResourceQuota scope "Terminating": the platform's own pods are not counted against tenants.
SIG_POD_DEADLINE_S = 30 * 365 * 86400
# Environment variables that hold credentials: they go into the pod's Secret, not its spec.
SECRET_ENV = ("SPAAS_ETCD_PASSWORD", "SPAAS_REDIS_URL", "SPAAS_REGISTRY_PASSWORD",
              # a user's Jupyter server token (role "notebook", spaas/notebooks.py)
              "SPAAS_NOTEBOOK_TOKEN")
ARCHES = ("amd64", "ppc64le")
# arch preference (the seed's 0-3) -> preferred scheduling weight; 0 excludes, 2 is no preference.
ARCH_WEIGHT = {1: 1, 3: 100}


@dataclass(frozen=True)
class KubeOptions:
    """Where and how SIG objects are created: the release's facts, from the scaler's settings."""

    namespace: str
    # Prefix of every object name (the chart's fullname).
    stack: str = "spaas"
    # app.kubernetes.io/instance of the release (the chart's NetworkPolicies select on it).
    instance: str = "spaas"
    # PVC holding the platform's state; a SIG pod mounts only storage/<tenant>/<sig> of it.
    state_claim: str = ""
    state_dir: str = "/var/lib/spaas"
    service_account: str = ""
    # dockerconfigjson Secret for pulling SIG images.
    pull_secret: str = ""
    # Requests of the master pod (the seed's master.cpu/master.memory); "" = the SIG's resources.
    master_cpu: str = ""
    master_memory: str = ""
    # The seed's arch.* preferences, 0-3.
    arch: Mapping[str, int] = field(default_factory=lambda: {"amd64": 2, "ppc64le": 2})
    dli_frameworks_claim: str = ""
    dli_sharedfs_claim: str = ""
    stop_grace_s: int = 30
    # Environment every SIG pod gets (etcd and Redis URLs, log level).
    env: Mapping[str, str] = field(default_factory=dict)


def dns_label(*parts: str, limit: int = 63) -> str:
    """`parts` joined by '-', cut to `limit` with a hash of the whole when longer. Pure."""
    name = "-".join(p for p in parts if p)
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[:limit - 11].rstrip('-')}-{digest}"


def pod_name(opts: KubeOptions, container: str) -> str:
    return dns_label(opts.stack, container)


def sig_name(opts: KubeOptions, tenant: str, sig: str) -> str:
    return dns_label(opts.stack, tenant, sig)


def sig_selector(opts: KubeOptions, tenant: str, sig: str) -> dict[str, str]:
    return {"app.kubernetes.io/instance": opts.instance, "app.kubernetes.io/component": COMPONENT,
            GROUP + "tenant": tenant, GROUP + "sig": sig}


def platform_selector(opts: KubeOptions) -> str:
    """The label selector of every SIG object of this release (for list and delete)."""
    return (f"app.kubernetes.io/instance={opts.instance},app.kubernetes.io/component={COMPONENT},"
            f"app.kubernetes.io/managed-by=spaas-scaler")


def _base_labels(opts: KubeOptions, tenant: str, sig: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "spaas", **sig_selector(opts, tenant, sig),
            "app.kubernetes.io/managed-by": "spaas-scaler"}


def labels(spec: ContainerSpec, opts: KubeOptions) -> dict[str, str]:
    return {**_base_labels(opts, spec.tenant, spec.sig), GROUP + "role": spec.role, GROUP + "index": str(spec.index),
            GROUP + "generation": str(spec.generation), GROUP + "config-hash": spec.config_hash}


def pod_annotations(spec: ContainerSpec) -> dict[str, str]:
    return {GROUP + "name": spec.name, GROUP + "image": spec.artifact}


# -- quantities ----------------------------------------------------------------------------
_BIN = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DEC = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def cpu_millis(q: str | int | float) -> int:
    """A CPU quantity ("500m", "2", 2.5) in millicores. Pure."""
    text = str(q).strip()
    if text.endswith("m"):
        return int(float(text[:-1]))
    return int(round(float(text) * 1000))


def memory_bytes(q: str | int) -> int:
    text = str(q).strip()
    for suffix, factor in {**_BIN, **_DEC}.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(float(text))


def resources(spec: ContainerSpec, opts: KubeOptions) -> dict[str, dict[str, str]]:
    """requests = the SIG's cpu/memory_mb (the master: master.cpu/memory when set), limits = its
    max_cpu/max_memory_mb (never below the request); GPUs as nvidia.com/gpu (requests = limits,
    as Kubernetes requires for extended resources). Pure."""
    req_cpu, req_mem = f"{spec.cpu * 1000}m", f"{spec.memory_mb}Mi"
    if spec.role == MASTER and opts.master_cpu:
        req_cpu = f"{cpu_millis(opts.master_cpu)}m"
    if spec.role == MASTER and opts.master_memory:
        req_mem = f"{memory_bytes(opts.master_memory) // 2**20}Mi"
    lim_cpu = f"{max(cpu_millis(req_cpu), spec.max_cpu * 1000)}m"
    lim_mem = f"{max(memory_bytes(req_mem) // 2**20, spec.max_memory_mb)}Mi"
    out = {"requests": {"cpu": req_cpu, "memory": req_mem}, "limits": {"cpu": lim_cpu, "memory": lim_mem}}
    if spec.gpu > 0:
        out["requests"]["nvidia.com/gpu"] = out["limits"]["nvidia.com/gpu"] = str(spec.gpu)
    return out


def affinity(arch: Mapping[str, int]) -> dict[str, Any]:
    """The seed's arch.* (0 never, 1 least, 2 no preference, 3 most preferred) as node affinity. Pure."""
    allowed = [a for a in ARCHES if int(arch.get(a, 2)) > 0]
    if not allowed:
        raise ValueError("arch preferences exclude every architecture (both are 0)")
    node: dict[str, Any] = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": allowed}]}]}}
    preferred = [{"weight": ARCH_WEIGHT[int(arch.get(a, 2))],
                  "preference": {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": [a]}]}}
                 for a in ARCHES if int(arch.get(a, 2)) in ARCH_WEIGHT]
    if preferred:
        node["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    return {"nodeAffinity": node}


def split_env(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret): credentials go to the pod's Secret. Pure."""
    plain = {k: v for k, v in env.items() if k not in SECRET_ENV}
    secret = {k: v for k, v in env.items() if k in SECRET_ENV}
    return plain, secret


def container_env(spec: ContainerSpec, opts: KubeOptions) -> dict[str, str]:
    """Everything the agent reads (AgentSettings), as the Docker runtime sets it."""
    env = dict(opts.env)
    env.update(spec.env)
    env.update(
        SPAAS_CONTAINER=spec.name, SPAAS_TENANT=spec.tenant, SPAAS_SIG=spec.sig, SPAAS_ROLE=spec.role,
        SPAAS_INDEX=str(spec.index), SPAAS_CONFIG_HASH=spec.config_hash, SPAAS_GENERATION=str(spec.generation),
        SPAAS_ARTIFACT_DIR=ARTIFACT_DIR, SPAAS_CONTAINER_DIR=CONTAINER_DIR, SPAAS_STATE_DIR=opts.state_dir,
        SPAAS_WORKER_CORES=str(spec.cpu), SPAAS_WORKER_MEMORY_MB=str(spec.memory_mb), PYTHONUNBUFFERED="1",
    )
    return env


def make_pod(spec: ContainerSpec, opts: KubeOptions) -> dict[str, Any]:
    """The pod of one SIG container. Its credentials are in the Secret of the same name
    (make_secret), read through envFrom; its address is the pod IP (downward API). Pure."""
    name = pod_name(opts, spec.name)
    plain, _ = split_env(container_env(spec, opts))
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(plain.items())]
    env.append({"name": "SPAAS_ADVERTISE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    storage = f"storage/{spec.tenant}/{spec.sig}"
    mounts: list[dict[str, Any]] = [{"name": "work", "mountPath": CONTAINER_DIR}]
    volumes: list[dict[str, Any]] = [{"name": "work", "emptyDir": {}}]
    if opts.state_claim:
        mounts.append({"name": "storage", "mountPath": f"{opts.state_dir}/{storage}", "subPath": storage})
        volumes.append({"name": "storage", "persistentVolumeClaim": {"claimName": opts.state_claim}})
    if opts.dli_frameworks_claim:
        mounts.append({"name": "dli-frameworks", "mountPath": "/opt/dli/frameworks", "readOnly": True})
        volumes.append({"name": "dli-frameworks",
                        "persistentVolumeClaim": {"claimName": opts.dli_frameworks_claim, "readOnly": True}})
    if opts.dli_sharedfs_claim:
        mounts.append({"name": "dli-shared", "mountPath": "/opt/dli/shared"})
        volumes.append({"name": "dli-shared", "persistentVolumeClaim": {"claimName": opts.dli_sharedfs_claim}})
    container: dict[str, Any] = {
        "name": "agent", "image": spec.artifact, "imagePullPolicy": "IfNotPresent", "env": env,
        "envFrom": [{"secretRef": {"name": name}}], "resources": resources(spec, opts), "volumeMounts": mounts,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    pod_spec: dict[str, Any] = {
        "hostname": spec.name if len(spec.name) <= 63 else dns_label(spec.name),
        "subdomain": sig_name(opts, spec.tenant, spec.sig),
        # A dead agent is a dead container: the scaler sees it not running and starts it again,
        # as on the other runtimes (no restart behind its back).
        "restartPolicy": "Never",
        "activeDeadlineSeconds": SIG_POD_DEADLINE_S,
        "terminationGracePeriodSeconds": int(opts.stop_grace_s),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "affinity": affinity(opts.arch),
        "containers": [container],
        "volumes": volumes,
    }
    if opts.service_account:
        pod_spec["serviceAccountName"] = opts.service_account
    if opts.pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": opts.pull_secret}]
    if spec.gpu > 0:
        pod_spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": opts.namespace, "labels": labels(spec, opts),
                         "annotations": pod_annotations(spec)},
            "spec": pod_spec}


def make_secret(spec: ContainerSpec, opts: KubeOptions) -> dict[str, Any]:
    """The pod's credentials (same name as the pod). Pure."""
    _, secret = split_env(container_env(spec, opts))
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": pod_name(opts, spec.name), "namespace": opts.namespace, "labels": labels(spec, opts)},
            "stringData": dict(sorted(secret.items()))}


def make_service(opts: KubeOptions, tenant: str, sig: str) -> dict[str, Any]:
    """Headless: DNS names for the SIG's pods, ready or not (Spark ports are chosen at start)."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": sig_name(opts, tenant, sig), "namespace": opts.namespace,
                         "labels": _base_labels(opts, tenant, sig)},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                     "selector": sig_selector(opts, tenant, sig)}}


def make_network_policy(opts: KubeOptions, tenant: str, sig: str) -> dict[str, Any]:
    """The SIG's pods may reach each other, in and out; nothing else here (the chart's baseline
    adds the proxy in, DNS and the platform's datastores out). Pure."""
    own = [{"podSelector": {"matchLabels": sig_selector(opts, tenant, sig)}}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": sig_name(opts, tenant, sig), "namespace": opts.namespace,
                         "labels": _base_labels(opts, tenant, sig)},
            "spec": {"podSelector": {"matchLabels": sig_selector(opts, tenant, sig)},
                     "policyTypes": ["Ingress", "Egress"],
                     "ingress": [{"from": own}], "egress": [{"to": own}]}}


def make_resource_quota(opts: KubeOptions, quotas: Iterable[Mapping[str, int]]) -> dict[str, Any]:
    """Kubernetes' backstop for the tenants' quotas: the sum of them, over SIG pods only.

    All SIGs live in the release namespace, and a ResourceQuota cannot select pods by label, so it
    cannot hold one tenant to its own quota (spaas' scaler does that before it creates a pod). It
    bounds what all tenants together may take, counting only SIG pods (scope Terminating: they
    carry activeDeadlineSeconds, the platform's pods do not). Pure."""
    total = {"max_containers": 0, "cores": 0, "memory_mb": 0, "gpus": 0}
    for q in quotas:
        for key in total:
            total[key] += int(q.get(key, 0))
    hard = {"pods": str(total["max_containers"]), "requests.cpu": str(total["cores"]),
            "requests.memory": f"{total['memory_mb']}Mi", "requests.nvidia.com/gpu": str(total["gpus"])}
    return {"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": dns_label(opts.stack, "sigs"), "namespace": opts.namespace,
                         "labels": {"app.kubernetes.io/name": "spaas", "app.kubernetes.io/instance": opts.instance,
                                    "app.kubernetes.io/component": COMPONENT,
                                    "app.kubernetes.io/managed-by": "spaas-scaler"}},
            "spec": {"hard": hard, "scopes": ["Terminating"]}}


# -- builds ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class BuildJobSpec:
    """One SIG image build: the generated Dockerfile (passed in an env var and written to the
    build context by an init container) is built and pushed as `destination`."""

    build_key: str
    dockerfile: str
    destination: str
    tenant: str = ""
    sig: str = ""
    kaniko_image: str = "gcr.io/kaniko-project/executor:v1.23.2"
    # dockerconfigjson Secret with push credentials for the destination registry ("" = anonymous).
    push_secret: str = ""
    timeout_s: int = 1800
    cpu: str = "1"
    memory: str = "2Gi"
    max_cpu: str = "2"
    max_memory: str = "4Gi"
    # Build arguments (the operator's pip arguments, `dockerimage.build_args`): Kaniko `--build-arg`s,
    # so the Dockerfile (logged for tenants) never holds their values.
    build_args: tuple[tuple[str, str], ...] = ()


def build_job_name(opts: KubeOptions, build_key: str) -> str:
    """Deterministic: the same build key is the same Job, so a second builder attaches (409)."""
    return dns_label(opts.stack, "build", build_key[:16])


def make_build_job(job: BuildJobSpec, opts: KubeOptions) -> dict[str, Any]:
    """A Kaniko build of a SIG image, with no Docker socket and no privileges: an init container
    writes the Dockerfile into an emptyDir, Kaniko builds it and pushes to the registry. Pure."""
    name = build_job_name(opts, job.build_key)
    job_labels = {"app.kubernetes.io/name": "spaas", "app.kubernetes.io/instance": opts.instance,
                  "app.kubernetes.io/component": "build", "app.kubernetes.io/managed-by": "spaas-builder",
                  GROUP + "build-key": job.build_key[:63]}
    if job.tenant:
        job_labels[GROUP + "tenant"] = job.tenant
        job_labels[GROUP + "sig"] = job.sig
    volumes: list[dict[str, Any]] = [{"name": "context", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "context", "mountPath": "/workspace"}]
    if job.push_secret:
        volumes.append({"name": "docker-config", "secret": {
            "secretName": job.push_secret, "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}})
        mounts.append({"name": "docker-config", "mountPath": "/kaniko/.docker", "readOnly": True})
    res = {"requests": {"cpu": job.cpu, "memory": job.memory}, "limits": {"cpu": job.max_cpu, "memory": job.max_memory}}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": opts.namespace, "labels": job_labels,
                         "annotations": {GROUP + "build-key": job.build_key, GROUP + "destination": job.destination}},
            "spec": {"backoffLimit": 0, "activeDeadlineSeconds": int(job.timeout_s), "ttlSecondsAfterFinished": 3600,
                     "template": {
                         "metadata": {"labels": job_labels},
                         "spec": {
                             "restartPolicy": "Never", "automountServiceAccountToken": False,
                             "enableServiceLinks": False, "affinity": affinity(opts.arch),
                             "initContainers": [{
                                 "name": "dockerfile", "image": job.kaniko_image.rsplit(":", 1)[0] + ":debug",
                                 "command": ["/busybox/sh", "-c", 'printf "%s" "$DOCKERFILE" > /workspace/Dockerfile'],
                                 "env": [{"name": "DOCKERFILE", "value": job.dockerfile}],
                                 "volumeMounts": [{"name": "context", "mountPath": "/workspace"}],
                                 "resources": {"requests": {"cpu": "50m", "memory": "32Mi"},
                                               "limits": {"cpu": "200m", "memory": "64Mi"}}}],
                             "containers": [{
                                 "name": "kaniko", "image": job.kaniko_image,
                                 "args": ["--context=dir:///workspace", "--dockerfile=/workspace/Dockerfile",
                                          f"--destination={job.destination}", "--snapshot-mode=redo",
                                          "--cache=false", f"--label=spaas.build_key={job.build_key}",
                                          *(f"--build-arg={k}={v}" for k, v in job.build_args)],
                                 "volumeMounts": mounts, "resources": res}],
                             "volumes": volumes}}}}
