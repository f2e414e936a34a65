"""A Kubernetes API for the tests, over real HTTP, and a node that runs pods as processes.

- `ApiServer`: kmock's `KubernetesEmulator` (objects in memory, CRUD, finalizers, 404/409 like the
  real API server) on a loopback port, in a thread of its own. Extended here where the runtime
  needs more than kmock has: list requests honour `labelSelector` (equality terms, as the runtime
  sends).
- `NodeAgent`: the kubelet's part, in a thread. It polls the namespace's pods; for each new one it
  adds a finalizer (so a delete waits for it, as a real delete waits for the kubelet), starts the
  pod's command with the *process* runtime (image = the SIG's built environment, env = the pod's
  env plus its Secret, the pod IP = 127.0.0.1), and reports status: Running + Ready while the
  process lives, Failed when it exits. On a delete it stops the process with the pod's grace
  period (SIGTERM first, so a worker decommissions), then drops the finalizer and the emulator
  removes the pod.

What this proves and does not: see docs/kubernetes.md, "What the kubernetes runtime's tests prove".
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

import attrs
import kmock
import kubernetes.client
from kmock._internal import apps
from kubernetes.client.exceptions import ApiException

from spaas.runtimes.base import ContainerSpec
from spaas.runtimes.kube_manifests import GROUP
from spaas.runtimes.process import ProcessRuntime

log = logging.getLogger("tests.node")

RESOURCES = ("v1/pods", "v1/services", "v1/secrets", "v1/resourcequotas", "networking.k8s.io/v1/networkpolicies",
             "batch/v1/jobs")
FINALIZER = "node.spaas.test/process"


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Label selectors as kubectl and the runtime send them: `a=b`, `a==b`, `a!=b`, `a in (b,c)`,
    `a notin (b,c)`, `a`, `!a`, joined by commas."""
    for term in (t.strip() for t in re.split(r",(?![^()]*\))", selector)):
        if not term:
            continue
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if (labels.get(key) in values) != (op == "in"):
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator plus label selectors on lists."""

    async def _serve_list(self, request: Any) -> Any:  # type: ignore[override]
        payload: Any = await super()._serve_list(request)
        selector = (request.params or {}).get("labelSelector")
        if selector:
            payload["items"] = [o for o in payload["items"]
                                if selector_matches(selector, (o.get("metadata") or {}).get("labels") or {})]
        return payload


class ApiServer:
    """The emulator on http://127.0.0.1:<port>, served from a thread with its own event loop."""

    def __init__(self) -> None:
        self.url = ""
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kube-api", daemon=True)
        self.emulator: Emulator | None = None

    def _run(self) -> None:
        async def main() -> None:
            async with Emulator() as emulator, apps.Server(emulator) as server:
                for resource in RESOURCES:
                    emulator.resources[resource] = {}  # type: ignore[assignment]
                self.emulator, self.url = emulator, str(server.url).rstrip("/")
                self._ready.set()
                while not self._stop.is_set():
                    await asyncio.sleep(0.05)

        asyncio.run(main())

    def __enter__(self) -> ApiServer:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the Kubernetes API emulator did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def client(self) -> kubernetes.client.ApiClient:
        config = kubernetes.client.Configuration()
        config.host = self.url
        return kubernetes.client.ApiClient(config)


class NodeAgent:
    """Runs the namespace's pods as local process groups and reports their status."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str, state_dir: Path, *,
                 poll_s: float = 0.2, timeout_s: float = 5.0) -> None:
        self._core = kubernetes.client.CoreV1Api(api)
        self._ns = namespace
        self.processes = ProcessRuntime(state_dir)
        self._poll = poll_s
        self._timeout = timeout_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="node-agent", daemon=True)
        self._reported: dict[str, str] = {}
        self._running: dict[str, str] = {}  # pod name -> container name
        self.errors: list[str] = []

    def __enter__(self) -> NodeAgent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.processes.stop_all(grace_s=2)

    def _loop(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self.sync()
            except Exception as exc:  # keep the node alive; the test sees the errors
                log.exception("node agent pass failed")
                self.errors.append(repr(exc))

    def _patch(self, name: str, body: dict[str, Any]) -> None:
        try:
            self._core.patch_namespaced_pod(name, self._ns, body, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _status(self, name: str, phase: str, ready: bool) -> None:
        key = f"{phase}/{ready}"
        if self._reported.get(name) == key:
            return
        self._patch(name, {"status": {"phase": phase, "podIP": "127.0.0.1", "hostIP": "127.0.0.1", "conditions": [
            {"type": "Ready", "status": "True" if ready else "False"},
            {"type": "ContainersReady", "status": "True" if ready else "False"}]}})
        self._reported[name] = key

    def _env(self, pod: Any) -> dict[str, str]:
        env: dict[str, str] = {}
        container = pod.spec.containers[0]
        for item in container.env or []:
            if item.value is not None:
                env[item.name] = item.value
            elif (item.value_from and item.value_from.field_ref
                  and item.value_from.field_ref.field_path == "status.podIP"):
                env[item.name] = "127.0.0.1"
        for source in container.env_from or []:
            if source.secret_ref:
                secret = self._core.read_namespaced_secret(source.secret_ref.name, self._ns,
                                                           _request_timeout=self._timeout)
                env.update(secret.string_data or {})
        return env

    def _start(self, pod: Any) -> None:
        meta = pod.metadata
        labels, annotations = meta.labels or {}, meta.annotations or {}
        env = self._env(pod)
        spec = ContainerSpec(
            name=annotations[GROUP + "name"], tenant=labels[GROUP + "tenant"], sig=labels[GROUP + "sig"],
            role=labels[GROUP + "role"], index=int(labels[GROUP + "index"]),
            config_hash=labels[GROUP + "config-hash"], generation=int(labels[GROUP + "generation"]),
            # The process runtime's "image": the SIG's built environment.
            artifact=pod.spec.containers[0].image,
            cpu=int(env.get("SPAAS_WORKER_CORES", "2")), memory_mb=int(env.get("SPAAS_WORKER_MEMORY_MB", "2048")),
            # The process runtime sets the container's own variables (dirs, markers) itself.
            env={k: v for k, v in env.items() if k not in ("SPAAS_ARTIFACT_DIR", "SPAAS_CONTAINER_DIR",
                                                               "SPAAS_STATE_DIR")})
        self._patch(meta.name, {"metadata": {"finalizers": [FINALIZER]}})
        self.processes.start(spec)
        self._running[meta.name] = spec.name
        log.info("node: started pod %s", meta.name)

    def sync(self) -> None:
        pods = self._core.list_namespaced_pod(self._ns, _request_timeout=self._timeout).items
        alive = {c.name for c in self.processes.list()}
        for pod in pods:
            name = pod.metadata.name
            if pod.metadata.deletion_timestamp:
                container = self._running.pop(name, None) or (pod.metadata.annotations or {}).get(GROUP + "name")
                if container:
                    grace = min(float(pod.spec.termination_grace_period_seconds or 30), 30.0)
                    self.processes.stop(container, grace_s=grace)
                self._patch(name, {"metadata": {"finalizers": []}})
                self._reported.pop(name, None)
                log.info("node: removed pod %s", name)
                continue
            phase = (pod.status.phase if pod.status else None) or "Pending"
            if phase in ("Failed", "Succeeded"):
                continue
            if name not in self._running:
                if phase == "Pending":
                    self._start(pod)
                    alive = {c.name for c in self.processes.list()}
                else:
                    continue
            if self._running[name] in alive:
                self._status(name, "Running", True)
            else:
                self._running.pop(name, None)
                self._status(name, "Failed", False)
                log.info("node: pod %s failed (its process exited)", name)

    def wait_idle(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._running:
            time.sleep(0.2)
