"""Walking-skeleton figures on the embedded stack (process runtime). Prints:

  * SIG create -> READY with a cold build (fresh artifact; the Spark layer is reused if cached)
  * SIG create -> READY with a cached build (identical spec: no build work), median of --starts
  * a bare Spark master + worker started by hand (`spark-class ...Master` and `...Worker` at
    once, with the same Spark and Java) until the master lists the worker ALIVE, median of
    --starts, run alternately with the SIG starts so both see the same load
  * the ratio SIG / bare (issue #11: goal <= 1.0 without a warm pool, <= 0.5 with one)
  * submit -> FINISHED for a trivial PySpark job (median of --jobs)
  * idle RSS of the control plane (api, builder, scaler, etcd_registry; not Redis/etcd/Spark)

Usage: python bench/skeleton.py [--spark 3.5.9] [--starts 3] [--jobs 3] [--busy 2] [--warm-pool N]
  --busy K       K processes spinning on the CPU beside everything (a busy machine)
  --warm-pool N  SPAAS_WARM_POOL_SIZE for the scaler (0: off). With a pool, each timed SIG start
                 waits first until a skeleton is ready (as between a user's SIG creations), and
                 the run prints how many starts claimed a pooled skeleton.
  --layers DIR   shared Spark layers (default ~/.cache/spaas/layers; a missing layer is pip-installed)
Only the platform's defaults are used (no shortened resync), so the figures are what a user gets.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spaas.etcd import EtcdStore  # noqa: E402
from spaas.keys import Keys  # noqa: E402
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


def spin() -> None:
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        pass


def bare_start(spark_home: Path, workdir: Path) -> float:
    """Seconds from launching a master and a worker by hand until the worker is ALIVE on the master."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "conf").mkdir(exist_ok=True)
    port, ui = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPAAS_", "SPARK_", "PYSPARK_"))}
    env.update(SPARK_HOME=str(spark_home), SPARK_LOCAL_IP="127.0.0.1", SPARK_DAEMON_MEMORY="512m",
               SPARK_CONF_DIR=str(workdir / "conf"), SPARK_LOG_DIR=str(workdir / "logs"),
               SPARK_WORKER_DIR=str(workdir / "work"))
    cls = str(spark_home / "bin" / "spark-class")
    t0 = time.monotonic()
    procs = []
    with open(workdir / "spark.log", "ab") as out:
        procs.append(subprocess.Popen([cls, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                       "--port", str(port), "--webui-port", str(ui)],
                                      env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        procs.append(subprocess.Popen([cls, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                       "--webui-port", "0", "--cores", "2", "--memory", "2048m",
                                       f"spark://127.0.0.1:{port}"],
                                      env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
    try:
        while time.monotonic() - t0 < 300:
            try:
                status = requests.get(f"http://127.0.0.1:{ui}/json/", timeout=1).json()
                if any(w.get("state") == "ALIVE" for w in status.get("workers", [])):
                    return time.monotonic() - t0
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"bare Spark did not come up; see {workdir / 'spark.log'}")
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(30)


def pool_ready(store: EtcdStore, keys: Keys, timeout_s: float = 600) -> str:
    """Wait until an unclaimed pooled skeleton has its master and a worker registered; its id."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        by: dict[str, list[dict]] = {}
        for e in store.list(keys.all_pool_hosts()):
            by.setdefault(e.key[len(keys.all_pool_hosts()):].split("/")[0], []).append(e.value)
        claimed = {e.key[len(keys.pool_claims()):] for e in store.list(keys.pool_claims())}
        for skel, hosts in by.items():
            if skel not in claimed and {h.get("role") for h in hosts if h.get("ready")} >= {"master", "worker"}:
                return skel
        time.sleep(0.5)
    raise RuntimeError("the warm pool did not fill")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spark", default="3.5.9")
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--busy", type=int, default=0)
    parser.add_argument("--warm-pool", type=int, default=0)
    parser.add_argument("--layers", default=str(Path.home() / ".cache" / "spaas" / "layers"))
    args = parser.parse_args()
    spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
    for s in spinners:
        s.start()
    with tempfile.TemporaryDirectory(prefix="spaas-bench-") as tmp:
        env = {"SPAAS_WARM_POOL_SIZE": str(args.warm_pool), "SPAAS_HISTORY_DEFAULT": "false"}
        stack = Stack(state_dir=Path(tmp), api_port=free_port(), registry_port=free_port(),
                      layers_dir=Path(args.layers), extra_env=env)
        stack.up()
        try:
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {stack.admin_token()}"
            base = stack.api_url + "/api/v1"

            def sig(name: str) -> dict:
                return http.get(f"{base}/tenants/bench/sigs/{name}").json()

            def ready(name: str) -> float:
                t0 = time.monotonic()
                r = http.post(f"{base}/tenants/bench/sigs", json={"name": name, "spark_version": args.spark})
                assert r.status_code == 202, r.text
                while True:
                    phase = sig(name)["status"]["phase"]
                    if phase == "READY":
                        return time.monotonic() - t0
                    assert phase != "FAILED", sig(name)
                    time.sleep(0.05)

            def delete(name: str) -> None:
                http.delete(f"{base}/tenants/bench/sigs/{name}")
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and http.get(f"{base}/tenants/bench/sigs/{name}").status_code != 404:
                    time.sleep(0.2)

            http.post(f"{base}/tenants", json={"name": "bench"}).raise_for_status()
            cold = ready("cold")
            manifest = next(Path(tmp).glob("**/manifest.json"))  # the cached build's artifact
            spark_home = Path(json.loads(manifest.read_text())["spark_home"])
            delete("cold")
            store, keys = EtcdStore(stack.etcd_url), Keys()
            sig_s, bare_s, claimed = [], [], 0
            for i in range(args.starts):
                bare_s.append(bare_start(spark_home, Path(tmp) / f"bare-{i}"))
                skel = pool_ready(store, keys) if args.warm_pool else ""
                sig_s.append(ready(f"w{i}"))
                claim = store.get(keys.pool_claim(skel)) if skel else None
                claimed += bool(claim and claim.value.get("sig") == f"w{i}")
                delete(f"w{i}")
            print(f"spark {args.spark}, process runtime, busy={args.busy}, warm_pool={args.warm_pool}, "
                  f"nproc={os.cpu_count()}, load1={os.getloadavg()[0]:.1f}")
            print(f"sig_create_to_ready_cold_s   {cold:7.2f}")
            print(f"sig_create_to_ready_cached_s {statistics.median(sig_s):7.2f}  runs " + " ".join(f"{x:.2f}" for x in sig_s))
            print(f"bare_master_worker_alive_s   {statistics.median(bare_s):7.2f}  runs " + " ".join(f"{x:.2f}" for x in bare_s))
            print(f"ratio_sig_over_bare          {statistics.median(sig_s) / statistics.median(bare_s):7.2f}")
            if args.warm_pool:
                print(f"starts_on_a_pooled_skeleton  {claimed} of {len(sig_s)}")
            sys.stdout.flush()
            ready("job")
            rss = {name: rss_mb(pid) for name, pid in stack.pids.items() if name not in ("redis", "etcd")}
            path = http.post(f"{base}/tenants/bench/sigs/job/files", files={"file": ("job.py", JOB.encode())}).json()["path"]
            runs = []
            for _ in range(args.jobs):
                t0 = time.monotonic()
                app = http.post(f"{base}/tenants/bench/sigs/job/applications", json={"file": path}).json()["id"]
                while True:
                    state = http.get(f"{base}/tenants/bench/sigs/job/applications/{app}").json()["state"]
                    if state in ("FINISHED", "FAILED", "KILLED"):
                        assert state == "FINISHED", state
                        break
                    time.sleep(0.1)
                runs.append(time.monotonic() - t0)
            print(f"submit_to_finished_s         p50 {statistics.median(runs):5.1f}  min {min(runs):5.1f}  "
                  f"max {max(runs):5.1f}  (n={len(runs)})")
            print("control_plane_idle_rss_mb    " + "  ".join(f"{k}={v:.0f}" for k, v in sorted(rss.items()))
                  + f"  total={sum(rss.values()):.0f}")
        finally:
            stack.down()
            for s in spinners:
                s.terminate()


if __name__ == "__main__":
    main()
