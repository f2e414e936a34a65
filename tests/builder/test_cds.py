"""The Spark daemons' class-data-sharing archives (services/builder/cds.py), made from a real
Spark master and worker run on the shared Spark layer, and used by a JVM that then starts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.agent.spark import SparkEnv
from services.builder import cds
from services.builder.localenv import LocalEnvBuilder
from services.builder.planner import plan
from spaas.model import SigSpec

pytestmark = pytest.mark.e2e


def _layer(shared_layers: Path, tmp_path: Path) -> Path:
    """The shared Spark 3.5 layer, installed by the builder itself when no earlier test made it (a
    clean CI machine); a JDK is installed by ./dev (openjdk-17-jre-headless)."""
    assert cds.find_java(), "no JDK: ./dev installs openjdk-17-jre-headless"
    plan_ = plan(SigSpec(name="cds", spark_version="3.5.9").model_dump(mode="json"), runtime="process")
    builder = LocalEnvBuilder(tmp_path / "artifacts", shared_layers, timeout_s=1200)
    return builder._ensure_layer(plan_, lambda _line: None, time.monotonic() + 1200)


def test_archives_are_made_once_and_reused(shared_layers: Path, tmp_path: Path) -> None:
    layer = _layer(shared_layers, tmp_path)
    lines: list[str] = []
    made = cds.ensure_archives(layer, layer / "pyspark", lines.append, timeout_s=600)
    assert made is not None, lines
    assert (made / "master.jsa").stat().st_size > 1_000_000
    assert (made / "worker.jsa").stat().st_size > 1_000_000
    prefix = json.loads((made / "master.json").read_text())["prefix"]
    assert Path(prefix[0]).resolve() == Path(cds.find_java() or "").resolve() and "-Xmx512m" in prefix
    again: list[str] = []
    assert cds.ensure_archives(layer, layer / "pyspark", again.append) == made
    assert any("reused" in line for line in again)
    # A JVM maps the archive with the class path it was made with (its classes come from it).
    out = subprocess.run([*prefix, f"-XX:SharedArchiveFile={made / 'master.jsa'}", "-Xshare:on", "-version"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_no_archive_when_the_jvm_cannot_run(tmp_path: Path) -> None:
    lines: list[str] = []
    assert cds.ensure_archives(tmp_path, tmp_path / "pyspark", lines.append, java=str(tmp_path / "nojava")) is None
    assert any("not made" in line for line in lines)


def test_the_image_build_step_records_the_archives_in_the_artifact_manifest(shared_layers: Path, tmp_path: Path) -> None:
    """`python cds.py ARTIFACT_DIR`, as deploy/images/spark/Dockerfile runs it: the manifest the
    agent reads then names the JVM and the archive directory, and the agent would use them."""
    layer = _layer(shared_layers, tmp_path)
    artifact = tmp_path / "sig"
    artifact.mkdir()
    manifest = {"spark_version": "3.5.9", "spark_home": str(layer / "pyspark"), "python": sys.executable}
    (artifact / "manifest.json").write_text(json.dumps(manifest))
    script = Path(cds.__file__)
    out = subprocess.run([sys.executable, str(script), str(artifact)], capture_output=True, text=True, timeout=900,
                         cwd=tmp_path)  # run alone, as in the image: it needs nothing of spaas
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    written = json.loads((artifact / "manifest.json").read_text())
    assert written == {**manifest, "java": written["java"], "cds_dir": written["cds_dir"]}
    launch = SparkEnv.load(artifact).launch("master")
    assert launch is not None and launch.archive == Path(written["cds_dir"]) / "master.jsa"
    assert subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60).returncode == 2
