"""End to end with a warm pool of one skeleton (process runtime): a new SIG is deployed on a
pre-started Spark master + worker, runs a PySpark batch application, another tenant's SIG gets a
fresh skeleton (never the first one's), and the pool refills."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.stack import Stack, free_port

from tests.e2e.conftest import JOB, Api, admin_client

pytestmark = pytest.mark.e2e

SPARK = "3.5.9"
KEYS = Keys()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("pool-platform")
    stack = Stack(state_dir=state, api_port=free_port(), registry_port=free_port(),
                  layers_dir=Path.home() / ".cache" / "spaas" / "layers",
                  extra_env={"SPAAS_RESYNC_S": "1", "SPAAS_WARM_POOL_SIZE": "1", "SPAAS_HISTORY_DEFAULT": "false"})
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def api(platform: Stack) -> Api:
    return admin_client(platform)


def ready_skeleton(store: EtcdStore) -> tuple[str, dict[str, Any]] | None:
    """(id, its master's host record) of a pooled skeleton whose master and worker are registered."""
    by_skel: dict[str, list[dict[str, Any]]] = {}
    for e in store.list(KEYS.all_pool_hosts()):
        by_skel.setdefault(e.key[len(KEYS.all_pool_hosts()):].split("/")[0], []).append(e.value)
    claimed = {e.key[len(KEYS.pool_claims()):] for e in store.list(KEYS.pool_claims())}
    for skel, hosts in sorted(by_skel.items()):
        master = next((h for h in hosts if h.get("role") == "master" and h.get("ready")), None)
        if skel not in claimed and master and any(h.get("role") == "worker" and h.get("ready") for h in hosts):
            return skel, master
    return None


def test_a_sig_claims_a_pooled_skeleton_runs_an_app_and_the_pool_refills(api: Api, platform: Stack) -> None:
    store = EtcdStore(platform.etcd_url)
    api.create_tenant("poola")
    api.create_tenant("poolb")
    # The first SIG of a Spark version starts cold: the pool learns of the version from its build.
    api.create_sig("poola", {"name": "first", "spark_version": SPARK})
    api.wait_phase("poola", "first", "READY")
    skel, pooled_master = api.wait("a ready pooled skeleton", lambda: ready_skeleton(store), timeout_s=300)

    created = time.time()
    api.create_sig("poola", {"name": "etl", "spark_version": SPARK})
    sig = api.wait_phase("poola", "etl", "READY", timeout_s=120)
    # Claimed: the SIG's master is the pooled one, started before the SIG existed.
    assert sig["status"]["master_url"] == pooled_master["spark_url"]
    assert pooled_master["registered_at"] < created
    claim = store.get(KEYS.pool_claim(skel))
    assert claim is not None and claim.value["tenant"] == "poola" and claim.value["sig"] == "etl"
    assert claim.value["state"] == "claimed"
    assert sig["status"]["workers"]["ready"] == 1
    # The SIG adopted the skeleton's secret (never another SIG's; the pool's copy is gone).
    secret = store.get(KEYS.secret("poola", "etl"))
    assert secret is not None and secret.value["adopted_from"] == skel
    assert store.get(KEYS.pool_secret(skel)) is None
    first_secret = store.get(KEYS.secret("poola", "first"))
    assert first_secret is not None and first_secret.value["secret"] != secret.value["secret"]

    path = api.upload("poola", "etl", "job.py", JOB)
    app_id = api.submit("poola", "etl", file=path, args=["pooled"], name="sum")
    app = api.wait_app("poola", "etl", app_id, timeout_s=300)
    assert app["state"] == "FINISHED", app
    assert any("RESULT total=1001000" in line for line in api.log("poola", "etl", app_id))

    # The pool refills with a new skeleton; the other tenant's SIG gets that one, not the first.
    skel2, master2 = api.wait("the pool to refill",
                              lambda: (r := ready_skeleton(store)) and r[0] != skel and r, timeout_s=300)
    api.create_sig("poolb", {"name": "other", "spark_version": SPARK})
    other = api.wait_phase("poolb", "other", "READY", timeout_s=120)
    assert other["status"]["master_url"] == master2["spark_url"] != sig["status"]["master_url"]
    claim2 = store.get(KEYS.pool_claim(skel2))
    assert claim2 is not None and (claim2.value["tenant"], claim2.value["sig"]) == ("poolb", "other")
    # Nothing of tenant A's: its claim still names A, and B sees only its own SIG.
    claim = store.get(KEYS.pool_claim(skel))
    assert claim is not None and claim.value["tenant"] == "poola"
    assert [s["name"] for s in api.list_sigs("poolb")] == ["other"]

    # A deleted SIG's skeleton is stopped for good, never back in the pool.
    api.delete_sig("poola", "etl")
    api.wait_gone("poola", "etl")
    api.wait("the claimed skeleton's records to go", lambda: store.get(KEYS.pool_claim(skel)) is None, timeout_s=120)
    assert all(e.key.split("/")[-2] != skel for e in store.list(KEYS.all_pool_hosts()))
