"""Table tests for the domain model (`spaas.model`): what a user's SIG spec or application may
contain, what it defaults to, and which application state changes are allowed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from spaas.model import (
    NAME_MAX,
    Application,
    AppState,
    Resources,
    Scaling,
    SigSpec,
    can_transition,
    dns_safe,
)


def sig(**fields: Any) -> SigSpec:
    return SigSpec(**{"name": "etl", "spark_version": "3.5.1", **fields})


def error_locs(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[Any, ...]]:
    return [tuple(e["loc"]) for e in exc.value.errors()]


# -- defaults ----------------------------------------------------------------------------------

def test_sigspec_defaults_follow_the_seed_chart() -> None:
    spec = sig()
    assert (spec.resources.cpu, spec.resources.memory_mb) == (2, 2048)
    assert (spec.resources.max_cpu, spec.resources.max_memory_mb) == (4, 6144)
    assert (spec.resources.gpu, spec.resources.max_gpu) == (0, 0)
    assert (spec.scaling.min_workers, spec.scaling.max_workers) == (1, 10)
    assert spec.spark_conf == {} and spec.python_packages == []


def test_dumped_spec_round_trips() -> None:
    spec = sig(spark_conf={"spark.executor.memory": "2g"}, python_packages=["numpy>=1.2"])
    assert SigSpec(**spec.model_dump(mode="json")) == spec


def test_spec_is_immutable() -> None:
    spec = sig()
    with pytest.raises(ValidationError):
        spec.name = "other"  # type: ignore[misc]


# -- names -------------------------------------------------------------------------------------

GOOD_NAMES = ["a", "etl", "sig-1", "a1b2", "a-b-c", "a" * NAME_MAX]
BAD_NAMES = ["", "Etl", "ETL", "1sig", "-sig", "sig-", "sig_1", "sig.a", "s g", "a" * (NAME_MAX + 1), "etl\n", "étl"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_dns_safe_names_are_accepted(name: str) -> None:
    assert sig(name=name).name == name
    assert dns_safe(name) is True


@pytest.mark.parametrize("name", BAD_NAMES)
def test_unsafe_names_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError) as exc:
        sig(name=name)
    assert ("name",) in error_locs(exc)
    assert dns_safe(name) is False


def test_name_max_is_24() -> None:
    assert NAME_MAX == 24


# -- python packages ---------------------------------------------------------------------------

@pytest.mark.parametrize("package", ["numpy>=1.2", "pandas", "requests[socks]==2.31.0", 'numpy>=1.2; python_version>"3"'])
def test_plain_requirements_are_accepted(package: str) -> None:
    assert sig(python_packages=[package]).python_packages == [package]


@pytest.mark.parametrize(
    "package",
    [
        "-e x",
        " -e x",
        "--index-url",
        "--index-url=https://evil.example/simple",
        "--extra-index-url https://evil.example/simple",
        "pkg @ https://example.com/pkg-1.0.whl",
        "pkg @ file:///etc/passwd",
        "not a requirement!!",
        "numpy\n--index-url=https://evil.example",
        "numpy>>1",
        "",
    ],
)
def test_pip_options_urls_and_garbage_are_rejected(package: str) -> None:
    with pytest.raises(ValidationError) as exc:
        sig(python_packages=["pandas", package])
    assert any(loc[0] == "python_packages" for loc in error_locs(exc))


def test_too_many_packages_are_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        sig(python_packages=[f"pkg{i}" for i in range(101)])
    assert ("python_packages",) in error_locs(exc)


# -- unknown fields ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"bogus": 1}, ("bogus",)),
        ({"sparkVersion": "3.5.1"}, ("sparkVersion",)),
        ({"resources": {"gpus": 1}}, ("resources", "gpus")),
        ({"scaling": {"max_containers": 3}}, ("scaling", "max_containers")),
    ],
)
def test_unknown_fields_are_rejected(fields: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as exc:
        sig(**fields)
    assert loc in error_locs(exc)


# -- resources and scaling ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("resources", "limit"),
    [
        ({"cpu": 8}, "max_cpu"),
        ({"cpu": 5, "max_cpu": 4}, "max_cpu"),
        ({"memory_mb": 8192}, "max_memory_mb"),
        ({"gpu": 1}, "max_gpu"),
    ],
)
def test_limits_must_cover_requests(resources: dict[str, int], limit: str) -> None:
    with pytest.raises(ValidationError) as direct:
        Resources(**resources)
    assert limit in str(direct.value)
    with pytest.raises(ValidationError) as nested:
        sig(resources=resources)
    assert ("resources",) in error_locs(nested)
    assert limit in str(nested.value)


@pytest.mark.parametrize(
    "resources",
    [{"cpu": 4, "max_cpu": 4}, {"cpu": 8, "max_cpu": 16}, {"memory_mb": 6144}, {"gpu": 1, "max_gpu": 1}],
)
def test_limits_equal_or_above_requests_are_accepted(resources: dict[str, int]) -> None:
    assert Resources(**resources).model_dump(include=set(resources)) == resources


@pytest.mark.parametrize(("low", "high", "ok"), [(1, 10, True), (3, 3, True), (0, 0, True), (5, 2, False), (1, 0, False)])
def test_scaling_max_must_cover_min(low: int, high: int, ok: bool) -> None:
    if ok:
        assert Scaling(min_workers=low, max_workers=high).max_workers == high
        return
    with pytest.raises(ValidationError) as exc:
        sig(scaling={"min_workers": low, "max_workers": high})
    assert ("scaling",) in error_locs(exc)
    assert "max_workers" in str(exc.value)


@pytest.mark.parametrize("version", ["3.5", "v3.5.1", "3.5.1-rc1", "latest", "3.5.1\n"])
def test_spark_version_must_be_x_y_z(version: str) -> None:
    with pytest.raises(ValidationError) as exc:
        sig(spark_version=version)
    assert ("spark_version",) in error_locs(exc)


@pytest.mark.parametrize(("model", "fields", "loc"), [
    (SigSpec, {"name": "etl", "spark_version": "٣.٥.١"}, "spark_version"),
    (Application, {"file": "job.py", "driverMemory": "١g"}, "driverMemory"),
])
def test_non_ascii_digits_are_rejected(model: type[SigSpec | Application], fields: dict[str, Any], loc: str) -> None:
    with pytest.raises(ValidationError) as exc:
        model(**fields)
    assert (loc,) in error_locs(exc)


# -- applications ------------------------------------------------------------------------------

@pytest.mark.parametrize("memory", ["1g", "512", "512m", "4G", "2t", "100k"])
def test_application_memory_sizes_are_accepted(memory: str) -> None:
    app = Application(file="job.py", driverMemory=memory, executorMemory=memory)
    assert (app.driverMemory, app.executorMemory) == (memory, memory)


@pytest.mark.parametrize("field", ["driverMemory", "executorMemory"])
@pytest.mark.parametrize("memory", ["lots", "1gb", "-1g", "1.5g", "", "1g -Xmx9g", "1234567g"])
def test_application_bad_memory_sizes_are_rejected(field: str, memory: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Application(**{"file": "job.py", field: memory})
    assert (field,) in error_locs(exc)


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({}, ("file",)),
        ({"file": ""}, ("file",)),
        ({"file": "job.py", "executorCores": 0}, ("executorCores",)),
        ({"file": "job.py", "numExecutors": 0}, ("numExecutors",)),
        ({"file": "job.py", "proxyUser": "root"}, ("proxyUser",)),
        ({"file": "job.py", "args": [1]}, ("args", 0)),
    ],
)
def test_application_validation(fields: dict[str, Any], loc: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as exc:
        Application(**fields)
    assert loc in error_locs(exc)


# -- application states ------------------------------------------------------------------------

S = AppState
ALLOWED = {
    (S.SUBMITTED, S.STARTING), (S.SUBMITTED, S.KILLED), (S.SUBMITTED, S.FAILED),
    (S.STARTING, S.RUNNING), (S.STARTING, S.FINISHED), (S.STARTING, S.FAILED), (S.STARTING, S.KILLED),
    (S.RUNNING, S.FINISHED), (S.RUNNING, S.FAILED), (S.RUNNING, S.KILLED),
}


@pytest.mark.parametrize("current", list(AppState))
@pytest.mark.parametrize("new", list(AppState))
def test_app_transitions(current: AppState, new: AppState) -> None:
    assert can_transition(current, new) is ((current, new) in ALLOWED)


@pytest.mark.parametrize(("state", "terminal"), [
    (S.SUBMITTED, False), (S.STARTING, False), (S.RUNNING, False), (S.FINISHED, True), (S.FAILED, True), (S.KILLED, True),
])
def test_terminal_states(state: AppState, terminal: bool) -> None:
    assert state.terminal is terminal


def test_notebooks_are_off_by_default_and_validated() -> None:
    assert sig().notebooks.jupyter.enabled is False
    on = sig(notebooks={"jupyter": {"enabled": True, "idle_timeout_s": 600}})
    assert on.notebooks.jupyter.enabled and on.notebooks.jupyter.idle_timeout_s == 600
    for bad, loc in [({"jupyter": {"enabled": "maybe"}}, ("notebooks", "jupyter", "enabled")),
                     ({"jupyter": {"idle_timeout_s": 0}}, ("notebooks", "jupyter", "idle_timeout_s")),
                     ({"jupyter": {"idle_timeout_s": 10**9}}, ("notebooks", "jupyter", "idle_timeout_s")),
                     ({"zeppelin": {}}, ("notebooks", "zeppelin"))]:
        with pytest.raises(ValidationError) as exc:
            sig(notebooks=bad)
        assert loc in error_locs(exc)
