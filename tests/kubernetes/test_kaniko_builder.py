"""The builder's Kaniko path against the API emulator over HTTP. The test plays the Job
controller and Kaniko (no image is built here): it marks each Job succeeded or failed, gives it a
pod with a log, and the builder turns that into an image reference or pip's error."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import kubernetes.client
import pytest
import requests

from services.builder.kanikojob import KanikoJobBuilder
from services.builder.planner import BuildPlan
from spaas.errors import PermanentError
from spaas.runtimes.kube_manifests import KubeOptions
from tests.kubernetes.harness import ApiServer
from tests.kubeschema import assert_valid

NS = "spaas1"
OPTS = KubeOptions(namespace=NS, stack="r1-spaas", instance="r1")


def plan(key: str, *packages: str) -> BuildPlan:
    return BuildPlan(key=key, spark_version="3.5.9", python_packages=packages, base="kaniko-x", runtime="kubernetes",
                     tenant="acme", sig="etl")


class FakeKaniko:
    """Finishes every build Job: failed if its Dockerfile installs 'no-such-package'."""

    def __init__(self, server: ApiServer) -> None:
        self._server = server
        self._core = kubernetes.client.CoreV1Api(server.client())
        self._batch = kubernetes.client.BatchV1Api(server.client())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.created: list[str] = []
        self.hold = threading.Event()

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            if self.hold.is_set():
                continue
            for job in self._batch.list_namespaced_job(NS).items:
                if job.status and (job.status.succeeded or job.status.failed):
                    continue
                name = job.metadata.name
                dockerfile = job.spec.template.spec.init_containers[0].env[0].value
                failed = "no-such-package" in dockerfile
                pod = f"{name}-x1"
                self._core.create_namespaced_pod(NS, {"metadata": {"name": pod, "namespace": NS,
                                                                    "labels": {"job-name": name}},
                                                       "spec": {"containers": [{"name": "kaniko", "image": "k"}]}})
                text = ("ERROR: No matching distribution found for no-such-package\nerror building image\n" if failed
                        else "INFO[0001] Pushed image\n")
                assert self._server.emulator is not None
                self._server.emulator[f"get /api/v1/namespaces/{NS}/pods/{pod}/log"] << text.encode()
                self._batch.patch_namespaced_job_status(name, NS, {"status": {"failed": 1} if failed
                                                                   else {"succeeded": 1}})
                self.created.append(name)

    def __enter__(self) -> FakeKaniko:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def kaniko(kube_api: ApiServer) -> Iterator[FakeKaniko]:
    with FakeKaniko(kube_api) as fake:
        yield fake


def builder(kube_api: ApiServer) -> KanikoJobBuilder:
    return KanikoJobBuilder(kube_api.client(), OPTS, registry="registry.example.org:5000",
                            spark_image="registry.example.org:5000/spaas-spark:{version}",
                            push_secret="r1-spaas-sig-registry", poll_s=0.1, timeout_s=60)


def jobs(server: ApiServer) -> dict[str, dict]:
    resp = requests.get(f"{server.url}/apis/batch/v1/namespaces/{NS}/jobs", timeout=10)
    return {j["metadata"]["name"]: j for j in resp.json()["items"]}


def test_a_build_is_a_kaniko_job_and_its_image(kube_api: ApiServer, kaniko: FakeKaniko) -> None:
    b = builder(kube_api)
    lines: list[str] = []
    p = plan("a" * 64, "toolz==0.12.1")
    assert b.existing(p) is None
    ref = b.build(p, lines.append)
    assert ref == "registry.example.org:5000/spaas-sig:" + "a" * 64
    assert "| FROM registry.example.org:5000/spaas-spark:3.5.9" in lines
    assert "INFO[0001] Pushed image" in lines
    (job,) = jobs(kube_api).values()
    assert job["metadata"]["name"] == "r1-spaas-build-aaaaaaaaaaaaaaaa"
    assert_valid([{k: v for k, v in job.items() if k != "status"}])
    assert b.existing(p) == ref  # the same key again: no second build
    assert b.build(p, lines.append) == ref and kaniko.created == [job["metadata"]["name"]]


def test_a_failed_build_says_pips_error_and_can_be_retried(kube_api: ApiServer, kaniko: FakeKaniko) -> None:
    b = builder(kube_api)
    with pytest.raises(PermanentError, match="No matching distribution found for no-such-package"):
        b.build(plan("b" * 64, "no-such-package"), lambda line: None)
    assert not jobs(kube_api), "the failed Job is deleted, so the next attempt builds again"


def test_a_second_builder_joins_the_running_job(kube_api: ApiServer, kaniko: FakeKaniko) -> None:
    kaniko.hold.set()
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(builder(kube_api).build(plan("c" * 64), lambda _: None)))
               for _ in range(2)]
    for t in threads:
        t.start()
    while len(jobs(kube_api)) < 1:
        threading.Event().wait(0.05)
    kaniko.hold.clear()
    for t in threads:
        t.join(30)
    assert results == ["registry.example.org:5000/spaas-sig:" + "c" * 64] * 2
    assert len(kaniko.created) == 1


def test_no_registry_is_refused_at_start(kube_api: ApiServer) -> None:
    with pytest.raises(PermanentError, match="registry"):
        KanikoJobBuilder(kube_api.client(), OPTS, registry="")
