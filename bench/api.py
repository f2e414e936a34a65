"""Authenticated API reads at fixed rates, on this machine, in one run.

    python bench/api.py [--rates 50,100,200,400,800,1600] [--seconds 5] [--sigs 5] [--threads 8]

Starts a throwaway etcd and Redis on free loopback ports and the API as it runs in production
(`python -m services.api`: waitress, `SPAAS_THREADS` worker threads), creates a tenant through the
API with the admin token, a user `alice` with a personal API token (`spaas.auth.Tokens`, as
`POST /tokens` does) granted the `user` role in the tenant, `--sigs` SIGs (through the API) with a
scaler-style status each, and one application record. Then it drives alice's reads, in turn a SIG
list, a SIG get and an application get, open loop at each fixed rate: request i is due at
t0 + i/rate whatever the earlier ones did, and its latency counts from when it was due, so a
server that falls behind shows the queueing (no coordinated omission). The client is one asyncio
process (on uvloop, as services/proxy runs) with up to `--connections` keep-alive connections, on
the same 2 cores as the servers; its own CPU time per request is printed too, so a client that
became the bottleneck would show.

Prints, per rate: requests sent, achieved rate, errors, p50/p99/max latency, the API's CPU time
per request, that of all servers (etcd, Redis, API: a figure the other load on a shared
machine disturbs less than latency) and the client's; and the maximum
sustained rate: the highest offered rate at which every request answered 200, the achieved rate
was at least 95% of the offered one and p99 stayed under `--sustain-p99-ms` (100 ms). Everything it
started is stopped at the end. Figures only; it asserts nothing about them.

`--in-process N` then also builds the application in the bench's own process and calls it
through WSGI N times per path, printing the CPU time per request of the application alone (no
HTTP server); `--profile` adds where it went (cProfile).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spaas.auth import Identity, Tokens  # noqa: E402
from spaas.etcd import EtcdStore  # noqa: E402
from spaas.keys import Keys  # noqa: E402
from spaas.model import Application  # noqa: E402
from spaas.records import AppSpecRecord, AppStateRecord, SigStatus  # noqa: E402
from spaas.stack import free_port, start_etcd, start_redis, stop_pid  # noqa: E402

ADMIN = "spaas_bench-admin-token"
TENANT = "bench"
PREFIX = "/spaas"


def start_api(tmp: Path, etcd_url: str, redis_url: str, port: int, threads: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), SPAAS_ETCD_URL=etcd_url, SPAAS_REDIS_URL=redis_url,
               SPAAS_PORT=str(port), SPAAS_STATE_DIR=str(tmp / "state"), SPAAS_ADMIN_TOKEN=ADMIN,
               SPAAS_THREADS=str(threads), SPAAS_LOG_LEVEL="WARNING", SPAAS_ETCD_PREFIX=PREFIX)
    log = open(tmp / "api.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "services.api"], cwd=ROOT, env=env, stdout=log, stderr=log,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/v1/healthz", timeout=1).ok:
                return proc
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit(f"the API did not start; see {tmp / 'api.log'}")


def setup(base: str, store: EtcdStore, n_sigs: int) -> tuple[str, list[str]]:
    """Tenant, SIGs, an application and alice's token; returns (token, the paths alice reads)."""
    keys = Keys(PREFIX)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    resp = requests.post(f"{base}/tenants", json={"name": TENANT, "quota": {"cores": 4096, "memory_mb": 10**7,
                                                                            "max_containers": 4096}},
                         headers=admin, timeout=10)
    assert resp.status_code == 201, resp.text
    resp = requests.put(f"{base}/tenants/{TENANT}/members/user/alice", json={"roles": ["user"]}, headers=admin,
                        timeout=10)
    assert resp.status_code == 200, resp.text
    sigs = [f"s{i}" for i in range(n_sigs)]
    for sig in sigs:
        resp = requests.post(f"{base}/tenants/{TENANT}/sigs", json={"name": sig, "spark_version": "3.5.9"},
                             headers=admin, timeout=10)
        assert resp.status_code == 202, resp.text
        store.put(keys.sig_status(TENANT, sig), SigStatus(phase="READY", observed_generation=1,
                                                          master_url="spark://10.0.0.1:7077").to_value())
    app_id = "app-bench-1"
    store.create(keys.app_spec(TENANT, sigs[0], app_id), AppSpecRecord(
        request=Application(file="local:///opt/job.py", name="bench"), submitter="alice",
        submitted_at=time.time()).to_value())
    store.put(keys.app_state(TENANT, sigs[0], app_id), AppStateRecord(state="RUNNING", agent="bench").to_value())
    issued = Tokens(store, keys).issue(Identity("alice"), kind="api", ttl_s=3600, name="bench")
    paths = [f"/api/v1/tenants/{TENANT}/sigs", f"/api/v1/tenants/{TENANT}/sigs/{sigs[0]}",
             f"/api/v1/tenants/{TENANT}/sigs/{sigs[0]}/applications/{app_id}"]
    for path in paths:
        resp = requests.get(base.rsplit("/api/v1", 1)[0] + path, headers={"Authorization": f"Bearer {issued.token}"},
                            timeout=10)
        assert resp.status_code == 200, (path, resp.status_code, resp.text)
    return issued.token, paths


def in_process(tmp: Path, etcd_url: str, redis_url: str, token: str, paths: list[str], n: int,
               profile: bool) -> None:
    """The application alone (no HTTP server): a second API built in this process on the same etcd,
    called through WSGI `n` times per path; prints the CPU time of the calling thread per request
    (`time.thread_time`, which other load on the machine disturbs far less than latency), and with
    `profile` the functions that took it (cProfile)."""
    os.environ.update(SPAAS_ETCD_URL=etcd_url, SPAAS_REDIS_URL=redis_url, SPAAS_STATE_DIR=str(tmp / "state-in"),
                      SPAAS_ADMIN_TOKEN=ADMIN, SPAAS_ETCD_PREFIX=PREFIX, SPAAS_LOG_LEVEL="WARNING")
    from services.api.app import create_app
    from spaas.settings import ApiSettings

    app = create_app(ApiSettings.from_env())

    def call(path: str) -> None:
        status: list[str] = []
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
                   "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
                   "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
                   "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
                   "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1", "HTTP_AUTHORIZATION": f"Bearer {token}"}
        b"".join(app(environ, lambda s, h, e=None: status.append(s)))  # type: ignore[arg-type]
        assert status[0].startswith("200"), (path, status)

    for path in paths * 100:  # warm
        call(path)
    print(f"in process (WSGI, no server), CPU of the calling thread per request, {n} requests per path:")
    for path in paths:
        start = time.thread_time()
        for _ in range(n):
            call(path)
        print(f"  {(time.thread_time() - start) / n * 1e6:7.0f} us  GET {path}")
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        for i in range(n):
            call(paths[i % len(paths)])
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    stop = getattr(app.extensions["spaas"].store, "stop", None)
    if stop is not None:
        stop()  # its watch-backed caches, before etcd goes


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def get(self, request: bytes) -> int:
        self.writer.write(request)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status


async def drive(port: int, token: str, paths: list[str], rate: float, seconds: float,
                connections: int) -> dict[str, float]:
    requests_ = [(f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n").encode()
                 for p in paths]
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    opened = 0
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)

    async def one(i: int, due: float) -> None:
        nonlocal opened, errors
        if pool.empty() and opened < connections:
            opened += 1
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            conn = Conn(reader, writer)
        else:
            conn = await pool.get()
        try:
            status = await asyncio.wait_for(conn.get(requests_[i % len(requests_)]), 30)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            errors += 1
            opened -= 1
            conn.writer.close()
            return
        latencies.append(time.perf_counter() - due)
        if status != 200:
            errors += 1
        pool.put_nowait(conn)

    loop_start = time.perf_counter() + 0.05
    tasks = []
    for i in range(total):
        due = loop_start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - loop_start
    while not pool.empty():
        pool.get_nowait().writer.close()
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    return {"rate": rate, "sent": total, "achieved": len(latencies) / elapsed, "errors": errors,
            "p50": pct(0.50), "p99": pct(0.99), "max": latencies[-1] * 1000 if latencies else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="50,100,200,400,800,1600")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--sigs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=8, help="the API's waitress threads (SPAAS_THREADS)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--sustain-p99-ms", type=float, default=100.0)
    ap.add_argument("--in-process", type=int, default=0, metavar="N",
                    help="also call the application in this process N times per path and print its CPU per request")
    ap.add_argument("--profile", action="store_true", help="with --in-process: print where that CPU went (cProfile)")
    args = ap.parse_args()
    started: list[int] = []
    with tempfile.TemporaryDirectory(prefix="spaas-bench-api-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            etcd_port, redis_port, api_port = free_port(), free_port(), free_port()
            started.append(start_etcd(tmp / "etcd", etcd_port, free_port(), tmp / "etcd.log").pid)
            started.append(start_redis(tmp / "redis", redis_port, tmp / "redis.log").pid)
            etcd_url, redis_url = f"http://127.0.0.1:{etcd_port}", f"redis://127.0.0.1:{redis_port}/0"
            api = start_api(tmp, etcd_url, redis_url, api_port, args.threads)
            started.append(api.pid)
            store = EtcdStore(etcd_url)
            token, paths = setup(f"http://127.0.0.1:{api_port}/api/v1", store, args.sigs)
            print(f"API: waitress, {args.threads} threads; reads: SIG list ({args.sigs} SIGs), SIG get, "
                  f"application get, as a tenant user; {args.seconds:.0f} s per rate, open loop")
            print(f"{'offered/s':>10} {'sent':>6} {'achieved/s':>10} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} "
                  f"{'max ms':>8} {'API cpu ms':>10} {'servers cpu ms':>12} {'client cpu ms':>13}")
            uvloop.run(drive(api_port, token, paths, 50, 1.0, args.connections))  # warm-up
            sustained = 0.0
            servers = [psutil.Process(pid) for pid in started]  # etcd, redis, API

            def cpu() -> float:
                return sum(t.user + t.system for t in (p.cpu_times() for p in servers))

            for rate in (float(r) for r in args.rates.split(",")):
                api_before, all_before, client_before = servers[-1].cpu_times(), cpu(), time.process_time()
                r = uvloop.run(drive(api_port, token, paths, rate, args.seconds, args.connections))
                client_ms = (time.process_time() - client_before) * 1000 / r["sent"]
                api_after = servers[-1].cpu_times()
                api_ms = (api_after.user + api_after.system - api_before.user - api_before.system) * 1000 / r["sent"]
                all_ms = (cpu() - all_before) * 1000 / r["sent"]
                print(f"{rate:>10.0f} {r['sent']:>6.0f} {r['achieved']:>10.1f} {r['errors']:>6.0f} {r['p50']:>8.1f} "
                      f"{r['p99']:>8.1f} {r['max']:>8.1f} {api_ms:>10.2f} {all_ms:>12.2f} {client_ms:>13.2f}", flush=True)
                if r["errors"] == 0 and r["achieved"] >= 0.95 * rate and r["p99"] <= args.sustain_p99_ms:
                    sustained = max(sustained, rate)
                elif r["p99"] > 10 * args.sustain_p99_ms:
                    break  # far past saturation: higher rates only queue longer
            print(f"maximum sustained rate: {sustained:.0f} req/s (all 200, >= 95% of offered, "
                  f"p99 <= {args.sustain_p99_ms:.0f} ms)")
            if args.in_process:
                in_process(tmp, etcd_url, redis_url, token, paths, args.in_process, args.profile)
        finally:
            for pid in reversed(started):
                stop_pid(pid)


if __name__ == "__main__":
    main()
