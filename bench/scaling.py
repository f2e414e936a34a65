"""Scaling figures, on the process runtime (embedded stack) or Docker (the compose stack).
Prints, over N trials:

  * submit of a demanding application -> the new worker registered with the Spark master
    (its agent saw it ALIVE in the master and registered ready; read from the SIG status) p50/p95
  * the application's end -> the SIG back at min_workers (idle_timeout_s included) p50/p95

Usage: python bench/scaling.py [--runtime process|docker] [--trials 10] [--idle-timeout 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds docker.py, which would shadow the docker package: keep it off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from spaas.stack import Stack, free_port  # noqa: E402

JOB = """
import time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.parallelize(range(4), 2).map(lambda x: time.sleep(1) or x).sum()
spark.stop()
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def platform(runtime: str) -> Iterator[tuple[str, str]]:
    """(API base URL, admin token) of a fresh platform on `runtime`."""
    if runtime == "docker":
        from tests.docker.conftest import SPARK, Compose, sh

        sh(str(ROOT / "deploy/images/build.sh"), SPARK, timeout=1800)
        compose = Compose("spaasbenchscale")
        compose.start()
        try:
            yield compose.api.base.removesuffix("/api/v1"), compose.token
        finally:
            compose.cleanup()
        return
    with tempfile.TemporaryDirectory(prefix="spaas-bench-") as tmp:
        stack = Stack(state_dir=Path(tmp), api_port=free_port(), registry_port=free_port(),
                      layers_dir=Path.home() / ".cache" / "spaas" / "layers",
                      extra_env={"SPAAS_RESYNC_S": "1", "SPAAS_HISTORY_DEFAULT": "false"})
        stack.up()
        try:
            yield stack.api_url, stack.admin_token()
        finally:
            stack.down()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runtime", choices=["process", "docker"], default="process")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--idle-timeout", type=int, default=5)
    parser.add_argument("--spark", default="3.5.9")
    args = parser.parse_args()
    with platform(args.runtime) as (api, token):
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        base = api + "/api/v1/tenants/bench/sigs"
        http.post(api + "/api/v1/tenants", json={"name": "bench"}).raise_for_status()
        http.post(base, json={"name": "s", "spark_version": args.spark,
                              "resources": {"cpu": 1, "memory_mb": 1024, "max_cpu": 1, "max_memory_mb": 2048},
                              "scaling": {"min_workers": 1, "max_workers": 2, "allocation_unit": 1,
                                          "interval_s": 1, "idle_timeout_s": args.idle_timeout}}).raise_for_status()

        def workers() -> dict:
            return http.get(f"{base}/s").json()["status"]["workers"]

        while http.get(f"{base}/s").json()["status"]["phase"] != "READY":
            time.sleep(0.2)
        path = http.post(f"{base}/s/files", files={"file": ("job.py", JOB.encode())}).json()["path"]
        out, back = [], []
        for _ in range(args.trials):
            while (w := workers())["desired"] != 1 or w["ready"] != 1:
                time.sleep(0.2)
            t0 = time.monotonic()
            app = http.post(f"{base}/s/applications", json={"file": path, "numExecutors": 2, "executorCores": 1,
                                                             "executorMemory": "512m"}).json()["id"]
            while workers()["ready"] < 2:
                time.sleep(0.1)
            out.append(time.monotonic() - t0)
            while http.get(f"{base}/s/applications/{app}").json()["state"] not in ("FINISHED", "FAILED"):
                time.sleep(0.2)
            t1 = time.monotonic()
            while workers()["desired"] != 1:
                time.sleep(0.2)
            back.append(time.monotonic() - t1)
        print(f"{args.runtime} runtime, spark {args.spark}, {args.trials} trials, interval_s 1, "
              f"idle_timeout_s {args.idle_timeout}")
        print(f"submit_to_new_worker_registered_s  p50 {statistics.median(out):5.1f}  p95 {pct(out, 0.95):5.1f}")
        print(f"app_end_to_min_workers_s           p50 {statistics.median(back):5.1f}  p95 {pct(back, 0.95):5.1f}"
              f"  (idle_timeout_s {args.idle_timeout} included)")


if __name__ == "__main__":
    main()
