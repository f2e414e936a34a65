"""Fault injection against the embedded stack: a seeded burst of SIG changes and applications
while `kill -9` hits a random part of the platform, then convergence checks.

Used by `tests/e2e/test_faults.py` (CI size) and `bench/faults.py` (larger, prints figures).
Everything random comes from one `random.Random(seed)`, and every report names the seed, so a
failure can be replayed with `python bench/faults.py --seed N`. (Timing still differs between
runs: the seed fixes what happens and in which order, not when the kernel schedules it.)

Fates. Each application runs one of three programs, and the program fixes its final state:
`ok` -> FINISHED, `fail` -> FAILED (NonZeroExit), `kill` (sleeps until killed) -> KILLED. A
`kill -9` of its SIG's master container while it ran is the one fault that may change the fate:
the driver dies with the container, and FAILED (DriverLost or ContainerStopped) is then also
right. Nothing else (a dead API, builder, scaler, registry, proxy, worker, Redis or etcd) may
change it. The stack must be started as `spaas up` starts it (supervised): nothing here
restarts what it kills.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from spaas.keys import Keys
from spaas.runtimes.process import ProcessRuntime, _alive, _environ, stack_id
from spaas.stack import Stack

TERMINAL = {"FINISHED", "FAILED", "KILLED"}
SERVICES = ("api", "builder", "scaler", "etcd_registry", "proxy")

PROGRAMS = {
    "ok": """
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print("RESULT", spark.sparkContext.parallelize(range(100), 2).sum())
spark.stop()
""",
    "fail": """
raise SystemExit("chaos: this application fails on purpose")
""",
    "kill": """
import time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
time.sleep(3600)
""",
}
FATES = {"ok": "FINISHED", "fail": "FAILED", "kill": "KILLED"}


@dataclass(frozen=True)
class Plan:
    seed: int
    apps: int = 12
    sig_ops: int = 4
    # Faults besides Redis and etcd (each of those is killed once when `datastores` is set).
    faults: int = 6
    datastores: bool = True
    tenants: tuple[str, str] = ("chaosa", "chaosb")
    # What a random fault may hit: platform services, and a master or worker container.
    targets: tuple[str, ...] = (*SERVICES, "master", "worker")
    converge_timeout_s: float = 300.0


@dataclass
class AppRecord:
    tenant: str
    sig: str
    program: str
    name: str
    ids: list[str] = field(default_factory=list)
    master_killed: bool = False
    kill_sent: bool = False


@dataclass
class Report:
    seed: int
    faults: list[str] = field(default_factory=list)
    sig_ops: list[str] = field(default_factory=list)
    apps: int = 0
    app_states: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    burst_s: float = 0.0
    converge_s: float = 0.0

    def summary(self) -> str:
        return (f"seed={self.seed} faults={len(self.faults)} ({', '.join(self.faults)}) "
                f"sig_ops={len(self.sig_ops)} apps={self.apps} states={self.app_states} "
                f"burst={self.burst_s:.1f}s converged_in={self.converge_s:.1f}s problems={len(self.problems)}")


class Client:
    """The REST API as a patient client: a request that meets a dead API is retried until it answers."""

    def __init__(self, stack: Stack, token: str, *, patience_s: float = 120.0) -> None:
        self.base = stack.api_url + "/api/v1"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.patience_s = patience_s

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        deadline = time.monotonic() + self.patience_s
        while True:
            try:
                resp = self.http.request(method, self.base + path, timeout=15, **kwargs)
                if resp.status_code < 500:
                    return resp
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path}: no answer from the API for {self.patience_s:.0f}s")
            time.sleep(0.5)

    def ok(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        resp = self.call(method, path, **kwargs)
        if resp.status_code not in expect:
            raise AssertionError(f"{method} {path}: {resp.status_code} {resp.text[:500]}")
        return resp.json()


class Chaos:
    def __init__(self, stack: Stack, plan: Plan, *, log: Callable[[str], None] = print) -> None:
        self.stack = stack
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.log = log
        self.api = Client(stack, stack.admin_token())
        self.runtime = ProcessRuntime(stack.state_dir)
        self.report = Report(seed=plan.seed)
        self.apps: list[AppRecord] = []
        # SIGs that must exist at the end (tenant, sig) -> expected worker count, and deleted ones.
        self.live: dict[tuple[str, str], dict[str, Any]] = {}
        self.deleted: set[tuple[str, str]] = set()
        self._next_sig = 0

    # ---- the workload -------------------------------------------------------------------
    def setup(self) -> None:
        for tenant in self.plan.tenants:
            self.api.ok("POST", "/tenants", (201, 409), json={"name": tenant})
            self._create_sig(tenant, "base", {"min_workers": 1, "max_workers": 2, "interval_s": 2,
                                              "idle_timeout_s": 5})
            for program, text in PROGRAMS.items():
                self.api.ok("POST", f"/tenants/{tenant}/sigs/base/files", (201,),
                            files={"file": (f"{program}.py", text.encode())})
        for tenant in self.plan.tenants:
            self._wait_ready(tenant, "base")

    def _create_sig(self, tenant: str, sig: str, scaling: dict[str, int]) -> None:
        spec = {"name": sig, "spark_version": "3.5.9", "scaling": scaling,
                "spark_conf": {"spark.sql.shuffle.partitions": "4"}}
        self.api.ok("POST", f"/tenants/{tenant}/sigs", (202, 409), json=spec)
        self.live[(tenant, sig)] = spec

    def _wait_ready(self, tenant: str, sig: str, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            phase = self.api.ok("GET", f"/tenants/{tenant}/sigs/{sig}")["status"]["phase"]
            if phase == "READY":
                return
            time.sleep(1)
        raise AssertionError(f"{tenant}/{sig} not READY within {timeout_s:.0f}s (seed {self.plan.seed})")

    def steps(self) -> list[str]:
        steps = ["app"] * self.plan.apps + ["sig"] * self.plan.sig_ops + ["fault"] * self.plan.faults
        if self.plan.datastores:
            steps += ["fault:redis", "fault:etcd"]
        self.rng.shuffle(steps)
        return steps

    def burst(self) -> None:
        start = time.monotonic()
        for step in self.steps():
            if step == "app":
                self._submit()
            elif step == "sig":
                self._sig_op()
            else:
                self._fault(step.partition(":")[2] or None)
            self._maybe_kill_apps()
            time.sleep(self.rng.uniform(0.2, 1.5))
        self.report.burst_s = time.monotonic() - start

    def _submit(self) -> None:
        tenant = self.rng.choice(self.plan.tenants)
        program = self.rng.choices(["ok", "fail", "kill"], weights=[3, 1, 1])[0]
        rec = AppRecord(tenant, "base", program, name=f"chaos-{len(self.apps)}-{program}")
        body = {"file": f"files/{program}.py", "name": rec.name,
                "conf": {"spark.cores.max": "1", "spark.executor.cores": "1", "spark.executor.memory": "512m"},
                "driverMemory": "512m"}
        resp = self.api.ok("POST", f"/tenants/{tenant}/sigs/base/applications", (201,), json=body)
        rec.ids.append(resp["id"])
        self.apps.append(rec)
        self.report.apps += 1

    def _maybe_kill_apps(self) -> None:
        for rec in self.apps:
            if rec.program == "kill" and not rec.kill_sent and self.rng.random() < 0.4:
                self.api.ok("DELETE", f"/tenants/{rec.tenant}/sigs/{rec.sig}/applications/{rec.ids[0]}", (200, 202))
                rec.kill_sent = True

    def _sig_op(self) -> None:
        extra = [key for key in self.live if key[1] != "base"]
        choice = self.rng.choice(["create", "update", "delete"] if extra else ["create"])
        if choice == "create":
            tenant = self.rng.choice(self.plan.tenants)
            self._next_sig += 1
            sig = f"x{self._next_sig}"
            self._create_sig(tenant, sig, {"min_workers": self.rng.choice([0, 1]), "max_workers": 2})
        elif choice == "update":
            tenant, sig = self.rng.choice(extra)
            spec = dict(self.live[(tenant, sig)])
            spec["spark_conf"] = {"spark.sql.shuffle.partitions": str(self.rng.randint(2, 64))}
            self.api.ok("PUT", f"/tenants/{tenant}/sigs/{sig}", (200, 202), json=spec)
            self.live[(tenant, sig)] = spec
        else:
            tenant, sig = self.rng.choice(extra)
            self.api.ok("DELETE", f"/tenants/{tenant}/sigs/{sig}", (202, 404))
            del self.live[(tenant, sig)]
            self.deleted.add((tenant, sig))
        self.report.sig_ops.append(f"{choice} {tenant}/{sig}")

    # ---- faults -------------------------------------------------------------------------
    def _service_pids(self) -> dict[str, int]:
        data = json.loads(self.stack.record.read_text())
        return {name: int(pid) for name, pid in data["pids"].items()}

    def _fault(self, target: str | None) -> None:
        if target is None:
            target = self.rng.choice(self.plan.targets)
        if target in ("master", "worker"):
            containers = [c for c in self.runtime.list() if c.role == target and c.sig == "base"]
            if not containers:
                self.report.faults.append(f"{target}:none-running")
                return
            victim = self.rng.choice(containers)
            pids = [pid for pid in self.runtime.pids(victim.tenant, victim.sig)
                    if _container_of(pid) == victim.name]
            leader = [pid for pid in pids if _is_leader(pid)]
            # kill -9 of the agent and its Spark daemon: the container dies as a whole, as
            # with `docker kill`; drivers left over are the runtime's to clean when it restarts.
            for pid in leader + [pid for pid in pids if _is_spark_daemon(pid)]:
                _kill9(pid)
            if target == "master":
                for rec in self.apps:
                    if rec.tenant == victim.tenant and rec.sig == victim.sig:
                        rec.master_killed = True
            self.report.faults.append(f"{target}:{victim.name}")
        else:
            pid = self._service_pids().get(target)
            if pid is None:
                self.report.faults.append(f"{target}:not-running")
                return
            _kill9_group(pid)
            self.report.faults.append(target)
        self.log(f"chaos: kill -9 {self.report.faults[-1]}")

    # ---- convergence --------------------------------------------------------------------
    def converge(self) -> None:
        """Wait until the platform shows what the workload implies; problems go to the report."""
        start = time.monotonic()
        deadline = start + self.plan.converge_timeout_s
        problems: list[str] = ["not checked"]
        shown: list[str] = []
        while time.monotonic() < deadline:
            problems = self.check()
            if not problems:
                break
            if problems != shown:  # what it waits for, as it changes (the slow part of a run)
                self.log(f"chaos: +{time.monotonic() - start:.0f}s waiting for: " + "; ".join(problems))
                shown = problems
            time.sleep(2)
        self.report.converge_s = time.monotonic() - start
        if not problems:
            # Final means final: the same answer a little later.
            time.sleep(3)
            problems = self.check()
        self.report.problems = problems
        states: dict[str, int] = {}
        for rec in self.apps:
            for app_id in rec.ids:
                state = self._app(rec, app_id).get("state", "?")
                states[state] = states.get(state, 0) + 1
        self.report.app_states = states

    def _app(self, rec: AppRecord, app_id: str) -> dict[str, Any]:
        resp = self.api.call("GET", f"/tenants/{rec.tenant}/sigs/{rec.sig}/applications/{app_id}")
        return resp.json() if resp.status_code == 200 else {}

    def check(self) -> list[str]:
        problems: list[str] = []
        problems += self._check_services()
        problems += self._check_apps()
        problems += self._check_sigs()
        problems += self._check_duplicates()
        problems += self._check_leftovers()
        return problems

    def _check_services(self) -> list[str]:
        pids = self._service_pids()
        missing = [name for name in (*SERVICES, "redis", "etcd") if name not in pids or not _alive(pids[name])]
        return [f"service {name} is not running" for name in missing]

    def _check_apps(self) -> list[str]:
        problems = []
        listings: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for rec in self.apps:
            # Kill-programs never end by themselves: send the kill now if the burst did not.
            if rec.program == "kill" and not rec.kill_sent:
                self.api.ok("DELETE", f"/tenants/{rec.tenant}/sigs/{rec.sig}/applications/{rec.ids[0]}", (200, 202))
                rec.kill_sent = True
            if (rec.tenant, rec.sig) not in listings:
                listings[(rec.tenant, rec.sig)] = self.api.ok(
                    "GET", f"/tenants/{rec.tenant}/sigs/{rec.sig}/applications")["applications"]
            listed = listings[(rec.tenant, rec.sig)]
            # A submit retried after the API died mid-request may have made a second record:
            # each copy must still end as the program implies.
            copies = [a for a in listed if a.get("name") == rec.name]
            for app in copies:
                if app["id"] not in rec.ids:
                    rec.ids.append(app["id"])
            for app in copies:
                state, reason = app["state"], app.get("reason")
                if state not in TERMINAL:
                    problems.append(f"app {rec.name} ({app['id']}) is {state}")
                elif state != FATES[rec.program] and not (
                        rec.master_killed and state == "FAILED" and reason in ("DriverLost", "ContainerStopped")):
                    problems.append(f"app {rec.name} ({app['id']}) ended {state}/{reason}, expected {FATES[rec.program]}")
            if not copies:
                problems.append(f"app {rec.name} is not listed")
        return problems

    def _check_sigs(self) -> list[str]:
        problems = []
        for tenant, sig in self.live:
            resp = self.api.call("GET", f"/tenants/{tenant}/sigs/{sig}")
            if resp.status_code != 200:
                problems.append(f"SIG {tenant}/{sig} answers {resp.status_code}")
                continue
            status = resp.json()["status"]
            if status.get("phase") != "READY":
                problems.append(f"SIG {tenant}/{sig} is {status.get('phase')} ({status.get('reason')})")
        for tenant, sig in self.deleted:
            if (tenant, sig) in self.live:
                continue
            code = self.api.call("GET", f"/tenants/{tenant}/sigs/{sig}").status_code
            if code != 404:
                problems.append(f"deleted SIG {tenant}/{sig} answers {code}")
        return problems

    def _check_duplicates(self) -> list[str]:
        problems = []
        leaders: dict[str, int] = {}
        daemons: dict[str, int] = {}
        for pid in _stack_pids(self.stack.state_dir):
            name = _container_of(pid)
            if _is_leader(pid):
                leaders[name] = leaders.get(name, 0) + 1
            if _is_spark_daemon(pid):
                daemons[name] = daemons.get(name, 0) + 1
        for name in {**leaders, **daemons}:
            if leaders.get(name, 0) > 1 or daemons.get(name, 0) > 1:
                problems.append(f"container {name}: {leaders.get(name, 0)} agents, {daemons.get(name, 0)} Spark daemons")
        return problems

    def _check_leftovers(self) -> list[str]:
        problems = []
        keys = Keys()
        gone = [(t, s) for t, s in self.deleted if (t, s) not in self.live]
        for tenant, sig in gone:
            for prefix in (keys.sig(tenant, sig), keys.apps(tenant, sig), keys.hosts(tenant, sig), keys.secret(tenant, sig)):
                if _etcd_count(self.stack.etcd_url, prefix):
                    problems.append(f"deleted SIG {tenant}/{sig} left keys under {prefix}")
            for path in (self.stack.state_dir / "storage" / tenant / sig, self.stack.state_dir / "runtime" / tenant / sig):
                if path.exists():
                    problems.append(f"deleted SIG {tenant}/{sig} left {path}")
            if [c.name for c in self.runtime.list() if (c.tenant, c.sig) == (tenant, sig)]:
                problems.append(f"deleted SIG {tenant}/{sig} left containers")
        return problems

    def run(self) -> Report:
        self.setup()
        self.burst()
        self.converge()
        return self.report

    def diagnose(self) -> str:
        """What a failure report needs to be read without a replay: each live SIG that is not
        READY with its status, its host records as etcd has them, the runtime's view of its
        containers and the tail of their logs."""
        out: list[str] = []
        for tenant, sig in sorted(self.live):
            resp = self.api.call("GET", f"/tenants/{tenant}/sigs/{sig}")
            status = resp.json().get("status", {}) if resp.status_code == 200 else {}
            if status.get("phase") == "READY":
                continue
            out.append(f"== SIG {tenant}/{sig} status: {json.dumps(status, sort_keys=True)}")
            for key, value in _etcd_list(self.stack.etcd_url, Keys().hosts(tenant, sig)):
                out.append(f"-- host {key}: {value}")
            for c in self.runtime.list():
                if (c.tenant, c.sig) == (tenant, sig):
                    out.append(f"-- container {c.name} running={c.running} config={c.config_hash} started={c.started_at:.1f}")
            cdir = self.stack.state_dir / "runtime" / tenant / sig
            for log_file in sorted(cdir.glob("*/container.log")) + sorted(cdir.glob("*/spark-*.log")):
                lines = log_file.read_text(errors="replace").splitlines()[-25:]
                out.append(f"-- {log_file.relative_to(self.stack.state_dir)} (last {len(lines)} lines)")
                out.extend("   " + line[:300] for line in lines)
        scaler_log = self.stack.state_dir / "logs" / "scaler.log"
        if out and scaler_log.exists():
            lines = [line for line in scaler_log.read_text(errors="replace").splitlines()
                     if any(f"{t}/{s}" in line for t, s in self.live)][-40:]
            out.append(f"-- scaler log lines naming live SIGs (last {len(lines)})")
            out.extend("   " + line[:300] for line in lines)
        return "\n".join(out)


@contextmanager
def supervised_stack(state_dir: Path, *, resync_s: float = 1.0) -> Iterator[Stack]:
    """The embedded stack started as an operator starts it (`spaas up`: supervised), and `spaas down`."""
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPAAS_")}
    env.update(SPAAS_STATE_DIR=str(state_dir), SPAAS_RESYNC_S=str(resync_s), PYTHONPATH=str(root),
               SPAAS_LAYERS_DIR=str(Path.home() / ".cache" / "spaas" / "layers"), SPAAS_REGISTRY_PORT="0",
               SPAAS_HISTORY_DEFAULT="false")  # no history server per SIG unless a spec asks

    def spaas(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "spaas", *args], capture_output=True, text=True, env=env,
                              timeout=600, cwd=root)

    up = spaas("up", "--port", "0", "--proxy-port", "0")
    if up.returncode != 0:
        spaas("down")
        raise RuntimeError(f"spaas up failed: {up.stderr}")
    try:
        stack = Stack.load(state_dir)
        assert stack is not None, "spaas up left no stack.json"
        yield stack
    finally:
        spaas("down")


# ---- /proc helpers ----------------------------------------------------------------------------
def _env(pid: int) -> dict[str, str]:
    return _environ(pid) or {}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _container_of(pid: int) -> str:
    return _env(pid).get("SPAAS_CONTAINER", "")


def _is_leader(pid: int) -> bool:
    return _alive(pid) and _env(pid).get("SPAAS_LEADER") == "1" and "services.agent" in _cmdline(pid)


def _is_spark_daemon(pid: int) -> bool:
    cmd = _cmdline(pid)
    return _alive(pid) and ("org.apache.spark.deploy.master.Master" in cmd or "org.apache.spark.deploy.worker.Worker" in cmd)


def _stack_pids(state_dir: Path) -> list[int]:
    marker = stack_id(state_dir)
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _env(int(p)).get("SPAAS_STACK") == marker]


def _kill9(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _kill9_group(pid: int) -> None:
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except ProcessLookupError:
        _kill9(pid)


def _etcd_list(etcd_url: str, prefix: str) -> list[tuple[str, str]]:
    import base64
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    query = {"key": base64.b64encode(prefix.encode()).decode(), "range_end": base64.b64encode(end.encode()).decode()}
    try:
        resp = requests.post(f"{etcd_url}/v3/kv/range", timeout=10, json=query)
        resp.raise_for_status()
    except requests.RequestException as exc:
        return [(prefix, f"(not read: {exc})")]
    return [(base64.b64decode(kv["key"]).decode(), base64.b64decode(kv.get("value", "")).decode(errors="replace"))
            for kv in resp.json().get("kvs", [])]


def _etcd_count(etcd_url: str, prefix: str) -> int:
    import base64

    def b64(value: bytes) -> str:
        return base64.b64encode(value).decode()

    query = {"key": b64(prefix.encode()), "count_only": True}
    if prefix.endswith("/"):  # a prefix; otherwise the one key
        query["range_end"] = b64((prefix[:-1] + chr(ord(prefix[-1]) + 1)).encode())
    resp = requests.post(f"{etcd_url}/v3/kv/range", timeout=10, json=query)
    resp.raise_for_status()
    return int(resp.json().get("count", 0))
