"""Class-data-sharing (AppCDS) archives of the Spark daemons, one pair per Spark layer and JDK.

A Spark master or worker JVM spends most of its start-up loading and verifying ~4,000 classes
from Spark's jars. JDK 13+ can dump the classes a run loaded into a dynamic archive
(`-XX:ArchiveClassesAtExit`) and map it at the next start (`-XX:SharedArchiveFile`): measured
here, a master reaches ALIVE in ~10 s instead of ~23 s on a loaded 2-core machine.

    LAYERS/<layer>.cds-<jdk>/master.jsa   dumped by a Master run once during the build
    LAYERS/<layer>.cds-<jdk>/worker.jsa   dumped by a Worker registered with that Master
    LAYERS/<layer>.cds-<jdk>/<role>.json  the JVM command before the main class, exactly as
                                          Spark's launcher builds it for this Spark version
                                          (class path, -Xmx, module options), which the agent
                                          then uses without running the launcher
    LAYERS/<layer>.cds-<jdk>/conf/        an empty SPARK_CONF_DIR: first on the class path
    LAYERS/<layer>.cds-<jdk>/.complete    written last

Made once per layer and JDK under a file lock, next to the layer (which stays as pip made it);
the `.complete` marker is written last, so a crash leaves a directory that is made again. Any
failure only logs: the agent then starts its daemons the ordinary way (`spark-class`). The
JVM checks an archive itself (JDK build, class path) and silently ignores one that does not
match, so a stale archive costs its speed-up, never correctness.

The archive is made with the class path the agent uses at run time (the launcher's, with the
fixed empty conf directory: a class path entry that differs per container would void it).

Docker and Kubernetes SIG images get theirs from the Spark image they are built FROM: its recipe
(deploy/images/spark/Dockerfile) runs this file as a script at image build time,

    python cds.py /opt/sig     archives next to the Spark layer of /opt/sig/manifest.json, and
                               `java` and `cds_dir` added to that manifest for the agent

so the dump runs with the image's own JDK and class path, once per Spark image (the step sits
before the platform's code in the recipe, so Docker's layer cache keeps it across code changes).
This file therefore imports nothing of spaas: it is copied into the image on its own.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
# Options that must be the same when dumping and when using (heap size aside, which only matters
# through compressed oops, the same below 32 GiB).
CDS_FLAGS = ("-Xshare:auto", "-Xlog:cds=off", "-Xlog:cds+dynamic=off")

Log = Callable[[str], None]


def find_java() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java")


def jdk_id(java: str) -> str:
    """Names the JDK build: its real path and the identity of its libjvm (changes on upgrade)."""
    real = Path(java).resolve()
    parts = [str(real)]
    for lib in sorted(real.parent.parent.glob("lib/*/libjvm.so")):
        st = lib.stat()
        parts.append(f"{lib}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive_workers(ui_port: int) -> int:
    try:
        status = requests.get(f"http://127.0.0.1:{ui_port}/json/", timeout=2).json()
    except (requests.RequestException, ValueError):
        return -1
    if status.get("status") != "ALIVE":
        return -1
    return sum(1 for w in status.get("workers", []) if w.get("state") == "ALIVE")


DUMP_MEMORY = "512m"


def scala_version(spark_home: Path) -> str:
    """What load-spark-env.sh exports (2.12 unless the home is a 2.13 source build)."""
    return "2.13" if (spark_home / "assembly" / "target" / "scala-2.13").is_dir() else "2.12"


def launch_prefix(java: str, spark_home: Path, main_class: str, conf_dir: Path) -> list[str]:
    """The JVM command Spark's launcher builds for a daemon, up to its main class."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPAAS_", "SPARK_", "PYSPARK_"))}
    env.update(SPARK_HOME=str(spark_home), SPARK_CONF_DIR=str(conf_dir), SPARK_SCALA_VERSION=scala_version(spark_home),
               SPARK_DAEMON_MEMORY=DUMP_MEMORY, SPARK_ENV_LOADED="1")
    out = subprocess.run([java, "-Xmx128m", "-cp", f"{spark_home}/jars/*", "org.apache.spark.launcher.Main", main_class],
                         env=env, capture_output=True, timeout=120)
    # Arguments end in NUL; the launcher starts its output with "\0\n" (spark-class skips it).
    argv = [a.decode().strip("\n") for a in out.stdout.split(b"\0") if a.strip(b"\n")]
    if out.returncode != 0 or main_class not in argv:
        raise RuntimeError(f"Spark's launcher gave no command for {main_class}: {out.stderr.decode()[-300:]}")
    return argv[:argv.index(main_class)]


def _dump(java: str, spark_home: Path, out: Path, log: Log, timeout_s: float) -> None:
    """Runs a Master and a Worker the way a SIG does (authenticated, reverse proxy on) until the
    worker is ALIVE, then stops both; each JVM writes its archive as it exits."""
    conf = out / "dump.properties"
    conf.write_text("spark.authenticate=true\n"
                    f"spark.authenticate.secret={secrets.token_hex(16)}\n"
                    "spark.master.rest.enabled=false\nspark.ui.reverseProxy=true\n"
                    "spark.ui.reverseProxyUrl=/sig/cds/dump/\nspark.decommission.enabled=true\n"
                    f"spark.local.dir={out / 'local'}\n")
    port, ui = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPAAS_", "SPARK_", "PYSPARK_"))}
    env.update(SPARK_HOME=str(spark_home), SPARK_LOCAL_IP="127.0.0.1", SPARK_WORKER_DIR=str(out / "work"),
               SPARK_CONF_DIR=str(out / "conf"), SPARK_SCALA_VERSION=scala_version(spark_home), SPARK_ENV_LOADED="1")
    prefix = {role: launch_prefix(java, spark_home, cls, out / "conf")
              for role, cls in (("master", MASTER_CLASS), ("worker", WORKER_CLASS))}
    for role, cmd in prefix.items():
        (out / f"{role}.json").write_text(json.dumps({"prefix": cmd, "memory_flag": f"-Xmx{DUMP_MEMORY}"}))
    argv = {
        "master": [*prefix["master"], *CDS_FLAGS, f"-XX:ArchiveClassesAtExit={out / 'master.jsa'}", MASTER_CLASS,
                   "--host", "127.0.0.1",
                   "--port", str(port), "--webui-port", str(ui), "--properties-file", str(conf)],
        "worker": [*prefix["worker"], *CDS_FLAGS, f"-XX:ArchiveClassesAtExit={out / 'worker.jsa'}", WORKER_CLASS,
                   "--host", "127.0.0.1",
                   "--webui-port", "0", "--cores", "1", "--memory", "512m", "--work-dir", str(out / "work"),
                   "--properties-file", str(conf), f"spark://127.0.0.1:{port}"],
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with open(out / "dump.log", "ab") as sink:
        try:
            for role, cmd in argv.items():
                procs[role] = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, start_new_session=True)
            deadline = time.monotonic() + timeout_s
            while _alive_workers(ui) < 1:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs.values()):
                    raise RuntimeError("the Spark master and worker did not come up for the class-data dump")
                time.sleep(0.2)
        finally:
            for p in procs.values():  # worker first would log errors; order does not matter for the dump
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs.values():
                try:
                    p.wait(120)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
    missing = [r for r in argv if not (out / f"{r}.jsa").is_file()]
    if missing:
        raise RuntimeError(f"no archive written for {', '.join(missing)}")


def ensure_archives(layer: Path, spark_home: Path, log: Log, *, timeout_s: float = 300.0,
                    java: str | None = None) -> Path | None:
    """The directory holding master.jsa and worker.jsa for this layer and JDK, made if missing;
    None (logged) when there is no Java or the dump fails."""
    java = java or find_java()
    if not java:
        log("class-data sharing: no java found; daemons will start without an archive")
        return None
    final = layer.parent / f"{layer.name}.cds-{jdk_id(java)}"
    with open(layer.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / ".complete").is_file():
            log(f"class-data sharing archives {final.name}: reused")
            return final
        log(f"class-data sharing archives {final.name}: dumping from a Spark master and worker run")
        shutil.rmtree(final, ignore_errors=True)
        try:
            (final / "conf").mkdir(parents=True)
            started = time.monotonic()
            _dump(java, spark_home, final, log, timeout_s)
            for junk in ("work", "local", "dump.properties"):
                p = final / junk
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            (final / ".complete").write_text(java)
            log(f"class-data sharing archives {final.name}: written in {time.monotonic() - started:.0f}s")
            return final
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            log(f"class-data sharing archives not made ({exc}); daemons will start without them")
            shutil.rmtree(final, ignore_errors=True)
            return None


def add_to_artifact(artifact_dir: Path, log: Log) -> Path | None:
    """Makes the archives for the Spark layer an artifact's `manifest.json` names and records
    them (`java`, `cds_dir`) in that manifest; None (logged, manifest unchanged) without them."""
    manifest_path = artifact_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    spark_home = Path(manifest["spark_home"])
    java = find_java()
    made = ensure_archives(spark_home.parent, spark_home, log, java=java)
    if java and made:
        manifest.update(java=java, cds_dir=str(made))
        tmp = manifest_path.with_name(".manifest.json.tmp")
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, manifest_path)
    return made


def main(argv: list[str]) -> int:
    """`python cds.py ARTIFACT_DIR` (an image build step): exits 1 when no archives were made,
    which fails the image build rather than caching a layer without them."""
    if len(argv) != 1:
        print("usage: python cds.py ARTIFACT_DIR", file=sys.stderr)
        return 2
    return 0 if add_to_artifact(Path(argv[0]), lambda line: print(line, flush=True)) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
