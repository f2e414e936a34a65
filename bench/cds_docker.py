"""Spark master start in a Docker container, with and without the image's class-data-sharing archive.

The Spark image (deploy/images/spark/Dockerfile) carries the daemons' AppCDS archives, dumped at
image build time (services/builder/cds.py). This starts a container of that image per round and,
inside it, the Spark master exactly as the agent does (services/agent/spark.py `master_argv`):
with the archive (the JVM directly, `-XX:SharedArchiveFile`) or without it (`spark-class`, what
an image without archives gets). Prints per mode, over the rounds (alternating, so a change in
machine load hits both alike):

  * ALIVE        from the in-container script's start (it builds the command and starts the
                 master's process) to the master's JSON page saying ALIVE
  * docker run   the whole container round (start, master to ALIVE, stop), for scale
  * mapped       whether the running JVM mapped the archive (/proc/PID/maps), i.e. did not
                 silently ignore it as one that does not fit

Usage: python bench/cds_docker.py [--spark 3.5.9] [--rounds 3] [--cpus 2] [--no-build]
Runs deploy/images/build.sh first (seconds when the images are up to date) unless --no-build.
Run it beside a CPU load too: the difference grows on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs inside the container with the agent's Python and code (/opt/spaas/app).
IN_CONTAINER = r"""
import json, os, subprocess, sys, time, urllib.request
from pathlib import Path
from services.agent import spark
t0 = time.monotonic()
env = spark.SparkEnv.load(Path("/opt/sig"))
launch = env.launch("master") if sys.argv[1] == "cds" else None
conf = Path("/tmp/conf"); conf.mkdir()
props = Path("/tmp/master.properties")
props.write_text(spark.render_properties(spark.daemon_properties(
    "bench-secret", {}, local_dir=Path("/tmp/local"), ui_base="/sig/bench/cds/")))
argv = spark.master_argv(env, host="127.0.0.1", port=7077, ui_port=8080, properties=props, launch=launch,
                         memory="512m")
penv = dict(os.environ, SPARK_HOME=str(env.spark_home), SPARK_LOCAL_IP="127.0.0.1", SPARK_CONF_DIR=str(conf),
            SPARK_DAEMON_MEMORY="512m", SPARK_LOG_DIR="/tmp/logs", **spark.launch_env(env))
proc = subprocess.Popen(argv, env=penv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
while True:
    try:
        if json.load(urllib.request.urlopen("http://127.0.0.1:8080/json/", timeout=1)).get("status") == "ALIVE":
            break
    except Exception:
        pass
    if proc.poll() is not None or time.monotonic() - t0 > 300:
        print(json.dumps({"error": "the master did not come up"}))
        sys.exit(1)
    time.sleep(0.05)
alive = time.monotonic() - t0
pids = [p for p in os.listdir("/proc") if p.isdigit()]
def maps(pid):
    try:
        return open(f"/proc/{pid}/maps").read()
    except OSError:
        return ""
mapped = launch is not None and any(str(launch.archive) in maps(p) for p in pids)
print(json.dumps({"alive_s": alive, "archive": str(launch.archive) if launch else None, "mapped": mapped}))
proc.terminate()
proc.wait(60)
"""


def one(image: str, mode: str, cpus: str) -> dict[str, object]:
    started = time.monotonic()
    out = subprocess.run(["docker", "run", "--rm", "--cpus", cpus, "--memory", "2g", image,
                          "/opt/spaas/venv/bin/python", "-c", IN_CONTAINER, mode],
                         capture_output=True, text=True, timeout=600)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{mode} round failed: {out.stdout[-500:]}{out.stderr[-1000:]}")
    result: dict[str, object] = json.loads(lines[-1])
    result["run_s"] = time.monotonic() - started
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spark", default="3.5.9")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpus", default="2", help="the container's CPU limit (a SIG container's default request: 2)")
    ap.add_argument("--no-build", action="store_true", help="use spaas-spark:<version> as it is")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run([str(ROOT / "deploy/images/build.sh"), args.spark], check=True, capture_output=True,
                       timeout=3600)
    image = f"spaas-spark:{args.spark}"
    figures: dict[str, list[dict[str, object]]] = {"cds": [], "spark-class": []}
    for _ in range(args.rounds):
        for mode in figures:
            figures[mode].append(one(image, mode, args.cpus))
    print(f"Spark {args.spark} master in a container of {image} (--cpus {args.cpus}), {args.rounds} rounds each")
    for mode, rounds in figures.items():
        alive = [float(str(r["alive_s"])) for r in rounds]
        runs = [float(str(r["run_s"])) for r in rounds]
        print(f"  {mode:12s} ALIVE median {statistics.median(alive):5.1f}s (each: {', '.join(f'{a:.1f}' for a in alive)})"
              f"   docker run median {statistics.median(runs):5.1f}s"
              f"   archive mapped: {all(r['mapped'] for r in rounds) if mode == 'cds' else '-'}")
    with_cds = statistics.median(float(str(r["alive_s"])) for r in figures["cds"])
    without = statistics.median(float(str(r["alive_s"])) for r in figures["spark-class"])
    print(f"  ratio with/without archive: {with_cds / without:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
