"""DockerImageBuilder against the real engine: a build key's image, its reuse, and pip's error on failure."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from tests.docker.conftest import SPARK, require_docker

pytestmark = pytest.mark.docker


@pytest.fixture
def builder() -> object:
    require_docker(image=f"spaas-spark:{SPARK}")
    from services.builder.dockerimage import DockerImageBuilder
    from spaas.runtimes.docker import connect

    return DockerImageBuilder(connect(timeout_s=300), repository="spaas-sig-test")


def _plan(builder: object, packages: list[str]) -> object:
    from services.builder.planner import plan

    base = builder.base_for(SPARK) + "-t" + uuid.uuid4().hex[:6]  # type: ignore[attr-defined]
    return plan({"spark_version": SPARK, "python_packages": packages}, base=base, runtime="docker")


def test_builds_an_image_per_key_and_finds_it_again(builder: object) -> None:
    p = _plan(builder, ["toolz==0.12.1"])
    assert builder.existing(p) is None  # type: ignore[attr-defined]
    lines: list[str] = []
    ref = builder.build(p, lines.append)  # type: ignore[attr-defined]
    try:
        assert ref == f"spaas-sig-test:{p.key}"  # type: ignore[attr-defined]
        assert builder.existing(p) == ref  # type: ignore[attr-defined]
        assert any("Successfully installed toolz-0.12.1" in line for line in lines)
        out = subprocess.run(["docker", "run", "--rm", ref, "/opt/sig/venv/bin/python", "-c",
                              "import toolz, pyspark; print(toolz.__version__, pyspark.__version__)"],
                             capture_output=True, text=True, timeout=60)
        assert out.stdout.split() == ["0.12.1", SPARK], out.stderr
    finally:
        subprocess.run(["docker", "rmi", ref], capture_output=True)


def test_a_package_pip_cannot_find_fails_the_build_with_pips_error(builder: object) -> None:
    from spaas.errors import PermanentError

    p = _plan(builder, ["spaas-no-such-package-anywhere==9.9.9"])
    with pytest.raises(PermanentError) as err:
        builder.build(p, lambda _line: None)  # type: ignore[attr-defined]
    assert "spaas-no-such-package-anywhere" in err.value.message
    assert builder.existing(p) is None  # type: ignore[attr-defined]


def test_credentialed_pip_args_reach_pip_but_not_the_log_or_the_error() -> None:
    """The operator's index URL (with a password) is a build argument: pip uses it (and fails at
    once on this unreachable loopback index), the logged Dockerfile and the error do not show it."""
    require_docker(image=f"spaas-spark:{SPARK}")
    from services.builder.dockerimage import DockerImageBuilder
    from spaas.errors import PermanentError
    from spaas.runtimes.docker import connect

    password = "S3cret-" + uuid.uuid4().hex[:8]
    builder = DockerImageBuilder(connect(timeout_s=300), repository="spaas-sig-test", pip_args=(
        f"--index-url=https://ci:{password}@127.0.0.1:9/simple", "--retries=0", "--timeout=2"))
    p = _plan(builder, ["toolz==0.12.1"])
    lines: list[str] = []
    with pytest.raises(PermanentError) as err:
        builder.build(p, lines.append)
    text = "\n".join(lines)
    assert password not in text and password not in err.value.message
    assert '"$SPAAS_PIP_ARG_0"' in text  # the Dockerfile as logged
    assert "127.0.0.1" in text + err.value.message  # pip did use the operator's index
