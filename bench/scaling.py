"""Scaling figures on the embedded stack (process runtime). Prints, over N trials:

  * submit of a demanding application -> the new worker registered ALIVE with the Spark master
    (p50 / p95)
  * the application's end -> the SIG back at min_workers (idle_timeout_s included; printed)

Usage: python bench/scaling.py [--trials 10] [--idle-timeout 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--idle-timeout", type=int, default=5)
    parser.add_argument("--spark", default="3.5.9")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spaas-bench-") as tmp:
        stack = Stack(state_dir=Path(tmp), api_port=free_port(), registry_port=free_port(),
                      layers_dir=Path.home() / ".cache" / "spaas" / "layers", extra_env={"SPAAS_RESYNC_S": "1"})
        stack.up()
        try:
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {stack.admin_token()}"
            base = stack.api_url + "/api/v1/tenants/bench/sigs"
            http.post(stack.api_url + "/api/v1/tenants", json={"name": "bench"}).raise_for_status()
            http.post(base, json={"name": "s", "spark_version": args.spark,
                                  "resources": {"cpu": 1, "memory_mb": 1024, "max_cpu": 1, "max_memory_mb": 1024},
                                  "scaling": {"min_workers": 1, "max_workers": 2, "allocation_unit": 1,
                                              "interval_s": 1, "idle_timeout_s": args.idle_timeout}}).raise_for_status()
            while (status := http.get(f"{base}/s").json()["status"])["phase"] != "READY":
                time.sleep(0.2)
            ui = status["ui_url"]
            path = http.post(f"{base}/s/files", files={"file": ("job.py", JOB.encode())}).json()["path"]

            def alive() -> int:
                return sum(w["state"] == "ALIVE" for w in requests.get(ui + "/json/", timeout=5).json()["workers"])

            out, back = [], []
            for _ in range(args.trials):
                while http.get(f"{base}/s").json()["status"]["workers"]["desired"] != 1 or alive() != 1:
                    time.sleep(0.2)
                t0 = time.monotonic()
                app = http.post(f"{base}/s/applications", json={"file": path, "numExecutors": 2, "executorCores": 1,
                                                                 "executorMemory": "512m"}).json()["id"]
                while alive() < 2:
                    time.sleep(0.1)
                out.append(time.monotonic() - t0)
                while http.get(f"{base}/s/applications/{app}").json()["state"] not in ("FINISHED", "FAILED"):
                    time.sleep(0.2)
                t1 = time.monotonic()
                while http.get(f"{base}/s").json()["status"]["workers"]["desired"] != 1:
                    time.sleep(0.2)
                back.append(time.monotonic() - t1)
            print(f"process runtime, spark {args.spark}, {args.trials} trials, interval_s 1, "
                  f"idle_timeout_s {args.idle_timeout}")
            print(f"submit_to_new_worker_registered_s  p50 {statistics.median(out):5.1f}  p95 {pct(out, 0.95):5.1f}")
            print(f"app_end_to_min_workers_s           p50 {statistics.median(back):5.1f}  p95 {pct(back, 0.95):5.1f}"
                  f"  (idle_timeout_s {args.idle_timeout} included)")
        finally:
            stack.down()


if __name__ == "__main__":
    main()
