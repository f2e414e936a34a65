"""Table tests for build planning (`services.builder.planner`): which spec changes produce a new
build key (and so a rebuild) and which do not, and how the shared Spark layer is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from spaas.model import SigSpec
from spaas.notebooks import JUPYTER_PACKAGES

from services.builder.planner import BuildPlan, plan

BASE = "python3.11-x86_64"
ROOT = Path(__file__).resolve().parents[2]


def spec(**fields: Any) -> dict[str, Any]:
    return SigSpec(**{"name": "etl", "spark_version": "3.5.1", **fields}).model_dump(mode="json")


def make(spec_: dict[str, Any], *, base: str = BASE, runtime: str = "process") -> BuildPlan:
    return plan(spec_, base=base, runtime=runtime)


def test_same_spec_gives_same_key() -> None:
    first = make(spec(python_packages=["numpy>=1.2"]))
    second = make(spec(python_packages=["numpy>=1.2"]))
    assert first.key == second.key
    assert first == second


def test_key_is_a_short_hex_name() -> None:
    key = make(spec()).key
    assert len(key) == 20 and int(key, 16) >= 0


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (["numpy>=1.2", "pandas"], ["pandas", "numpy>=1.2"]),
        (["NumPy>=1.2"], ["numpy>=1.2"]),
        (["numpy>=1.2", "numpy>=1.2"], ["numpy>=1.2"]),
        (["Pandas", "numpy", "pandas"], ["numpy", "pandas"]),
        (["numpy >= 1.2"], ["numpy>=1.2"]),
        ([], []),
    ],
    ids=["order", "case", "duplicates", "all-three", "spacing", "empty"],
)
def test_equivalent_package_lists_give_same_key(left: list[str], right: list[str]) -> None:
    assert make(spec(python_packages=left)).key == make(spec(python_packages=right)).key


MANY = ["zarr", "pandas", "NumPy>=1.2", "pandas", "scipy", "arrow", "Dask", "boto3", "xarray", "lxml", "h5py"]


def test_packages_are_normalized_in_the_plan() -> None:
    p = make(spec(python_packages=MANY))
    assert p.python_packages == ("arrow", "boto3", "dask", "h5py", "lxml", "numpy>=1.2", "pandas", "scipy",
                                 "xarray", "zarr")


def test_key_is_the_same_in_every_process() -> None:
    """Builder replicas must agree on the key whatever their string hash seed."""
    code = ("import sys; from services.builder.planner import plan; "
            f"print(plan({{'spark_version': '3.5.1', 'python_packages': {MANY!r}}}, base={BASE!r}).key)")
    keys = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": str(seed), "PYTHONPATH": str(ROOT)}).stdout.strip()
        for seed in range(4)
    }
    assert keys == {make(spec(python_packages=MANY)).key}


@pytest.mark.parametrize(
    ("changed", "kwargs"),
    [
        (spec(spark_version="3.4.1"), {}),
        (spec(python_packages=["numpy"]), {}),
        (spec(python_packages=["pandas==2.0"]), {}),
        (spec(python_packages=["pandas[performance]"]), {}),
        (spec(python_packages=["pandas"]), {"base": "python3.12-x86_64"}),
        (spec(python_packages=["pandas"]), {"base": "python3.11-aarch64"}),
        (spec(python_packages=["pandas"]), {"runtime": "docker"}),
    ],
    ids=["spark_version", "added-package", "pinned-package", "extras", "python", "arch", "runtime"],
)
def test_build_inputs_change_the_key(changed: dict[str, Any], kwargs: dict[str, str]) -> None:
    reference = make(spec(python_packages=["pandas"]))
    assert make(changed, **kwargs).key != reference.key


@pytest.mark.parametrize(
    "changed",
    [
        spec(spark_conf={"spark.executor.memory": "4g"}),
        spec(resources={"cpu": 4, "memory_mb": 4096, "max_cpu": 8, "max_memory_mb": 8192}),
        spec(scaling={"min_workers": 3, "max_workers": 5}),
        spec(name="other"),
    ],
    ids=["spark_conf", "resources", "scaling", "name"],
)
def test_start_time_settings_do_not_change_the_key(changed: dict[str, Any]) -> None:
    assert make(changed).key == make(spec()).key


def test_enabled_notebooks_add_the_pinned_jupyter_packages_and_change_the_key() -> None:
    with_nb = make(spec(notebooks={"jupyter": {"enabled": True, "idle_timeout_s": 60}}))
    assert set(JUPYTER_PACKAGES) <= set(with_nb.python_packages)
    assert with_nb.key != make(spec()).key
    # Only whether they are on matters for the artifact, not the idle timeout; off is the default.
    assert with_nb.key == make(spec(notebooks={"jupyter": {"enabled": True, "idle_timeout_s": 999}})).key
    assert make(spec(notebooks={"jupyter": {"enabled": False}})).key == make(spec()).key


def test_spec_without_packages_field_is_planned() -> None:
    assert make({"spark_version": "3.5.1"}).key == make(spec()).key


def test_default_base_is_used_when_none_given() -> None:
    p = plan(spec())
    assert p.base.startswith("python3.") and p.runtime == "process"
    assert plan(spec()).key == p.key


@pytest.mark.parametrize(
    ("changed", "kwargs", "same"),
    [
        (spec(python_packages=["numpy", "pandas"]), {}, True),
        (spec(spark_conf={"spark.executor.memory": "4g"}), {}, True),
        (spec(), {"runtime": "docker"}, True),
        (spec(spark_version="3.4.1"), {}, False),
        (spec(), {"base": "python3.12-x86_64"}, False),
    ],
    ids=["packages", "conf", "runtime", "spark_version", "base"],
)
def test_layer_name_depends_only_on_spark_version_and_base(changed: dict[str, Any], kwargs: dict[str, str],
                                                          same: bool) -> None:
    reference = make(spec())
    assert (make(changed, **kwargs).layer_name == reference.layer_name) is same


def test_layer_name_names_version_and_base() -> None:
    name = make(spec(spark_version="3.4.1"), base="python3.12-aarch64").layer_name
    assert "3.4.1" in name and "python3.12-aarch64" in name


@pytest.mark.parametrize(("requirement", "environment"), [
    ('uvloop; platform_system == "Linux"', {"platform_system": "Linux"}),
    ('numba; platform_python_implementation == "CPython"', {"platform_python_implementation": "CPython"}),
])
def test_normalizing_keeps_environment_markers_meaning(requirement: str, environment: dict[str, str]) -> None:
    (planned,) = make(spec(python_packages=[requirement])).python_packages
    marker = Requirement(planned).marker
    assert marker is not None and marker.evaluate(environment)
