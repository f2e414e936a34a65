"""Table tests for SIG reconciliation (`services.scaler.reconcile.plan`): given the spec, the
build and what runs, which containers start and stop and what phase the user sees."""

from __future__ import annotations

from typing import Any

import pytest

from services.scaler.reconcile import Plan, SigView, config_hash, plan
from spaas.model import SigSpec
from spaas.runtimes.base import Container

TENANT, SIG = "acme", "etl"
MASTER0 = "acme-etl-master-0"
WORKER = "acme-etl-worker-{}"
SPARK_URL, UI_URL = "spark://127.0.0.1:7077", "http://127.0.0.1:8080"


def spec_record(generation: int = 1, deleting: bool = False, **fields: Any) -> dict[str, Any]:
    spec = SigSpec(**{"name": SIG, "spark_version": "3.5.1", **fields}).model_dump(mode="json")
    return {"spec": spec, "generation": generation, "deleting": deleting}


def build_record(generation: int = 1, state: str = "SUCCEEDED", key: str = "k1", **extra: Any) -> dict[str, Any]:
    return {"generation": generation, "key": key, "state": state, "artifact": "/a", **extra}


def chash(record: dict[str, Any], key: str = "k1") -> str:
    return config_hash(key, record["spec"])


def container(name: str, config: str, *, running: bool = True, generation: int = 1) -> Container:
    role = "master" if "-master-" in name else "worker"
    return Container(name=name, tenant=TENANT, sig=SIG, role=role, index=int(name.rsplit("-", 1)[1]),
                     config_hash=config, generation=generation, running=running)


def host(name: str, config: str, *, ready: bool = True) -> dict[str, Any]:
    role = "master" if "-master-" in name else "worker"
    return {"host": name, "role": role, "config_hash": config, "ready": ready, "spark_url": SPARK_URL, "ui_url": UI_URL}


def cluster(config: str, workers: int = 1, *, hosts: bool = True) -> tuple[list[Container], list[dict[str, Any]]]:
    names = [MASTER0] + [WORKER.format(i) for i in range(workers)]
    return [container(n, config) for n in names], ([host(n, config) for n in names] if hosts else [])


def run(spec: dict[str, Any], build: dict[str, Any] | None, containers: list[Container],
        hosts: list[dict[str, Any]], status: dict[str, Any] | None = None) -> Plan:
    return plan(SigView(TENANT, SIG, spec, build, status), containers, hosts)


def run_members(spec: dict[str, Any], build: dict[str, Any] | None, containers: list[Container],
                hosts: list[dict[str, Any]], members: tuple[int, ...]) -> Plan:
    return plan(SigView(TENANT, SIG, spec, build, None), containers, hosts, members)


def started(p: Plan) -> list[str]:
    return [c.name for c in p.start]


READY_STATUS = {"phase": "READY", "observed_generation": 1}


# -- before the build ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("build", "phase"),
    [(None, "BUILDING"), (build_record(state="BUILDING"), "BUILDING"), (build_record(generation=0), "BUILDING")],
    ids=["no-build", "build-running", "older-build"],
)
def test_nothing_starts_before_the_build(build: dict[str, Any] | None, phase: str) -> None:
    p = run(spec_record(), build, [], [])
    assert (p.start, p.stop, p.forget) == ([], [], False)
    assert p.status["phase"] == phase and p.status["master_url"] is None


def test_old_generation_keeps_running_while_the_new_one_builds() -> None:
    old = spec_record(generation=1)
    containers, hosts = cluster(chash(old))
    p = run(spec_record(generation=2, spark_conf={"spark.executor.memory": "4g"}), build_record(generation=1),
            containers, hosts, READY_STATUS)
    assert p.status["phase"] == "UPDATING"
    assert (p.start, p.stop) == ([], [])
    assert p.status["observed_generation"] == 1


def test_failed_build_reports_failed_with_its_message() -> None:
    message = "pip install failed: no matching distribution for nosuchpkg"
    p = run(spec_record(), build_record(state="FAILED", message=message), [], [])
    assert p.status["phase"] == "FAILED"
    assert (p.status["reason"], p.status["message"]) == ("BuildFailed", message)
    assert (p.start, p.stop) == ([], [])


def test_failed_build_of_an_older_generation_does_not_fail_the_new_one() -> None:
    p = run(spec_record(generation=2), build_record(generation=1, state="FAILED", message="x"), [], [])
    assert p.status["phase"] == "BUILDING"


# -- deploying -------------------------------------------------------------------------------

@pytest.mark.parametrize("min_workers", [0, 1, 3])
def test_built_sig_starts_master_and_min_workers(min_workers: int) -> None:
    record = spec_record(scaling={"min_workers": min_workers, "max_workers": 5})
    p = run(record, build_record(), [], [])
    assert started(p) == [MASTER0] + [WORKER.format(i) for i in range(min_workers)]
    assert p.stop == [] and p.status["phase"] == "DEPLOYING"
    assert p.status["workers"]["desired"] == min_workers
    for cs in p.start:
        assert (cs.tenant, cs.sig, cs.generation, cs.artifact) == (TENANT, SIG, 1, "/a")
        assert cs.config_hash == chash(record)
        assert (cs.cpu, cs.memory_mb, cs.max_cpu, cs.max_memory_mb) == (2, 2048, 4, 6144)
    assert [(c.role, c.index) for c in p.start] == [("master", 0)] + [("worker", i) for i in range(min_workers)]


def test_container_sizes_come_from_the_spec() -> None:
    record = spec_record(resources={"cpu": 3, "memory_mb": 3072, "max_cpu": 6, "max_memory_mb": 8192, "gpu": 1, "max_gpu": 1})
    (master, worker) = run(record, build_record(), [], []).start
    assert (worker.cpu, worker.memory_mb, worker.max_cpu, worker.max_memory_mb, worker.gpu) == (3, 3072, 6, 8192, 1)
    assert master.memory_mb == 3072


@pytest.mark.parametrize(
    ("master_up", "message"),
    [(False, "waiting for the master"), (True, "waiting for 1 of 1 workers")],
    ids=["no-master", "master-only"],
)
def test_running_but_not_ready_is_deploying(master_up: bool, message: str) -> None:
    record = spec_record()
    containers, _ = cluster(chash(record))
    p = run(record, build_record(), containers, [host(MASTER0, chash(record))] if master_up else [])
    assert (p.start, p.stop) == ([], [])
    assert (p.status["phase"], p.status["message"]) == ("DEPLOYING", message)
    assert p.status["observed_generation"] == 0


@pytest.mark.parametrize(("stale", "ready"), [(True, True), (False, False)], ids=["stale-config", "not-ready"])
def test_stale_or_unready_hosts_do_not_make_it_ready(stale: bool, ready: bool) -> None:
    record = spec_record()
    containers, _ = cluster(chash(record))
    config = "0ld" if stale else chash(record)
    p = run(record, build_record(), containers, [host(c.name, config, ready=ready) for c in containers])
    assert p.status["phase"] == "DEPLOYING" and p.status["master_url"] is None


# -- ready -----------------------------------------------------------------------------------

def test_all_ready_is_ready_with_endpoints() -> None:
    record = spec_record(generation=3)
    containers, hosts = cluster(chash(record))
    p = run(record, build_record(generation=3), containers, hosts)
    assert (p.start, p.stop, p.forget) == ([], [], False)
    assert p.status["phase"] == "READY"
    assert (p.status["master_url"], p.status["ui_url"]) == (SPARK_URL, UI_URL)
    assert p.status["observed_generation"] == 3
    assert p.status["workers"] == {"desired": 1, "ready": 1, "running": 1, "members": [0], "ready_members": [0],
                                   "lost": {}}
    assert p.status["reason"] is None


def test_a_ready_worker_that_died_is_not_ready_until_its_replacement_registers() -> None:
    """Its predecessor's leased host record outlives it: only a registration after the loss counts."""
    record = spec_record(scaling={"min_workers": 2})
    containers, hosts = cluster(chash(record), workers=2)
    gone = WORKER.format(1)
    for h in hosts:
        h["registered_at"] = 100.0
    was_ready = {"phase": "READY", "observed_generation": 1,
                 "workers": {"members": [0, 1], "ready_members": [0, 1], "lost": {}}}
    died = plan(SigView(TENANT, SIG, record, build_record(), was_ready),
                [c for c in containers if c.name != gone], hosts, now=200.0)
    assert [c.name for c in died.start] == [gone]
    assert (died.status["phase"], died.status["reason"]) == ("DEPLOYING", "WorkerLost")
    assert gone in died.status["message"]
    assert died.status["workers"]["ready"] == 1 and died.status["workers"]["lost"] == {"1": 200.0}
    assert died.status["master_url"] == SPARK_URL

    # Next pass: the replacement runs, the old record (registered before the loss) is still there.
    restarted = plan(SigView(TENANT, SIG, record, build_record(), died.status), containers, hosts, now=201.0)
    assert restarted.start == []
    assert (restarted.status["phase"], restarted.status["workers"]["ready"]) == ("DEPLOYING", 1)

    # The replacement registers: READY again, nothing lost.
    fresh = [dict(h, registered_at=205.0) if h["host"] == gone else h for h in hosts]
    back = plan(SigView(TENANT, SIG, record, build_record(), restarted.status), containers, fresh, now=206.0)
    assert (back.status["phase"], back.status["reason"]) == ("READY", None)
    assert back.status["workers"]["ready"] == 2 and back.status["workers"]["lost"] == {}


def two_ready_workers_started_at_50() -> tuple[dict[str, Any], list[Container], list[dict[str, Any]], dict[str, Any]]:
    """A READY SIG of two workers on a runtime that tells start times: (spec record, containers
    started at 50, host records registered at 100, its status)."""
    import dataclasses
    record = spec_record(scaling={"min_workers": 2})
    containers, hosts = cluster(chash(record), workers=2)
    for h in hosts:
        h["registered_at"] = 100.0
    was_ready = {"phase": "READY", "observed_generation": 1,
                 "workers": {"members": [0, 1], "ready_members": [0, 1], "lost": {}}}
    return record, [dataclasses.replace(c, started_at=50.0) for c in containers], hosts, was_ready


def test_with_start_times_a_host_record_counts_only_when_registered_after_its_container_started() -> None:
    """A runtime that tells when each container started: the predecessor's record (registered
    before the replacement started) never counts; the replacement's does as soon as it registers."""
    import dataclasses
    record, old, hosts, was_ready = two_ready_workers_started_at_50()
    gone = WORKER.format(1)
    died = plan(SigView(TENANT, SIG, record, build_record(), was_ready), [c for c in old if c.name != gone], hosts,
                now=200.0)
    assert (died.status["phase"], died.status["reason"]) == ("DEPLOYING", "WorkerLost")

    replaced = [dataclasses.replace(c, started_at=201.0) if c.name == gone else c for c in old]
    stale = plan(SigView(TENANT, SIG, record, build_record(), died.status), replaced, hosts, now=202.0)
    assert (stale.status["phase"], stale.status["workers"]["ready"]) == ("DEPLOYING", 1)

    fresh = [dict(h, registered_at=203.0) if h["host"] == gone else h for h in hosts]
    back = plan(SigView(TENANT, SIG, record, build_record(), stale.status), replaced, fresh, now=204.0)
    assert (back.status["phase"], back.status["workers"]["ready"], back.status["workers"]["lost"]) == ("READY", 2, {})


def test_a_worker_missed_for_one_pass_is_ready_again_when_seen_running_as_before() -> None:
    """A container the runtime's listing missed once (it never died: same start time) keeps its
    registration: it is ready again on the next pass, not lost for ever while its agent, which
    has no reason to register again, keeps running."""
    record, running, hosts, was_ready = two_ready_workers_started_at_50()
    missed = WORKER.format(1)
    glitch = plan(SigView(TENANT, SIG, record, build_record(), was_ready), [c for c in running if c.name != missed],
                  hosts, now=200.0)
    assert glitch.status["workers"]["lost"] == {"1": 200.0}
    again = plan(SigView(TENANT, SIG, record, build_record(), glitch.status), running, hosts, now=201.0)
    assert (again.status["phase"], again.status["workers"]["ready"], again.status["workers"]["lost"]) == ("READY", 2, {})


def test_a_lost_worker_removed_by_scale_in_is_no_longer_lost() -> None:
    record = spec_record(scaling={"min_workers": 1})
    containers, hosts = cluster(chash(record), workers=1)
    status = {"phase": "DEPLOYING", "observed_generation": 1,
              "workers": {"members": [0, 1], "ready_members": [0], "lost": {"1": 50.0}}}
    p = plan(SigView(TENANT, SIG, record, build_record(), status), containers, hosts, (0,), now=60.0)
    assert p.status["phase"] == "READY" and p.status["workers"]["lost"] == {}


@pytest.mark.parametrize(("invalid", "reason"), [((), None), (("/p/hosts/acme/etl/x: not JSON",), "InvalidRecord")])
def test_malformed_records_of_a_sig_are_shown_in_its_status(invalid: tuple[str, ...], reason: str | None) -> None:
    record = spec_record()
    containers, hosts = cluster(chash(record))
    p = plan(SigView(TENANT, SIG, record, build_record(), None, invalid=invalid), containers, hosts)
    assert (p.status["phase"], p.status["reason"]) == ("READY", reason)
    assert p.status.get("invalid_records", []) == list(invalid)
    if invalid:
        assert invalid[0] in p.status["message"]


def test_missing_worker_after_ready_is_degraded_and_replaced() -> None:
    """A member that never was ready (just added) is starting, not lost: the SIG stays READY."""
    record = spec_record(scaling={"min_workers": 2})
    containers, hosts = cluster(chash(record), workers=2)
    gone = WORKER.format(1)
    p = run(record, build_record(), [c for c in containers if c.name != gone], [h for h in hosts if h["host"] != gone],
            READY_STATUS)
    assert started(p) == [gone] and p.stop == []
    assert (p.status["phase"], p.status["reason"]) == ("READY", "Degraded")
    assert p.status["master_url"] == SPARK_URL
    assert p.status["workers"]["ready"] == 1


@pytest.mark.parametrize(
    "change",
    [{"spark_conf": {"spark.executor.memory": "4g"}}, {"resources": {"cpu": 3}}, {"build_key": "k2"}],
    ids=["spark_conf", "resources", "build"],
)
def test_changed_config_restarts_containers(change: dict[str, Any]) -> None:
    old = spec_record(generation=1)
    containers, hosts = cluster(chash(old))
    key = change.pop("build_key", "k1")
    new = spec_record(generation=2, **change)
    assert chash(new, key) != chash(old)
    p = run(new, build_record(generation=2, key=key), containers, hosts, READY_STATUS)
    assert sorted(p.stop) == [MASTER0, WORKER.format(0)]
    assert started(p) == [MASTER0, WORKER.format(0)]
    assert all(cs.config_hash == chash(new, key) for cs in p.start)
    assert p.status["phase"] == "UPDATING" and p.status["observed_generation"] == 1


def test_workers_beyond_min_workers_are_stopped() -> None:
    record = spec_record()
    containers, hosts = cluster(chash(record), workers=3)
    p = run(record, build_record(), containers, hosts, READY_STATUS)
    assert sorted(p.stop) == [WORKER.format(1), WORKER.format(2)]
    assert p.start == []


def test_exited_containers_are_restarted() -> None:
    record = spec_record()
    containers = [container(MASTER0, chash(record)), container(WORKER.format(0), chash(record), running=False)]
    p = run(record, build_record(), containers, [])
    assert started(p) == [WORKER.format(0)] and p.stop == []


# -- deleting --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("running", "with_hosts", "forget"),
    [(True, True, False), (True, False, False), (False, True, False), (False, False, True)],
    ids=["containers-and-hosts", "containers-only", "hosts-only", "nothing-left"],
)
def test_deleting_stops_everything_then_forgets(running: bool, with_hosts: bool, forget: bool) -> None:
    record = spec_record(deleting=True)
    containers, hosts = cluster(chash(record), workers=2)
    p = run(record, build_record(), containers if running else [], hosts if with_hosts else [], READY_STATUS)
    assert p.status["phase"] == "DELETING"
    assert p.start == []
    assert sorted(p.stop) == (sorted(c.name for c in containers) if running else [])
    assert p.forget is forget


@pytest.mark.parametrize("build", [None, build_record(state="FAILED"), build_record(generation=0)])
def test_deleting_wins_over_build_state(build: dict[str, Any] | None) -> None:
    p = run(spec_record(deleting=True), build, [], [])
    assert p.status["phase"] == "DELETING" and p.forget is True


def test_members_choose_which_workers_run() -> None:
    """The scaling policy hands plan() a worker set; gaps are allowed (an idle middle worker left)."""
    record = spec_record(scaling={"min_workers": 1})
    containers, hosts = cluster(chash(record), workers=3)
    p = run_members(record, build_record(), containers, hosts, (0, 2))
    assert p.stop == [WORKER.format(1)]
    assert p.start == []
    assert p.status["workers"]["members"] == [0, 2] and p.status["workers"]["desired"] == 2


def test_members_are_read_back_from_the_previous_status() -> None:
    record = spec_record(scaling={"min_workers": 1})
    containers, hosts = cluster(chash(record), workers=1)
    view = SigView(TENANT, SIG, record, build_record(), {"workers": {"members": [0, 1]}, "observed_generation": 1})
    p = plan(view, containers, hosts)
    assert [s.name for s in p.start] == [WORKER.format(1)]


def test_scale_in_keeps_the_sig_ready() -> None:
    record = spec_record(scaling={"min_workers": 1})
    containers, hosts = cluster(chash(record), workers=2)
    view = SigView(TENANT, SIG, record, build_record(), {"phase": "READY", "observed_generation": 1,
                                                          "workers": {"members": [0, 1]}})
    p = plan(view, containers, hosts, (0,))
    assert p.stop == [WORKER.format(1)]
    assert (p.status["phase"], p.status["reason"]) == ("READY", "ScalingIn")
