"""Table tests for notebook servers in the scaler's plan (`services.scaler.reconcile.plan`):
started on a user's demand once the SIG runs, one per user, culled when idle, stopped when
notebooks are turned off, held back by the tenant's quota."""

from __future__ import annotations

from typing import Any

import pytest

from services.scaler.reconcile import Plan, SigView, plan
from spaas import notebooks as nb
from spaas.runtimes.base import Container

from tests.scaler.test_reconcile import SIG, TENANT, build_record, chash, cluster, spec_record

NOW = 10_000.0
ALICE = nb.container_name(TENANT, SIG, "alice")
BOB = nb.container_name(TENANT, SIG, "bob")


def on(idle: int = 60, **fields: Any) -> dict[str, Any]:
    return spec_record(notebooks={"jupyter": {"enabled": True, "idle_timeout_s": idle}}, **fields)


def nb_container(name: str, config: str) -> Container:
    return Container(name=name, tenant=TENANT, sig=SIG, role=nb.ROLE, index=0, config_hash=config,
                     generation=1, running=True)


def nb_host(name: str, config: str, *, ready: bool = True, last_activity: float | None = None) -> dict[str, Any]:
    return {"host": name, "role": nb.ROLE, "config_hash": config, "ready": ready, "ip": "127.0.0.1",
            "ports": {"ui": 9999}, "last_activity": last_activity}


def run(spec: dict[str, Any], demands: dict[str, dict[str, Any]], *, extra: list[Container] = (),
        extra_hosts: list[dict[str, Any]] = (), room: int | None = None, master: bool = True,
        build: dict[str, Any] | None = None) -> Plan:
    containers, hosts = cluster(chash(spec), hosts=master)
    return plan(SigView(TENANT, SIG, spec, build or build_record(), None), containers + list(extra),
                hosts + list(extra_hosts), now=NOW, notebooks=demands, notebook_room=room)


def servers(p: Plan) -> dict[str, str]:
    return {s["user"]: s["state"] for s in p.status["notebooks"]["servers"]}


def test_a_users_demand_starts_their_own_server_with_the_sigs_build_and_config() -> None:
    spec = on()
    p = run(spec, {"alice": {"requested_at": NOW - 1}})
    assert [(c.name, c.role, c.config_hash, c.artifact, c.env) for c in p.start] == [
        (ALICE, "notebook", chash(spec), "/a", {"SPAAS_NOTEBOOK_USER": "alice"})]
    assert p.stop == [] and servers(p) == {"alice": "starting"}
    assert p.status["phase"] == "READY"  # notebooks never hold the SIG's phase back
    assert p.status["notebooks"]["servers"][0]["url"] == f"/sig/{TENANT}/{SIG}/notebooks/alice/"


def test_names_are_deterministic_per_folded_user_and_safe_as_host_names() -> None:
    assert nb.container_name(TENANT, SIG, "Alice") == ALICE != BOB
    long = nb.container_name("t" * 24, "s" * 24, "Some.Body@Example.ORG")
    assert len(long) <= 63 and long.replace("-", "").isalnum()


@pytest.mark.parametrize("master,build,state", [
    (False, None, "waiting"),                                               # no master yet
    (True, build_record(state="BUILDING", generation=1, key="k1"), "waiting"),  # build in flight
])
def test_nothing_starts_before_the_sig_runs(master: bool, build: dict[str, Any] | None, state: str) -> None:
    p = run(on(), {"alice": {"requested_at": NOW}}, master=master, build=build)
    assert p.start == [] and servers(p) == {"alice": state}


def test_a_registered_server_is_ready_and_left_running() -> None:
    spec = on()
    p = run(spec, {"alice": {"requested_at": NOW - 5, "last_activity": NOW - 2}},
            extra=[nb_container(ALICE, chash(spec))], extra_hosts=[nb_host(ALICE, chash(spec))])
    assert p.start == [] and p.stop == [] and p.forget_notebooks == [] and servers(p) == {"alice": "ready"}


@pytest.mark.parametrize("proxy_seen,jupyter_seen,culled", [
    (NOW - 61, None, True),          # no request through the proxy for longer than the timeout
    (NOW - 59, None, False),
    (NOW - 300, NOW - 10, False),    # the kernel was busy (Jupyter's own last activity) lately
    (NOW - 300, NOW - 100, True),
])
def test_idle_servers_are_culled_and_their_demand_forgotten(proxy_seen: float, jupyter_seen: float | None,
                                                            culled: bool) -> None:
    spec = on(idle=60)
    p = run(spec, {"alice": {"requested_at": NOW - 1000, "last_activity": proxy_seen}},
            extra=[nb_container(ALICE, chash(spec))],
            extra_hosts=[nb_host(ALICE, chash(spec), last_activity=jupyter_seen)])
    assert (p.stop, p.forget_notebooks, servers(p)) == (
        ([ALICE], ["alice"], {}) if culled else ([], [], {"alice": "ready"}))


def test_a_server_without_demand_is_stopped() -> None:
    spec = on()
    p = run(spec, {}, extra=[nb_container(BOB, chash(spec))])
    assert p.stop == [BOB] and p.start == []


def test_a_config_change_restarts_the_server() -> None:
    spec = on()
    p = run(spec, {"alice": {"requested_at": NOW}}, extra=[nb_container(ALICE, "old")],
            extra_hosts=[nb_host(ALICE, "old")])
    assert p.stop == [ALICE] and [c.name for c in p.start] == [ALICE]


def test_turning_notebooks_off_stops_every_server_and_forgets_demand() -> None:
    spec = spec_record()
    p = run(spec, {"alice": {"requested_at": NOW}}, extra=[nb_container(ALICE, chash(spec))])
    assert p.stop == [ALICE] and p.forget_notebooks == ["alice"]
    assert p.status["notebooks"] == {"enabled": False, "servers": []}


def test_quota_room_limits_how_many_start() -> None:
    p = run(on(), {"alice": {"requested_at": NOW}, "bob": {"requested_at": NOW}}, room=1)
    assert [c.name for c in p.start] == [ALICE] and servers(p) == {"alice": "starting", "bob": "quota"}


def test_deleting_the_sig_stops_notebook_servers_too() -> None:
    spec = on()
    spec["deleting"] = True
    p = run(spec, {"alice": {"requested_at": NOW}}, extra=[nb_container(ALICE, chash(spec))])
    assert ALICE in p.stop and not p.forget
