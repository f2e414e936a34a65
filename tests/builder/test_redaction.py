"""Operator credentials (a pip index URL with user:password, the registry password) never reach
what tenants read: build logs, build status messages, the rendered Dockerfile."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from services.builder.dockerimage import build_args, dockerfile
from services.builder.localenv import LocalEnvBuilder
from services.builder.planner import BuildPlan, plan
from services.builder.service import BuildService
from spaas.errors import PermanentError
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.logstream import RedisLogStreams, sig_build_stream
from spaas.redact import Redactor

from tests.builder.test_service import RecordingBus, add_sig, build_status

PASSWORD = "hunter2-S3cret"
# Loopback port 9 (discard): nothing answers, so pip fails at once.
INDEX = f"https://ci-bot:{PASSWORD}@127.0.0.1:9/simple"
PIP_ARGS = (f"--index-url={INDEX}", "--retries=0", "--timeout=2")
REGISTRY_PASSWORD = "registry-Pa55word"


@pytest.fixture
def logs(redis_url: str, prefix: str) -> RedisLogStreams:
    return RedisLogStreams(redis_url, prefix=f"{prefix}:log:")


class LeakyBuilder:
    """Says the secrets in its output and its error, as pip or docker might."""

    def existing(self, plan: BuildPlan) -> str | None:
        return None

    def build(self, plan: BuildPlan, log: Callable[[str], None]) -> str:
        log(f"Looking in indexes: {INDEX}")
        log(f"login with password {REGISTRY_PASSWORD}")
        raise PermanentError(f"pip failed against {INDEX} (registry {REGISTRY_PASSWORD})")


def test_build_log_and_status_never_carry_credentials(store: EtcdStore, keys: Keys, logs: RedisLogStreams) -> None:
    redact = Redactor([REGISTRY_PASSWORD], texts=PIP_ARGS)
    svc = BuildService(store, RecordingBus(), logs, LeakyBuilder(), keys=keys, lock_ttl_s=5,  # type: ignore[arg-type]
                       join_timeout_s=30, redact=redact)
    add_sig(store, keys, "a")
    assert svc.build_sig("acme", "a") == "failed"
    lines, _ = logs.read(sig_build_stream("acme", "a", 1), 0, 1000)
    status = build_status(store, keys, "a")
    seen = "\n".join(lines) + status["message"] + str(store.get(keys.build(status["key"])))
    assert PASSWORD not in seen and REGISTRY_PASSWORD not in seen
    assert "https://ci-bot:***@127.0.0.1:9/simple" in seen


def test_default_service_redaction_masks_url_credentials(store: EtcdStore, keys: Keys, logs: RedisLogStreams) -> None:
    svc = BuildService(store, RecordingBus(), logs, LeakyBuilder(), keys=keys, lock_ttl_s=5,  # type: ignore[arg-type]
                       join_timeout_s=30)
    add_sig(store, keys, "a")
    svc.build_sig("acme", "a")
    lines, _ = logs.read(sig_build_stream("acme", "a", 1), 0, 1000)
    assert PASSWORD not in "\n".join(lines) + build_status(store, keys, "a")["message"]


def test_the_rendered_dockerfile_holds_no_credential() -> None:
    the_plan = plan({"spark_version": "3.5.9", "python_packages": ["toolz==0.12.1"]}, base="docker-x", runtime="docker")
    text = dockerfile(the_plan, "sha256:abc", pip_args=PIP_ARGS, tenant="acme", sig="etl")
    assert PASSWORD not in text and "127.0.0.1:9" not in text
    assert 'ARG SPAAS_PIP_ARG_0\n' in text and '"$SPAAS_PIP_ARG_0" "$SPAAS_PIP_ARG_1" "$SPAAS_PIP_ARG_2"' in text
    assert build_args(PIP_ARGS) == {"SPAAS_PIP_ARG_0": PIP_ARGS[0], "SPAAS_PIP_ARG_1": "--retries=0",
                                    "SPAAS_PIP_ARG_2": "--timeout=2"}
    assert "ARG" not in dockerfile(the_plan, "sha256:abc", tenant="acme", sig="etl")


def test_a_real_pip_failure_against_a_credentialed_index_is_redacted(tmp_path: Path) -> None:
    builder = LocalEnvBuilder(tmp_path / "artifacts", tmp_path / "layers", pip_args=PIP_ARGS, timeout_s=120)
    the_plan = plan({"spark_version": "3.5.9", "python_packages": []}, runtime="process")
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(PermanentError) as info:
        builder.build(the_plan, lines.append)
    assert time.monotonic() - started < 100
    text = "\n".join(lines)
    assert any(line.startswith("$ ") and "--index-url=https://ci-bot:***@127.0.0.1:9/simple" in line for line in lines)
    assert PASSWORD not in text and PASSWORD not in info.value.message


def test_the_kaniko_job_gets_pip_args_as_build_args_not_dockerfile_text() -> None:
    from spaas.runtimes.kube_manifests import BuildJobSpec, KubeOptions, make_build_job

    the_plan = plan({"spark_version": "3.5.9", "python_packages": ["toolz==0.12.1"]}, base="docker-x", runtime="docker")
    text = dockerfile(the_plan, "spaas-spark:3.5.9", pip_args=PIP_ARGS)
    job = make_build_job(BuildJobSpec(build_key="f" * 64, dockerfile=text, destination="r/spaas-sig:x",
                                      build_args=tuple(build_args(PIP_ARGS).items())), KubeOptions(namespace="spaas"))
    pod = job["spec"]["template"]["spec"]
    assert PASSWORD not in pod["initContainers"][0]["env"][0]["value"]  # the Dockerfile
    assert f"--build-arg=SPAAS_PIP_ARG_0={PIP_ARGS[0]}" in pod["containers"][0]["args"]
