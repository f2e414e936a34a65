"""Kubernetes runtime: each SIG container is a pod in the release namespace.

The objects come from the pure functions in `kube_manifests`; this adapter only applies, reads
and deletes them with the official client. Like `docker ps`, `list()` reads the truth from the
API server (pods by label), so a restarted scaler adopts what runs, and a pod that failed (or was
evicted) is seen as not running and replaced by the scaler's next pass.

    start(spec)        SIG Service + NetworkPolicy (put-if-absent), the pod's Secret, the pod;
                       a finished/failed pod of that name is deleted first
    stop(name)         delete the pod (the kubelet sends SIGTERM, a worker decommissions within
                       terminationGracePeriodSeconds), wait until it is gone, delete its Secret
    cleanup_sig(t, s)  every pod, Secret, the Service and NetworkPolicy of the SIG

This module is the only one that imports `kubernetes`; API errors become `TemporaryError`, and
every call carries a timeout.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from spaas.errors import PermanentError, TemporaryError
from spaas.keys import Keys
from spaas.records import read_tenants
from spaas.runtimes import kube_manifests as km
from spaas.runtimes.base import Address, Container, ContainerSpec
from spaas.safefs import UnsafeFile
from spaas.settings import ScalerSettings
from spaas.storage import SigStorage
from spaas.store import Store

log = logging.getLogger(__name__)

STARTED_AT = km.GROUP + "started-at"
TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)


def connect(api_url: str = "", *, token: str = "") -> kubernetes.client.ApiClient:
    """The one place a Kubernetes client is made: in-cluster (the pod's ServiceAccount) unless
    `api_url` names an API server."""
    if api_url:
        config = kubernetes.client.Configuration()
        config.host = api_url.rstrip("/")
        if token:
            config.api_key = {"authorization": "Bearer " + token}
        return kubernetes.client.ApiClient(config)
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException as exc:
        raise PermanentError(f"not in a Kubernetes pod and no SPAAS_K8S_API_URL: {exc}") from exc
    return kubernetes.client.ApiClient()


def translate(what: str, exc: Exception) -> Exception:
    if isinstance(exc, ApiException):
        if exc.status in (401, 403):
            return PermanentError(f"{what}: the Kubernetes API refused ({exc.status} {exc.reason}): check the "
                                  f"scaler's Role")
        return TemporaryError(f"{what}: {exc.status} {exc.reason}")
    return TemporaryError(f"{what}: {exc}")


def from_pod(pod: Mapping[str, Any]) -> Container | None:
    """A `Container` from a pod (as a dict), or None if it is not a SIG container."""
    meta = pod.get("metadata") or {}
    lab = meta.get("labels") or {}
    ann = meta.get("annotations") or {}
    if lab.get("app.kubernetes.io/component") != km.COMPONENT or not ann.get(km.GROUP + "name"):
        return None
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    # Pending counts as running: it was started and is on its way (pulling, scheduling); a
    # terminating pod does not.
    running = phase in ("Pending", "Running") and not meta.get("deletionTimestamp")
    return Container(
        name=ann[km.GROUP + "name"], tenant=lab.get(km.GROUP + "tenant", ""), sig=lab.get(km.GROUP + "sig", ""),
        role=lab.get(km.GROUP + "role", ""), index=int(lab.get(km.GROUP + "index", "0") or 0),
        config_hash=lab.get(km.GROUP + "config-hash", ""), generation=int(lab.get(km.GROUP + "generation", "0") or 0),
        running=running, started_at=float(ann.get(STARTED_AT, "0") or 0.0))


class KubernetesRuntime:
    def __init__(self, client: kubernetes.client.ApiClient, opts: km.KubeOptions, *, timeout_s: float = 10.0,
                 tenant_quotas: Callable[[], Iterable[Mapping[str, int]]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """`tenant_quotas`: every tenant's quota (from etcd); their sum becomes the release's
        ResourceQuota over SIG pods. None: no ResourceQuota."""
        self._core = kubernetes.client.CoreV1Api(client)
        self._net = kubernetes.client.NetworkingV1Api(client)
        self._client = client
        self._opts = opts
        self._timeout = timeout_s
        self._quotas = tenant_quotas
        self._clock = clock
        self._quota_applied: dict[str, Any] | None = None

    @property
    def namespace(self) -> str:
        return self._opts.namespace

    # -- reading ---------------------------------------------------------------------------
    def _pods(self, selector: str) -> list[dict[str, Any]]:
        try:
            resp = self._core.list_namespaced_pod(self.namespace, label_selector=selector,
                                                  _request_timeout=self._timeout, _preload_content=False)
            items = self._json(resp).get("items") or []
        except (ApiException, *TRANSPORT_ERRORS) as exc:
            raise translate("list pods", exc) from exc
        return list(items)

    @staticmethod
    def _json(resp: Any) -> dict[str, Any]:
        return dict(json.loads(resp.data or b"{}"))

    def _read_pod(self, name: str) -> dict[str, Any] | None:
        try:
            resp = self._core.read_namespaced_pod(name, self.namespace, _request_timeout=self._timeout,
                                                  _preload_content=False)
            return self._json(resp)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise translate(f"read pod {name}", exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise translate(f"read pod {name}", exc) from exc

    def list(self) -> list[Container]:
        out = [c for c in (from_pod(p) for p in self._pods(km.platform_selector(self._opts))) if c is not None]
        return sorted(out, key=lambda c: c.name)

    def addresses(self) -> dict[str, Address]:
        """Each running pod's IP from its status, as the API server reports it (any port on it
        is the pod's: it has a network namespace of its own)."""
        out: dict[str, Address] = {}
        for pod in self._pods(km.platform_selector(self._opts)):
            c = from_pod(pod)
            status = pod.get("status") or {}
            if c is not None and status.get("phase") == "Running" and status.get("podIP"):
                out[c.name] = Address(str(status["podIP"]))
        return out

    # -- writing ---------------------------------------------------------------------------
    def _create(self, what: str, fn: Callable[..., Any], body: dict[str, Any]) -> bool:
        """Create; False if it already exists (409: someone, maybe we, made it first)."""
        try:
            fn(self.namespace, body, _request_timeout=self._timeout)
            return True
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise translate(f"create {what}", exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise translate(f"create {what}", exc) from exc

    def _delete(self, what: str, fn: Callable[..., Any], name: str, **kw: Any) -> None:
        """Delete; already gone (404) is fine."""
        try:
            fn(name, self.namespace, _request_timeout=self._timeout, **kw)
        except ApiException as exc:
            if exc.status != 404:
                raise translate(f"delete {what} {name}", exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise translate(f"delete {what} {name}", exc) from exc

    def ensure_sig_objects(self, tenant: str, sig: str) -> None:
        self._create(f"service of {tenant}/{sig}", self._core.create_namespaced_service,
                     km.make_service(self._opts, tenant, sig))
        self._create(f"network policy of {tenant}/{sig}", self._net.create_namespaced_network_policy,
                     km.make_network_policy(self._opts, tenant, sig))

    def ensure_quota(self) -> None:
        if self._quotas is None:
            return
        body = km.make_resource_quota(self._opts, self._quotas())
        if body == self._quota_applied:
            return
        name = body["metadata"]["name"]
        if not self._create("resource quota", self._core.create_namespaced_resource_quota, body):
            try:
                self._core.patch_namespaced_resource_quota(name, self.namespace, {"spec": body["spec"]},
                                                           _request_timeout=self._timeout)
            except (ApiException, *TRANSPORT_ERRORS) as exc:
                raise translate("update resource quota", exc) from exc
        self._quota_applied = body

    def start(self, spec: ContainerSpec) -> None:
        pod = km.make_pod(spec, self._opts)
        name = pod["metadata"]["name"]
        existing = self._read_pod(name)
        if existing is not None:
            current = from_pod(existing)
            if current is not None and current.running:
                return
            if not (existing.get("metadata") or {}).get("deletionTimestamp"):
                self._delete("pod", self._core.delete_namespaced_pod, name, grace_period_seconds=0)
            if not self._wait_gone(name, 30):
                raise TemporaryError(f"failed to start {spec.tenant}/{spec.sig}/{spec.name}: "
                                     f"its previous pod {name} is still terminating")
        self.ensure_sig_objects(spec.tenant, spec.sig)
        self.ensure_quota()
        if self._opts.state_claim:
            # The scaler mounts the same volume: make the SIG's directory (owned by the platform's
            # user) before the pod mounts it as a subPath, which the kubelet would create as root.
            try:
                # Following no link: a subPath that is a link would be followed by the kubelet.
                SigStorage(Path(self._opts.state_dir) / "storage").ensure_sig_dir(spec.tenant, spec.sig)
            except (OSError, UnsafeFile) as exc:
                raise TemporaryError(f"failed to start {spec.tenant}/{spec.sig}/{spec.name}: storage: {exc}") from exc
        secret = km.make_secret(spec, self._opts)
        if not self._create(f"secret {name}", self._core.create_namespaced_secret, secret):
            try:
                self._core.patch_namespaced_secret(name, self.namespace, {"stringData": secret["stringData"]},
                                                   _request_timeout=self._timeout)
            except (ApiException, *TRANSPORT_ERRORS) as exc:
                raise translate(f"update secret {name}", exc) from exc
        pod["metadata"]["annotations"][STARTED_AT] = f"{self._clock():.3f}"
        try:
            self._core.create_namespaced_pod(self.namespace, pod, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status == 409:
                return  # another scaler replica created it first
            if exc.status == 403 and "quota" in (exc.body or "").lower():
                raise TemporaryError(f"failed to start {spec.tenant}/{spec.sig}/{spec.name}: the namespace's "
                                     f"ResourceQuota refused it: {exc.body}") from exc
            raise translate(f"failed to start {spec.tenant}/{spec.sig}/{spec.name}", exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise translate(f"failed to start {spec.tenant}/{spec.sig}/{spec.name}", exc) from exc
        log.info("created pod %s (image %s, config %s)", name, spec.artifact, spec.config_hash)

    def _wait_gone(self, name: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._read_pod(name) is None:
                return True
            time.sleep(0.2)
        return self._read_pod(name) is None

    def stop(self, name: str, *, grace_s: float | None = None) -> None:
        """Delete the pod with `grace_s` for SIGTERM (a worker decommissions), wait until it is gone."""
        pod_name = km.pod_name(self._opts, name)
        grace = self._opts.stop_grace_s if grace_s is None else grace_s
        self._delete("pod", self._core.delete_namespaced_pod, pod_name, grace_period_seconds=int(grace))
        if not self._wait_gone(pod_name, grace + 15):
            log.warning("pod %s is still terminating after %.0fs", pod_name, grace + 15)
        self._delete("secret", self._core.delete_namespaced_secret, pod_name)
        log.info("stopped pod %s", pod_name)

    def cleanup_sig(self, tenant: str, sig: str) -> None:
        """Every object of a deleted SIG: its pods (and their Secrets), Service and NetworkPolicy."""
        selector = ",".join(f"{k}={v}" for k, v in km.sig_selector(self._opts, tenant, sig).items())
        for pod in self._pods(selector):
            c = from_pod(pod)
            if c is not None and (c.tenant, c.sig) == (tenant, sig):
                self.stop(c.name, grace_s=0)
        try:
            secrets = self._core.list_namespaced_secret(self.namespace, label_selector=selector,
                                                        _request_timeout=self._timeout)
        except (ApiException, *TRANSPORT_ERRORS) as exc:
            raise translate(f"list secrets of {tenant}/{sig}", exc) from exc
        for s in secrets.items or []:
            labels = s.metadata.labels or {}
            if all(labels.get(k) == v for k, v in km.sig_selector(self._opts, tenant, sig).items()):
                self._delete("secret", self._core.delete_namespaced_secret, s.metadata.name)
        name = km.sig_name(self._opts, tenant, sig)
        self._delete("service", self._core.delete_namespaced_service, name)
        self._delete("network policy", self._net.delete_namespaced_network_policy, name)
        log.info("removed the objects of deleted SIG %s/%s", tenant, sig)

    def stop_all(self, *, grace_s: float = 10.0) -> None:
        for c in self.list():
            self.stop(c.name, grace_s=grace_s)


def kubernetes_runtime(settings: ScalerSettings, store: Store, keys: Keys, env: dict[str, str]) -> KubernetesRuntime:
    """The runtime as the scaler's settings describe it (SPAAS_RUNTIME=kubernetes, SPAAS_K8S_*)."""
    opts = km.KubeOptions(
        namespace=settings.k8s_namespace, stack=settings.k8s_stack, instance=settings.k8s_instance,
        state_claim=settings.k8s_state_claim, state_dir=str(settings.state_dir),
        service_account=settings.k8s_service_account, pull_secret=settings.k8s_pull_secret,
        master_cpu=settings.k8s_master_cpu, master_memory=settings.k8s_master_memory,
        arch={"amd64": settings.k8s_arch_amd64, "ppc64le": settings.k8s_arch_ppc64le},
        dli_frameworks_claim=settings.k8s_dli_frameworks_claim, dli_sharedfs_claim=settings.k8s_dli_sharedfs_claim,
        stop_grace_s=int(settings.stop_grace_s), env=env)
    km.affinity(opts.arch)  # refuse "no architecture at all" at start, not at the first pod

    def quotas() -> list[dict[str, int]]:
        return [t.quota.model_dump() for t in read_tenants(store, keys)]  # unreadable tenants: skipped, reported

    return KubernetesRuntime(connect(settings.k8s_api_url), opts, timeout_s=max(10.0, settings.call_timeout_s),
                             tenant_quotas=quotas if settings.k8s_resource_quota else None)
