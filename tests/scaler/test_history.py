"""Table tests for the SIG's history server in `plan()` and in the tenant's usage: it starts once
the master is ready (never before, never holding READY back), stops when disabled or on delete,
restarts only for a new build, and counts one fixed-size container toward the quota."""

from __future__ import annotations

from typing import Any

import pytest

from services.scaler.loop import sig_usage
from services.scaler.reconcile import Plan, SigView, history_hash, plan
from spaas.model import HISTORY_CPU, HISTORY_MEMORY_MB
from spaas.runtimes.base import Container
from tests.scaler.test_reconcile import MASTER0, SIG, TENANT, build_record, chash, cluster, spec_record

HISTORY0 = "acme-etl-history-0"
HIST_UI = "http://127.0.0.1:18080"
ON = {"history": {"enabled": True}}


def history_container(config: str, *, running: bool = True) -> Container:
    return Container(name=HISTORY0, tenant=TENANT, sig=SIG, role="history", index=0, config_hash=config,
                     generation=1, running=running)


def history_host(config: str, *, ready: bool = True) -> dict[str, Any]:
    return {"host": HISTORY0, "role": "history", "config_hash": config, "ready": ready, "ui_url": HIST_UI,
            "ports": {"ui": 18080}}


def run(spec: dict[str, Any], containers: list[Container], hosts: list[dict[str, Any]],
        build: dict[str, Any] | None = None, status: dict[str, Any] | None = None) -> Plan:
    return plan(SigView(TENANT, SIG, spec, build or build_record(), status), containers, hosts)


def test_nothing_of_history_starts_before_the_master_is_ready() -> None:
    record = spec_record(**ON)
    p = run(record, [], [])
    assert [c.name for c in p.start] == [MASTER0, "acme-etl-worker-0"]
    containers, _ = cluster(chash(record))
    p = run(record, containers, [])  # running, nothing registered yet
    assert p.start == [] and p.status["history"] == {"enabled": True, "ready": False, "ui_url": None}


def test_history_starts_after_the_master_with_its_fixed_size_and_does_not_hold_ready_back() -> None:
    record = spec_record(**ON)
    containers, hosts = cluster(chash(record))
    p = run(record, containers, hosts)
    assert [c.name for c in p.start] == [HISTORY0]
    (spec,) = p.start
    assert (spec.role, spec.index, spec.artifact, spec.config_hash) == ("history", 0, "/a", history_hash("k1"))
    assert (spec.cpu, spec.memory_mb, spec.max_cpu, spec.max_memory_mb, spec.gpu) == \
        (HISTORY_CPU, HISTORY_MEMORY_MB, HISTORY_CPU, HISTORY_MEMORY_MB, 0)
    assert p.status["phase"] == "READY" and p.status["reason"] is None
    assert p.status["history"] == {"enabled": True, "ready": False, "ui_url": None}


def test_registered_history_server_is_ready_in_the_status() -> None:
    record = spec_record(**ON)
    containers, hosts = cluster(chash(record))
    hhash = history_hash("k1")
    p = run(record, containers + [history_container(hhash)], hosts + [history_host(hhash)])
    assert (p.start, p.stop) == ([], [])
    assert p.status["phase"] == "READY"
    assert p.status["history"] == {"enabled": True, "ready": True, "ui_url": HIST_UI}


@pytest.mark.parametrize(("host_ready", "host_hash"), [(False, "same"), (True, "old")], ids=["unready", "stale"])
def test_unready_or_stale_history_record_is_not_ready(host_ready: bool, host_hash: str) -> None:
    record = spec_record(**ON)
    containers, hosts = cluster(chash(record))
    hhash = history_hash("k1")
    p = run(record, containers + [history_container(hhash)],
            hosts + [history_host(hhash if host_hash == "same" else "old", ready=host_ready)])
    assert p.status["history"]["ready"] is False and p.start == []


def test_disabled_history_is_never_started_and_a_running_one_stops() -> None:
    record = spec_record()
    containers, hosts = cluster(chash(record))
    p = run(record, containers, hosts)
    assert (p.start, p.stop) == ([], []) and p.status["history"] == {"enabled": False, "ready": False, "ui_url": None}
    hhash = history_hash("k1")
    p = run(record, containers + [history_container(hhash)], hosts + [history_host(hhash)])
    assert (p.start, p.stop) == ([], [HISTORY0])
    assert p.status["phase"] == "READY"


def test_conf_change_restarts_the_compute_containers_but_not_the_history_server() -> None:
    old = spec_record(**ON)
    containers, hosts = cluster(chash(old))
    hhash = history_hash("k1")
    new = spec_record(generation=2, spark_conf={"spark.executor.memory": "4g"}, **ON)
    p = run(new, containers + [history_container(hhash)], hosts + [history_host(hhash)], build_record(generation=2),
            {"phase": "READY", "observed_generation": 1})
    assert HISTORY0 not in p.stop and sorted(p.stop) == sorted(c.name for c in containers)


def test_new_build_restarts_the_history_server() -> None:
    record = spec_record(generation=2, **ON)
    containers, hosts = cluster(chash(record, "k2"))
    old = history_hash("k1")
    p = run(record, containers + [history_container(old)], hosts + [history_host(old)], build_record(generation=2, key="k2"))
    assert p.stop == [HISTORY0]
    assert [(c.name, c.config_hash) for c in p.start] == [(HISTORY0, history_hash("k2"))]


def test_building_keeps_the_history_server_and_its_status() -> None:
    record = spec_record(generation=2, **ON)
    previous = {"phase": "READY", "observed_generation": 1, "history": {"enabled": True, "ready": True, "ui_url": HIST_UI}}
    containers, hosts = cluster("c")
    p = run(record, containers + [history_container("h")], hosts, build_record(generation=1), previous)
    assert (p.start, p.stop) == ([], [])
    assert p.status["phase"] == "UPDATING" and p.status["history"] == previous["history"]


def test_delete_stops_the_history_server_and_forgets_only_after_it_is_gone() -> None:
    record = spec_record(deleting=True, **ON)
    containers, _ = cluster("c")
    p = run(record, containers + [history_container("h")], [])
    assert sorted(p.stop) == sorted([c.name for c in containers] + [HISTORY0]) and not p.forget
    p = run(record, [history_container("h")], [])
    assert p.stop == [HISTORY0] and not p.forget
    assert run(record, [], []).forget


@pytest.mark.parametrize(("history", "members", "usage"), [
    ({}, (0, 1), (3, 6, 6144)),
    ({"enabled": False}, (0,), (2, 4, 4096)),
    ({"enabled": True}, (0, 1), (3 + 1, 6 + HISTORY_CPU, 6144 + HISTORY_MEMORY_MB)),
    ({"enabled": True}, (), (1 + 1, 2 + HISTORY_CPU, 2048 + HISTORY_MEMORY_MB)),
])
def test_history_server_counts_toward_the_quota(history: dict[str, Any], members: tuple[int, ...],
                                               usage: tuple[int, int, int]) -> None:
    spec = spec_record(history=history)["spec"]
    assert sig_usage(spec, members) == usage
