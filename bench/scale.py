"""Many tenants: the scaler's full reconcile pass, the API's SIG list and each service's memory.

    python bench/scale.py [--tenants 100,500,1000] [--sigs 5] [--requests 300]

For each tenant count, on a fresh throwaway etcd and Redis: loads N tenants x `--sigs` SIGs as
records (tenant, member, spec generation 1, secret, a SUCCEEDED build), in transactions of 100 puts,
then
- in a child process, starts the scaler's watch-backed caches (`cached_prefixes`, "sync s": the
  first listing) and runs `services.scaler.loop.Scaler.reconcile_all`: three full passes (the first
  starts the SIGs' containers, then their agents' host records are written, ready; the second sees
  them ready and writes statuses and routes; the third reads those statuses back), then `--steady`
  more full passes over inputs that no longer change: the full pass the scaler makes every
  `full_resync_s` once things settled (their mean and slowest, wall and CPU: the machine may be
  shared, and which pass pays for a full garbage collection of the heap varies), an incremental
  pass (nothing changed: n = 0) and one after 1% of the workers' agents reported not ready (n =
  the SIGs reconciled); prints the times and the child's RSS, and the RSS grown per SIG since
  before the caches. The containers are a simulated runtime
  that lives in this file only (`SimRuntime`: it records what the scaler starts and stops, and
  gives each container an address of its own; no processes): it is for this benchmark, never
  importable by services. `--profile FILE` writes one pass's cProfile stats (pass index in
  SPAAS_BENCH_PROFILE_PASS, default 3: the first steady pass);
- starts the API (`python -m services.api`, waitress, with its watch-backed caches) and sends
  `--requests` sequential SIG lists for one tenant with that tenant's admin token; prints p50/p99
  and the API's RSS.
Figures only. Everything it started is stopped at the end.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spaas.auth import Identity, Tokens  # noqa: E402
from spaas.etcd import EtcdStore  # noqa: E402
from spaas.keys import Keys  # noqa: E402
from spaas.model import SigSpec  # noqa: E402
from spaas.records import BuildStatus, HostRecord, MemberRecord, SigSpecRecord, TenantRecord  # noqa: E402
from spaas.runtimes.base import Address, Container, ContainerSpec  # noqa: E402
from spaas.stack import free_port, start_etcd, start_redis, stop_pid  # noqa: E402

PREFIX = "/spaas"
ADMIN = "spaas_bench-admin-token"


class SimRuntime:
    """Containers as records in memory: what the scaler started and has not stopped (bench only)."""

    def __init__(self) -> None:
        self.containers: dict[str, Container] = {}
        self.ips: dict[str, str] = {}

    def ip(self, name: str) -> str:
        """Each container its own address, as on Docker (every port on it is the container's)."""
        if name not in self.ips:
            n = len(self.ips) + 1
            self.ips[name] = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        return self.ips[name]

    def addresses(self) -> dict[str, Address]:
        return {name: Address(self.ip(name)) for name in self.containers}

    def start(self, spec: ContainerSpec) -> None:
        if spec.name not in self.containers:
            self.containers[spec.name] = Container(spec.name, spec.tenant, spec.sig, spec.role, spec.index,
                                                   spec.config_hash, spec.generation, True, time.time())

    def stop(self, name: str, *, grace_s: float = 10.0) -> None:
        self.containers.pop(name, None)

    def list(self) -> list[Container]:
        return list(self.containers.values())

    def cleanup_sig(self, tenant: str, sig: str) -> None:
        pass


class Batch:
    """Puts sent to etcd 100 to a transaction (loading 35,000 keys one by one takes minutes)."""

    def __init__(self, store: EtcdStore) -> None:
        self.store, self.ops = store, []  # type: ignore[var-annotated]

    def put(self, key: str, value: dict[str, object]) -> None:
        self.ops.append({"request_put": {"key": base64.b64encode(key.encode()).decode(),
                                         "value": base64.b64encode(json.dumps(value).encode()).decode()}})
        if len(self.ops) >= 100:
            self.flush()

    def flush(self) -> None:
        if self.ops:
            self.store.call("/v3/kv/txn", {"compare": [], "success": self.ops, "failure": []})
            self.ops = []


def load(store: EtcdStore, keys: Keys, tenants: int, sigs: int) -> None:
    now = time.time()
    batch = Batch(store)
    for t in range(tenants):
        tenant = f"t{t:04d}"
        batch.put(keys.tenant(tenant), TenantRecord(name=tenant, created_at=now).to_value())
        batch.put(keys.member(tenant, "user", f"admin-{tenant}"), MemberRecord(roles=["consumer_admin"]).to_value())
        for s in range(sigs):
            sig = f"s{s}"
            spec = SigSpec(name=sig, spark_version="3.5.9")
            batch.put(keys.sig_spec(tenant, sig), SigSpecRecord(spec=spec, generation=1, created_at=now).to_value())
            batch.put(keys.secret(tenant, sig), {"secret": "bench-secret"})
            batch.put(keys.sig_build(tenant, sig), BuildStatus(generation=1, key=f"k{s}", state="SUCCEEDED",
                                                               artifact="/opt/bench").to_value())
    batch.flush()


def register_hosts(store: EtcdStore, keys: Keys, runtime: SimRuntime, *, ready: bool = True) -> None:
    """What the agents of the started containers would write: a ready host record each."""
    batch = Batch(store)
    for c in runtime.containers.values():
        ip = runtime.ip(c.name)
        ports = {"spark": 7077, "ui": 8080} if c.role == "master" else {"ui": 8081}
        batch.put(keys.host(c.tenant, c.sig, c.name),
                  HostRecord(role=c.role, index=c.index, ip=ip, config_hash=c.config_hash, generation=c.generation,
                             ready=ready, ports=ports, registered_at=time.time(),
                             spark_url=f"spark://{ip}:7077" if c.role == "master" else None,
                             ui_url=f"http://{ip}:{ports['ui']}").to_value())
    batch.flush()


def scaler_child(etcd_url: str, redis_url: str, state: str, profile: str = "", steady: str = "5") -> None:
    """In the child: the scaler's caches filled, then three reconcile passes; prints JSON with
    their times and this process's RSS. With `profile`, the steady pass's cProfile stats go there."""
    from spaas.bus import RedisBus
    from spaas.cache import CachedStore
    from spaas.demand import RedisDemandStore
    from spaas.storage import SigStorage
    from services.scaler.loop import Scaler, cached_prefixes

    runtime, keys, etcd = SimRuntime(), Keys(PREFIX), EtcdStore(etcd_url, timeout_s=30)
    rss0 = psutil.Process().memory_info().rss / 2**20
    t0 = time.perf_counter()
    cached = CachedStore(etcd, cached_prefixes(keys)).start(wait_s=300)
    synced = time.perf_counter() - t0
    scaler = Scaler(cached, RedisBus(redis_url), runtime, SigStorage(Path(state)), keys=keys,
                    demand=RedisDemandStore(redis_url))
    times, cpu, reconciled = [], [], []
    full = 3 + int(steady)  # passes 0..full-1 are full ones
    for i in range(full + 2):
        prof = None
        if profile and i == int(os.environ.get("SPAAS_BENCH_PROFILE_PASS", "3")):
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        started, cpu0 = time.perf_counter(), time.process_time()
        scaler.reconcile_all(full=i < full)  # then incremental passes
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu0)
        reconciled.append(scaler.last_pass[1])
        if prof is not None:
            prof.disable()
            prof.dump_stats(profile)
        if i == 0:
            register_hosts(etcd, keys, runtime)
            cached.wait_for(keys.all_hosts(), etcd.last_revision(), 120)
        if i == full:  # 1% of the SIGs see a worker's agent report not ready: the last pass sees them (and their tenants')
            workers = sorted(c.name for c in runtime.containers.values() if c.role == "worker")
            unready = SimRuntime()
            unready.ips = runtime.ips
            unready.containers = {name: runtime.containers[name] for name in workers[::100]}
            register_hosts(etcd, keys, unready, ready=False)
            cached.wait_for(keys.all_hosts(), etcd.last_revision(), 120)
    print(json.dumps({"passes": times, "cpu": cpu, "steady": int(steady), "reconciled": reconciled, "sync": synced, "rss_mb": psutil.Process().memory_info().rss / 2**20,
                      "rss0_mb": rss0}))
    cached.stop()


def start_api(tmp: Path, etcd_url: str, redis_url: str, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), SPAAS_ETCD_URL=etcd_url, SPAAS_REDIS_URL=redis_url,
               SPAAS_PORT=str(port), SPAAS_STATE_DIR=str(tmp / "state"), SPAAS_ADMIN_TOKEN=ADMIN,
               SPAAS_LOG_LEVEL="WARNING", SPAAS_ETCD_PREFIX=PREFIX)
    proc = subprocess.Popen([sys.executable, "-m", "services.api"], cwd=ROOT, env=env, stdout=open(tmp / "api.log", "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
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


def one_size(n: int, sigs: int, n_requests: int, profile: str = "", steady: int = 5) -> None:
    started: list[int] = []
    with tempfile.TemporaryDirectory(prefix="spaas-bench-scale-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            etcd_port, redis_port, api_port = free_port(), free_port(), free_port()
            started.append(start_etcd(tmp / "etcd", etcd_port, free_port(), tmp / "etcd.log").pid)
            started.append(start_redis(tmp / "redis", redis_port, tmp / "redis.log").pid)
            etcd_url, redis_url = f"http://127.0.0.1:{etcd_port}", f"redis://127.0.0.1:{redis_port}/0"
            store, keys = EtcdStore(etcd_url, timeout_s=30), Keys(PREFIX)
            t0 = time.perf_counter()
            load(store, keys, n, sigs)
            loaded = time.perf_counter() - t0
            child = subprocess.run([sys.executable, __file__, "--scaler-child", etcd_url, redis_url, str(tmp / "st"),
                                    profile.replace("{n}", str(n)) if profile else "", str(steady)],
                                   capture_output=True, text=True, timeout=1800)
            if child.returncode != 0:
                raise SystemExit(f"scaler pass failed:\n{child.stderr[-3000:]}")
            scaler = json.loads(child.stdout.strip().splitlines()[-1])
            api = start_api(tmp, etcd_url, redis_url, api_port)
            started.append(api.pid)
            tenant = f"t{n // 2:04d}"
            token = Tokens(store, keys).issue(Identity(f"admin-{tenant}"), kind="api", ttl_s=3600).token
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {token}"
            url = f"http://127.0.0.1:{api_port}/api/v1/tenants/{tenant}/sigs"
            deadline = time.monotonic() + 30  # until the API's token cache shows the token just issued
            while session.get(url, timeout=30).status_code == 401 and time.monotonic() < deadline:
                time.sleep(0.05)
            lat = []
            for _ in range(n_requests):
                r0 = time.perf_counter()
                resp = session.get(url, timeout=30)
                lat.append(time.perf_counter() - r0)
                assert resp.status_code == 200 and len(resp.json()["sigs"]) == sigs, resp.text[:300]
            lat.sort()
            api_rss = psutil.Process(api.pid).memory_info().rss / 2**20
            grown_kb = (scaler["rss_mb"] - scaler["rss0_mb"]) * 1024 / (n * sigs)
            p, full = scaler["passes"], 3 + scaler["steady"]
            wall, cpu = p[3:full], scaler["cpu"][3:full]
            print(f"{n:>8} {n * sigs:>6} {loaded:>8.1f} {scaler['sync']:>7.2f} {p[0]:>8.2f} "
                  f"{p[1]:>8.2f} {p[2]:>8.2f} {sum(wall) / len(wall):>8.2f} {max(wall):>6.2f} {sum(cpu) / len(cpu):>6.2f} "
                  f"{p[full]:>8.2f} {scaler['reconciled'][full]:>5} "
                  f"{p[full + 1]:>8.2f} {scaler['reconciled'][full + 1]:>5} "
                  f"{scaler['rss_mb']:>10.0f} {grown_kb:>7.1f} "
                  f"{lat[len(lat) // 2] * 1000:>9.1f} {lat[int(0.99 * len(lat))] * 1000:>9.1f} {api_rss:>8.0f}", flush=True)
        finally:
            for pid in reversed(started):
                stop_pid(pid)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--scaler-child":
        scaler_child(*sys.argv[2:7])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tenants", default="100,500,1000")
    ap.add_argument("--sigs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--steady", type=int, default=5, help="full passes over settled inputs to time (mean, max)")
    ap.add_argument("--profile", default="", help="write the steady pass's cProfile stats to this file ({n}: tenants)")
    args = ap.parse_args()
    print("scaler: its caches filled (sync), then full reconcile passes (1st starts, 2nd sees ready, 3rd reads the "
          "statuses back, then --steady full passes over settled inputs: mean and max wall, mean CPU), then "
          "an incremental pass (incr: n SIGs whose inputs changed) and one after 1% of the SIGs had a worker turn unready "
          "(1%: n SIGs reconciled), its RSS and RSS grown per SIG; API: sequential SIG "
          "lists of one tenant, and its RSS")
    print(f"{'tenants':>8} {'SIGs':>6} {'load s':>8} {'sync s':>7} {'pass1 s':>8} {'pass2 s':>8} {'pass3 s':>8} {'steady s':>8} "
          f"{'max s':>6} {'cpu s':>6} {'incr s':>8} {'n':>5} {'1% s':>8} {'n':>5} "
          f"{'scaler MB':>10} {'KB/SIG':>7} {'list p50':>9} {'list p99':>9} {'API MB':>8}")
    for n in (int(x) for x in args.tenants.split(",")):
        one_size(n, args.sigs, args.requests, args.profile, args.steady)


if __name__ == "__main__":
    main()
