"""Build planning, pure: what goes into a SIG artifact and the key that names it.

The build key is a hash of everything that changes the artifact: Spark version, Python
packages (order and case do not matter; with notebooks enabled, the pinned Jupyter packages
too), the base (Python version and platform), the runtime
kind and the builder's recipe version. Spark conf and resources are *not* in it: they are
applied when containers start, so changing them never rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from dataclasses import dataclass
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from spaas.notebooks import JUPYTER_PACKAGES, settings_of

# Bump when the recipe changes in a way that must invalidate old artifacts.
RECIPE_VERSION = "1"


def _normalize(requirement: str) -> str:
    """Canonical project name (PEP 503), everything else as written: markers keep their case."""
    req = Requirement(requirement)
    req.name = canonicalize_name(req.name)
    return str(req)


def normalize_packages(packages: list[str]) -> tuple[str, ...]:
    return tuple(sorted({_normalize(p) for p in packages}))


def default_base() -> str:
    return f"python{sys.version_info.major}.{sys.version_info.minor}-{platform.machine()}"


@dataclass(frozen=True)
class BuildPlan:
    key: str
    spark_version: str
    python_packages: tuple[str, ...]
    base: str
    runtime: str
    # Who asked first; labels only (not part of the key: the same key serves every SIG).
    tenant: str = ""
    sig: str = ""

    @property
    def layer_name(self) -> str:
        """The shared Spark layer this artifact sits on (one per Spark version and base)."""
        return f"spark-{self.spark_version}-{self.base}-r{RECIPE_VERSION}"


def plan(spec: dict[str, Any], *, base: str | None = None, runtime: str = "process") -> BuildPlan:
    base = base or default_base()
    wanted = list(spec.get("python_packages", []))
    if settings_of(spec).enabled:
        # JupyterLab and the kernel live beside the SIG's own packages, so a notebook sees exactly them.
        wanted += JUPYTER_PACKAGES
    packages = normalize_packages(wanted)
    material = {
        "spark_version": spec["spark_version"],
        "python_packages": packages,
        "base": base,
        "runtime": runtime,
        "recipe": RECIPE_VERSION,
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:20]
    return BuildPlan(key=digest, spark_version=spec["spark_version"], python_packages=packages, base=base,
                     runtime=runtime)
