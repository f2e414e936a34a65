"""Artifact builder for the process runtime: a local environment per build key.

    LAYERS/spark-<ver>-<base>-r<recipe>/     `pip install --target` of pyspark==<ver> (shared)
    ARTIFACTS/<key>/env/                     a venv that sees the layer through a .pth file,
                                             plus the SIG's own python_packages
    ARTIFACTS/<key>/manifest.json            spark_home, python, spark_version; written last
    LAYERS/<layer>.cds-<jdk>/                the Spark daemons' class-data-sharing archives
                                             (services/builder/cds.py); `java` and `cds_dir`
                                             in the manifest when they could be made

The manifest is the completion marker: a directory without it is a crashed build and is
rebuilt. Layers are built once per Spark version, under a file lock, so SIGs that differ only
in packages share the Spark part (like an image layer).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from spaas.errors import PermanentError
from spaas.redact import Redactor

from services.builder import cds
from services.builder.planner import BuildPlan

Log = Callable[[str], None]


class LocalEnvBuilder:
    def __init__(self, artifacts_dir: Path, layers_dir: Path, *, python: str = "", pip_args: tuple[str, ...] = (),
                 timeout_s: float = 1800.0, redact: Callable[[str], str] | None = None, cds: bool = True) -> None:
        """`redact`: masks operator credentials in what goes to the build log and errors
        (default: URL credentials, and those in `pip_args`). `cds`: make the Spark daemons'
        class-data-sharing archives (a faster JVM start; off only in tests that need no Spark)."""
        self._cds = cds
        self._redact = redact or Redactor(texts=pip_args)
        self._artifacts = Path(artifacts_dir)
        self._layers = Path(layers_dir)
        self._python = python or sys.executable
        self._pip_args = list(pip_args)
        self._timeout = timeout_s

    def artifact_dir(self, plan: BuildPlan) -> Path:
        return self._artifacts / plan.key

    def existing(self, plan: BuildPlan) -> str | None:
        """The artifact's reference if it is complete."""
        adir = self.artifact_dir(plan)
        return str(adir) if (adir / "manifest.json").exists() else None

    def remove(self, artifact: str) -> None:
        shutil.rmtree(artifact, ignore_errors=True)

    def _run(self, argv: list[str], log: Log, *, deadline: float) -> None:
        log(self._redact("$ " + " ".join(argv)))
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, bufsize=1, start_new_session=True)
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            line = self._redact(line.rstrip("\n"))
            log(line)
            tail = (tail + [line])[-30:]
            if time.monotonic() > deadline:
                proc.kill()
                raise PermanentError(f"build timed out after {self._timeout:.0f}s")
        code = proc.wait()
        if code != 0:
            errors = [t for t in tail if "ERROR" in t or "error" in t] or tail[-10:]
            raise PermanentError(self._redact(f"`{' '.join(argv[:4])} ...` exited with {code}: "
                                              + " | ".join(errors)[-1500:]))

    def _pip(self, *args: str) -> list[str]:
        return [self._python, "-m", "pip", "--disable-pip-version-check", "--no-input", *args, *self._pip_args]

    def _ensure_layer(self, plan: BuildPlan, log: Log, deadline: float) -> Path:
        layer = self._layers / plan.layer_name
        self._layers.mkdir(parents=True, exist_ok=True)
        with open(self._layers / f".{plan.layer_name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (layer / ".complete").exists():
                log(f"Spark layer {plan.layer_name}: reused")
                return layer
            log(f"Spark layer {plan.layer_name}: building")
            shutil.rmtree(layer, ignore_errors=True)
            self._run(self._pip("install", "--target", str(layer), f"pyspark=={plan.spark_version}"), log,
                      deadline=deadline)
            (layer / ".complete").write_text(plan.spark_version)
        return layer

    def build(self, plan: BuildPlan, log: Log) -> str:
        deadline = time.monotonic() + self._timeout
        adir = self.artifact_dir(plan)
        shutil.rmtree(adir, ignore_errors=True)  # a crashed build's leftovers
        layer = self._ensure_layer(plan, log, deadline)
        env = adir / "env"
        self._run([self._python, "-m", "venv", "--without-pip", str(env)], log, deadline=deadline)
        site = next((env / "lib").glob("python*/site-packages"))
        (site / "_spaas_spark_layer.pth").write_text(str(layer) + "\n")
        py = env / "bin" / "python"
        if plan.python_packages:
            self._run(self._pip("--python", str(py), "install", *plan.python_packages), log, deadline=deadline)
        check = subprocess.run([str(py), "-c", "import pyspark; print(pyspark.__version__)"], capture_output=True,
                               text=True, timeout=120)
        found = check.stdout.strip()
        if check.returncode != 0 or found != plan.spark_version:
            raise PermanentError(f"the environment imports pyspark {found or '(none)'}, wanted {plan.spark_version}: "
                                 f"{check.stderr.strip()[-500:]}")
        log(f"pyspark {found} importable from {py}")
        java = cds.find_java()
        cds_dir = cds.ensure_archives(layer, layer / "pyspark", log, java=java) if self._cds else None
        manifest = {
            "build_key": plan.key, "spark_version": plan.spark_version, "python": str(py),
            "spark_home": str(layer / "pyspark"), "python_packages": list(plan.python_packages),
            "built_at": time.time(),
        }
        if java and cds_dir:
            manifest.update(java=java, cds_dir=str(cds_dir))
        tmp = adir / ".manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2))
        os.replace(tmp, adir / "manifest.json")
        return str(adir)
