"""Class-data sharing on the Docker runtime: a SIG image carries the Spark daemons' AppCDS archives
(dumped when its Spark image was built, deploy/images/spark/Dockerfile), and the SIG's master and
worker containers start their JVMs with them, which the JVMs really map (a JVM silently ignores an
archive that does not fit, so the flag alone proves nothing)."""

from __future__ import annotations

import json

import pytest

from tests.docker.conftest import Compose, sh

pytestmark = pytest.mark.docker

ARCHIVE_FILES = {".complete", "conf", "master.jsa", "master.json", "worker.jsa", "worker.json"}


def processes(container: str) -> dict[str, str]:
    """pid -> command line of every process in a running container."""
    out = sh("docker", "exec", container, "sh", "-c",
             r'for p in /proc/[0-9]*; do printf "%s " "${p#/proc/}"; tr "\0" " " < "$p/cmdline"; echo; done 2>/dev/null; true')
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def test_a_sig_image_carries_class_data_archives_and_its_daemons_start_with_them(compose: Compose) -> None:
    api = compose.api
    view = compose.ready_sig("cds", "warm", resources={"cpu": 1, "memory_mb": 1024, "max_cpu": 1, "max_memory_mb": 1024},
                             scaling={"min_workers": 1, "max_workers": 1})
    ref = f"spaas-sig:{view['status']['build']['key']}"

    # The image names its archive directory in the manifest the agent reads, and the directory is whole.
    manifest = json.loads(sh("docker", "run", "--rm", ref, "cat", "/opt/sig/manifest.json"))
    cds_dir = manifest["cds_dir"]
    assert cds_dir.startswith("/opt/sig/spark.cds-"), manifest
    listed = set(sh("docker", "run", "--rm", ref, "ls", "-A", cds_dir).split())
    assert listed >= ARCHIVE_FILES, listed

    for role in ("master", "worker"):
        [container] = [c["Names"] for c in compose.containers(tenant="cds", sig="warm", role=role)
                       if c["State"] == "running"]
        archive = f"{cds_dir}/{role}.jsa"
        jvms = {pid: cmd for pid, cmd in processes(container).items() if f"-XX:SharedArchiveFile={archive}" in cmd}
        assert len(jvms) == 1, f"{role}: no JVM started with {archive}: {processes(container)}"
        [pid] = jvms
        maps = sh("docker", "exec", container, "cat", f"/proc/{pid}/maps")
        assert archive in maps, f"the {role} JVM did not map {archive}"

    api.ok("DELETE", "/tenants/cds/sigs/warm", 202)
    api.wait_gone("cds", "warm", timeout_s=180)
