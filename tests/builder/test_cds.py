"""The Spark daemons' class-data-sharing archives (services/builder/cds.py), made from a real
Spark master and worker run on the shared Spark layer, and used by a JVM that then starts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from services.builder import cds

pytestmark = pytest.mark.e2e


def _layer(shared_layers: Path) -> Path:
    layers = sorted(p for p in shared_layers.glob("spark-3.5.*-r1") if (p / ".complete").exists())
    if not layers or not cds.find_java():
        pytest.skip("needs a cached Spark 3.5 layer and a JDK")
    return layers[-1]


def test_archives_are_made_once_and_reused(shared_layers: Path) -> None:
    layer = _layer(shared_layers)
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
