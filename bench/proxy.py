"""Spark UI through services/proxy vs directly vs nginx, on this machine, in one run.

    python bench/proxy.py [--seconds 5] [--connections 16] [--spark-home DIR]

Starts a real Spark master (pip pyspark 3.5.9, reverse-proxy mode as the platform runs it), a
throwaway etcd holding one tenant, SIG, host record and the admin token hash, the spaas proxy
(`python -m services.proxy`) and nginx (`nginx-light`, a generated nginx.conf with `proxy_pass`
and upstream keep-alive, one worker process like the proxy's one process) on free ports, then
loads each path with `wrk` (one thread; falls back to a Python client without wrk) and prints
requests/s and p50/p99 latency for the master page and a static asset. Everything it started is
stopped at the end.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spaas.auth import hash_token  # noqa: E402
from spaas.etcd import EtcdStore  # noqa: E402
from spaas.keys import Keys  # noqa: E402
from spaas.stack import free_port, start_etcd, stop_pid  # noqa: E402

TOKEN = "spaas_bench-admin-token"
PAGES = {"master page": "/", "static asset": "/static/webui.js"}


def find_spark_home(given: str | None) -> Path:
    candidates = [given] if given else []
    candidates += [os.environ.get("SPARK_HOME", "")]
    home = Path.home() / ".cache" / "spaas"
    candidates += sorted(glob.glob(str(home / "layers" / "spark-3.5.9-*" / "pyspark")))
    candidates += sorted(glob.glob(str(home / "images" / "trees" / "pyspark-3.5.9-*" / "pyspark")))
    for c in candidates:
        if c and (Path(c) / "bin" / "spark-class").exists():
            return Path(c)
    sys.exit("no pyspark 3.5.9 found: run the e2e tests or ./dev images once, or pass --spark-home")


def wait(url: str, what: str, timeout_s: float = 90, **kw: object) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1, **kw).status_code < 500:  # type: ignore[arg-type]
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    sys.exit(f"{what} did not come up at {url}")


def start_master(spark_home: Path, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    props = work / "spark.properties"
    props.write_text("spark.ui.reverseProxy=true\nspark.ui.reverseProxyUrl=/sig/bench/etl/\n"
                     "spark.ui.killEnabled=false\nspark.master.rest.enabled=false\n")
    port, ui = free_port(), free_port()
    env = dict(os.environ, SPARK_HOME=str(spark_home), SPARK_LOCAL_IP="127.0.0.1", SPARK_LOG_DIR=str(work / "logs"))
    with open(work / "master.log", "ab") as log:
        proc = subprocess.Popen([str(spark_home / "bin" / "spark-class"), "org.apache.spark.deploy.master.Master",
                                 "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui),
                                 "--properties-file", str(props)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    wait(f"http://127.0.0.1:{ui}/json/", "the Spark master")
    return proc, ui


def start_proxy(etcd_url: str, prefix: str, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = dict(os.environ, SPAAS_ETCD_URL=etcd_url, SPAAS_ETCD_PREFIX=prefix, SPAAS_PORT=str(port),
               SPAAS_API_URL=f"http://127.0.0.1:{free_port()}", SPAAS_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    with open(work / "proxy.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "services.proxy"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    wait(f"http://127.0.0.1:{port}/healthz", "the spaas proxy")
    return proc, port


def start_nginx(ui_port: int, work: Path, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        sys.exit("nginx not found: apt-get install nginx-light")
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(f"""
worker_processes {workers};
daemon off;
error_log {work}/nginx-error.log warn;
pid {work}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx-body;
  proxy_temp_path {work}/nginx-proxy;
  fastcgi_temp_path {work}/nginx-fastcgi;
  uwsgi_temp_path {work}/nginx-uwsgi;
  scgi_temp_path {work}/nginx-scgi;
  upstream spark {{ server 127.0.0.1:{ui_port}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port};
    location /sig/bench/etl/ {{
      proxy_pass http://spark/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $proxy_host;
    }}
  }}
}}
""")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work)], stdout=subprocess.DEVNULL,
                            stderr=open(work / "nginx.out", "ab"), start_new_session=True)
    wait(f"http://127.0.0.1:{port}/sig/bench/etl/", "nginx")
    return proc, port


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (from /proc)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def wrk(url: str, seconds: int, connections: int, headers: dict[str, str]) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    wrk.requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[attr-defined,union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return rps, pct("50"), pct("99")


def python_load(url: str, seconds: int, connections: int, headers: dict[str, str]) -> tuple[float, float, float]:
    """A fallback without wrk: threads with keep-alive sessions (slower than wrk, so only a rough figure)."""
    import threading
    lat: list[float] = []
    stop = time.monotonic() + seconds

    def run() -> None:
        s = requests.Session()
        while time.monotonic() < stop:
            t = time.perf_counter()
            s.get(url, headers=headers, timeout=10)
            lat.append((time.perf_counter() - t) * 1000)

    threads = [threading.Thread(target=run) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat.sort()
    python_load.requests = len(lat)  # type: ignore[attr-defined]
    return len(lat) / seconds, lat[len(lat) // 2], lat[int(len(lat) * 0.99)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--spark-home")
    parser.add_argument("--nginx-workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per target; the median is shown")
    args = parser.parse_args()
    load = wrk if shutil.which("wrk") else python_load
    if load is python_load:
        print("wrk not found (apt-get install wrk): using a Python client, figures are rough", file=sys.stderr)
    spark_home = find_spark_home(args.spark_home)
    work = Path(tempfile.mkdtemp(prefix="spaas-bench-proxy-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        master, ui = start_master(spark_home, work)
        procs.append(master)
        etcd_port = free_port()
        etcd = start_etcd(work / "etcd", etcd_port, free_port(), work / "etcd.log")
        procs.append(etcd)
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        keys = Keys("/bench")
        store = EtcdStore(etcd_url)
        store.put(keys.bootstrap_token(), {"hash": hash_token(TOKEN)})
        store.put(keys.sig_spec("bench", "etl"), {"spec": {"name": "etl"}, "generation": 1})
        # The route the scaler would write once the runtime verified the master's UI port.
        store.put(keys.route("bench", "etl", "bench-etl-master-0"),
                  {"role": "master", "ready": True, "ip": "127.0.0.1", "ports": {"ui": ui}})
        proxy, proxy_port = start_proxy(etcd_url, keys.prefix, work)
        procs.append(proxy)
        nginx, nginx_port = start_nginx(ui, work, args.nginx_workers)
        procs.append(nginx)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        wait(f"http://127.0.0.1:{proxy_port}/sig/bench/etl/", "the proxy route", headers=auth)
        print(f"Spark UI (pyspark {spark_home.parent.name}), {args.connections} connections, {args.seconds}s x "
              f"{args.rounds} rounds each (median), load: {'wrk -t1' if load is wrk else 'python'}; nginx "
              f"worker_processes {args.nginx_workers}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        print("CPU/req: CPU time the proxy process (nginx: its workers) spent per request, which the machine's "
              "other load does not inflate")
        print(f"{'page':14} {'path':8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU/req us':>11}")
        cpu_of = {"direct": [], "spaas": [proxy.pid], "nginx": children(nginx.pid)}
        for page, path in PAGES.items():
            targets = {"direct": f"http://127.0.0.1:{ui}{path}",
                       "spaas": f"http://127.0.0.1:{proxy_port}/sig/bench/etl{path}",
                       "nginx": f"http://127.0.0.1:{nginx_port}/sig/bench/etl{path}"}
            for url in targets.values():  # warm up the JVM's JIT and every pool
                load(url, 2, args.connections, auth)
            runs: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in targets}
            for _ in range(args.rounds):
                for name, url in targets.items():
                    before = cpu_seconds(cpu_of[name])
                    rps, p50, p99 = load(url, args.seconds, args.connections, auth)
                    used = (cpu_seconds(cpu_of[name]) - before) / max(1, load.requests)  # type: ignore[attr-defined]
                    runs[name].append((rps, p50, p99, used * 1e6))
            results = {}
            for name, rs in runs.items():
                rps, p50, p99, us = sorted(rs)[len(rs) // 2]
                results[name] = (rps, p50, p99)
                print(f"{page:14} {name:8} {rps:9.0f} {p50:8.2f} {p99:8.2f} {us if name != 'direct' else 0:11.1f}")
            print(f"{page:14} spaas/nginx throughput {results['spaas'][0] / results['nginx'][0]:.2f}x")
            # Added latency without queueing: one connection, one request at a time.
            single = {name: sorted(load(url, args.seconds, 1, auth)[1] for _ in range(args.rounds))[args.rounds // 2]
                      for name, url in targets.items()}
            print(f"{page:14} 1 connection p50: direct {single['direct']:.2f} ms, spaas {single['spaas']:.2f} ms "
                  f"(added {single['spaas'] - single['direct']:+.2f} ms), nginx {single['nginx']:.2f} ms "
                  f"(added {single['nginx'] - single['direct']:+.2f} ms)")
    finally:
        for proc in reversed(procs):
            stop_pid(proc.pid)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
