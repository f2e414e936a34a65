"""Artifact builder for the kubernetes runtime: a SIG image built by a Kaniko Job, no Docker socket.

    Job <stack>-build-<key>   FROM <the Spark image in the registry>, the SIG's pip layer,
                              pushed as <registry>/<repository>:<build key>

The Dockerfile is the Docker builder's (`dockerimage.dockerfile`); the Job is rendered by the pure
`kube_manifests.make_build_job`. The Job's name is the build key, so it is the lock too: a 409 on
create means another builder started the same build, and this one waits for that Job instead.
A failed Job is deleted after its log is read, so the next attempt builds again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from spaas.errors import PermanentError
from spaas.runtimes import kube_manifests as km
from spaas.runtimes.kubernetes import TRANSPORT_ERRORS, translate

from services.builder.dockerimage import build_args, dockerfile
from services.builder.planner import BuildPlan

Log = Callable[[str], None]


class KanikoJobBuilder:
    def __init__(self, client: kubernetes.client.ApiClient, opts: km.KubeOptions, *, registry: str,
                 spark_image: str = "spaas-spark:{version}", repository: str = "spaas-sig", push_secret: str = "",
                 kaniko_image: str = "gcr.io/kaniko-project/executor:v1.23.2", pip_args: tuple[str, ...] = (),
                 timeout_s: float = 1800.0, poll_s: float = 2.0, call_timeout_s: float = 10.0) -> None:
        if not registry:
            raise PermanentError("building SIG images on Kubernetes needs a registry to push them to "
                                 "(SPAAS_REGISTRY, the chart's sig.registry)")
        self._batch = kubernetes.client.BatchV1Api(client)
        self._core = kubernetes.client.CoreV1Api(client)
        self._opts = opts
        self._registry = registry.rstrip("/")
        self._repo = f"{self._registry}/{repository}"
        self._spark_image = spark_image
        self._push_secret = push_secret
        self._kaniko = kaniko_image
        self._pip_args = pip_args
        self._timeout = timeout_s
        self._poll = poll_s
        self._call_timeout = call_timeout_s

    def image_ref(self, plan: BuildPlan) -> str:
        return f"{self._repo}:{plan.key}"

    def spark_image(self, version: str) -> str:
        return self._spark_image.format(version=version)

    def base_for(self, version: str) -> str:
        """The planner's `base`: the Spark image's reference (no engine to ask for its id here)."""
        return "kaniko-" + hashlib.sha256(self.spark_image(version).encode()).hexdigest()[:16]

    def _job(self, name: str) -> Any | None:
        try:
            return self._batch.read_namespaced_job(name, self._opts.namespace, _request_timeout=self._call_timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise translate(f"read build job {name}", exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise translate(f"read build job {name}", exc) from exc

    def existing(self, plan: BuildPlan) -> str | None:
        """The image, if a Job for this key succeeded (finished Jobs live an hour; after that the
        build record in etcd is what says the image exists)."""
        job = self._job(km.build_job_name(self._opts, plan.key))
        if job is None or job.status is None or not (job.status.succeeded or 0) > 0:
            return None
        if (job.metadata.annotations or {}).get(km.GROUP + "build-key") != plan.key:
            return None  # another key with the same name prefix: not our image
        return self.image_ref(plan)

    def _delete(self, name: str) -> None:
        try:
            self._batch.delete_namespaced_job(name, self._opts.namespace, propagation_policy="Background",
                                              _request_timeout=self._call_timeout)
        except ApiException as exc:
            if exc.status != 404:
                raise translate(f"delete build job {name}", exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise translate(f"delete build job {name}", exc) from exc

    def _logs(self, name: str, log: Log) -> list[str]:
        """The Kaniko container's output, streamed to the build log; the last lines returned."""
        tail: list[str] = []
        try:
            pods = self._core.list_namespaced_pod(self._opts.namespace, label_selector=f"job-name={name}",
                                                  _request_timeout=self._call_timeout).items
            for pod in pods:
                resp = self._core.read_namespaced_pod_log(pod.metadata.name, self._opts.namespace, container="kaniko",
                                                          _request_timeout=self._call_timeout, _preload_content=False)
                for line in bytes(resp.data or b"").decode(errors="replace").splitlines():
                    log(line)
                    tail = (tail + [line])[-20:]
        except (ApiException, *TRANSPORT_ERRORS) as exc:
            log(f"(the build's log could not be read: {exc})")
        return tail

    def build(self, plan: BuildPlan, log: Log) -> str:
        ref = self.image_ref(plan)
        text = dockerfile(plan, self.spark_image(plan.spark_version), pip_args=self._pip_args,
                          tenant=plan.tenant, sig=plan.sig)
        for line in text.splitlines():
            log("| " + line)
        body = km.make_build_job(km.BuildJobSpec(
            build_key=plan.key, dockerfile=text, destination=ref, tenant=plan.tenant, sig=plan.sig,
            kaniko_image=self._kaniko, push_secret=self._push_secret, timeout_s=int(self._timeout),
            build_args=tuple(build_args(self._pip_args).items())), self._opts)
        name = body["metadata"]["name"]
        try:
            self._batch.create_namespaced_job(self._opts.namespace, body, _request_timeout=self._call_timeout)
            log(f"build job {name} created (Kaniko, pushing {ref})")
        except ApiException as exc:
            if exc.status != 409:
                raise translate(f"create build job {name}", exc) from exc
            log(f"build job {name} is already running; waiting for it")
        except TRANSPORT_ERRORS as exc:
            raise translate(f"create build job {name}", exc) from exc
        deadline = time.monotonic() + self._timeout + 60
        while time.monotonic() < deadline:
            job = self._job(name)
            status = job.status if job is not None else None
            if status is not None and (status.succeeded or 0) > 0:
                self._logs(name, log)
                log(f"pushed {ref}")
                return ref
            if job is None or (status is not None and (status.failed or 0) > 0):
                tail = self._logs(name, log)
                self._delete(name)
                errors = [t for t in tail if "error" in t.lower()] or tail[-3:] or ["the build job vanished"]
                raise PermanentError(f"building image {ref} failed: " + " | ".join(errors)[-1500:])
            time.sleep(self._poll)
        self._delete(name)
        raise PermanentError(f"image build {name} timed out after {self._timeout:.0f}s")
