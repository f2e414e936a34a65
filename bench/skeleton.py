"""Walking-skeleton figures on the embedded stack (process runtime). Prints:

  * SIG create -> READY with a cold build (fresh Spark layer and artifact: pip install pyspark)
  * SIG create -> READY with a warm cache (identical spec: no build work)
  * submit -> FINISHED for a trivial PySpark job (median of N)
  * idle RSS of the control plane (api, builder, scaler, etcd_registry; not Redis/etcd/Spark)

Usage: python bench/skeleton.py [--spark 3.5.9] [--jobs 5]
A cold build still uses pip's own wheel cache; delete ~/.cache/pip to include the download.
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
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print("RESULT", spark.sparkContext.parallelize(range(100)).sum())
spark.stop()
"""


def rss_mb(pid: int) -> float:
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total = int(line.split()[1])
    return total / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spark", default="3.5.9")
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spaas-bench-") as tmp:
        stack = Stack(state_dir=Path(tmp), api_port=free_port(), registry_port=free_port(),
                      extra_env={"SPAAS_RESYNC_S": "1"})
        stack.up()
        try:
            time.sleep(1)
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {stack.admin_token()}"
            base = stack.api_url + "/api/v1"

            def ready(name: str) -> float:
                t0 = time.monotonic()
                r = http.post(f"{base}/tenants/bench/sigs", json={"name": name, "spark_version": args.spark})
                assert r.status_code == 202, r.text
                while True:
                    phase = http.get(f"{base}/tenants/bench/sigs/{name}").json()["status"]["phase"]
                    if phase == "READY":
                        return time.monotonic() - t0
                    assert phase != "FAILED", http.get(f"{base}/tenants/bench/sigs/{name}").json()
                    time.sleep(0.1)

            http.post(f"{base}/tenants", json={"name": "bench"}).raise_for_status()
            cold = ready("cold")
            warm = ready("warm")
            path = http.post(f"{base}/tenants/bench/sigs/warm/files", files={"file": ("job.py", JOB.encode())}).json()["path"]
            runs = []
            for _ in range(args.jobs):
                t0 = time.monotonic()
                app = http.post(f"{base}/tenants/bench/sigs/warm/applications", json={"file": path}).json()["id"]
                while True:
                    state = http.get(f"{base}/tenants/bench/sigs/warm/applications/{app}").json()["state"]
                    if state in ("FINISHED", "FAILED", "KILLED"):
                        assert state == "FINISHED", state
                        break
                    time.sleep(0.1)
                runs.append(time.monotonic() - t0)
            time.sleep(5)
            rss = {name: rss_mb(pid) for name, pid in stack.pids.items() if name not in ("redis", "etcd")}
            print(f"spark {args.spark}, process runtime, 2 SIGs running")
            print(f"sig_create_to_ready_cold_s  {cold:7.1f}")
            print(f"sig_create_to_ready_warm_s  {warm:7.1f}")
            print(f"submit_to_finished_s        p50 {statistics.median(runs):5.1f}  min {min(runs):5.1f}  "
                  f"max {max(runs):5.1f}  (n={len(runs)})")
            print("control_plane_idle_rss_mb   " + "  ".join(f"{k}={v:.0f}" for k, v in sorted(rss.items()))
                  + f"  total={sum(rss.values()):.0f}")
        finally:
            stack.down()


if __name__ == "__main__":
    main()
