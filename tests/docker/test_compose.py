"""SIGs as images and containers on Docker, through the compose stack's API (the issue's "done when").

The tests run in order and share the stack: tenant `alpha` keeps its SIG `etl` from the first
test to the last; `beta` makes SIGs that share or differ from it.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from tests.docker.conftest import SPARK, STACK, Compose, sh

pytestmark = pytest.mark.docker

RESOURCES = {"cpu": 1, "memory_mb": 1024, "max_cpu": 2, "max_memory_mb": 2048}
SPEC = {"name": "etl", "spark_version": SPARK, "python_packages": ["toolz==0.12.1"],
        "resources": RESOURCES, "scaling": {"min_workers": 1, "max_workers": 1}}
JOB = """
import toolz
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("docker").getOrCreate()
total = spark.sparkContext.parallelize(range(1, 1001), 4).map(lambda x: x * 2).sum()
print(f"RESULT total={total} spark.version={spark.version} toolz={toolz.__version__}")
spark.stop()
"""
STATE: dict[str, Any] = {}


def tenant(compose: Compose, name: str) -> None:
    compose.ensure_tenant(name)


def image(ref: str) -> dict[str, Any]:
    return dict(json.loads(sh("docker", "image", "inspect", ref))[0])


def build(compose: Compose, t: str, s: str) -> dict[str, Any]:
    b = dict(compose.api.sig(t, s)["status"].get("build") or {})
    if b.get("key"):
        b["artifact"] = f"spaas-sig:{b['key']}"
    return b


def wait_built(compose: Compose, t: str, s: str) -> dict[str, Any]:
    return dict(compose.api.wait(f"{t}/{s} built", lambda: (b := build(compose, t, s)).get("state") == "SUCCEEDED" and b
                                 or (b.get("state") == "FAILED" and pytest.fail(f"build failed: {b}")), timeout_s=600))


def running(compose: Compose, t: str, s: str) -> list[dict[str, Any]]:
    return [c for c in compose.containers(tenant=t, sig=s) if c["State"] == "running"]


def test_a_sig_is_built_into_an_image_and_runs_pyspark_in_containers(compose: Compose) -> None:
    api = compose.api
    tenant(compose, "alpha")
    api.ok("POST", "/tenants/alpha/sigs", 202, json=SPEC)
    view = api.wait_phase("alpha", "etl", "READY", timeout_s=600)
    b = build(compose, "alpha", "etl")
    ref = f"spaas-sig:{b['key']}"  # the artifact: the image tagged by build key
    labels = image(ref)["Config"]["Labels"]
    assert labels["spaas.build_key"] == b["key"] and labels["spaas.tenant"] == "alpha" and labels["spaas.sig"] == "etl"
    # One master and one worker container, on the SIG's own network, from that image.
    names = sorted(c["Names"] for c in running(compose, "alpha", "etl"))
    assert names == [f"{STACK}-alpha-etl-master-0", f"{STACK}-alpha-etl-worker-0"]
    for name in names:
        info = compose.inspect(name)
        assert info["Config"]["Image"] == ref
        assert f"{STACK}-alpha-etl" in info["NetworkSettings"]["Networks"]
        assert info["HostConfig"]["Memory"] == 2048 * 2**20 and info["HostConfig"]["NanoCpus"] == 2 * 10**9
    assert view["status"]["master_url"].startswith("spark://")
    path = api.upload("alpha", "etl", "job.py", JOB)
    app_id = api.submit("alpha", "etl", file=path)
    app = api.wait_app("alpha", "etl", app_id, timeout_s=300)
    log = "\n".join(api.log("alpha", "etl", app_id))
    assert app["state"] == "FINISHED", log[-3000:]
    assert f"RESULT total=1001000 spark.version={SPARK} toolz=0.12.1" in log
    STATE.update(app_id=app_id, image=ref, key=b["key"])


def test_same_spec_or_conf_only_change_makes_no_new_image_packages_rebuild_one_layer(compose: Compose) -> None:
    api = compose.api
    tenant(compose, "beta")
    small = dict(SPEC, scaling={"min_workers": 0, "max_workers": 1})
    api.ok("POST", "/tenants/beta/sigs", 202, json=dict(small, name="same"))
    api.ok("POST", "/tenants/beta/sigs", 202, json=dict(small, name="conf", spark_conf={"spark.sql.shuffle.partitions": "3"}))
    api.ok("POST", "/tenants/beta/sigs", 202, json=dict(small, name="pkgs", python_packages=["toolz==0.12.1", "six==1.16.0"]))
    same, conf, pkgs = (wait_built(compose, "beta", s) for s in ("same", "conf", "pkgs"))
    assert same["artifact"] == conf["artifact"] == STATE["image"]
    assert same.get("cache_hit") and conf.get("cache_hit")
    assert pkgs["artifact"] != STATE["image"] and not pkgs.get("cache_hit")
    # Only the package layer differs: both sit on every layer of the Spark image.
    spark_layers = image(f"spaas-spark:{SPARK}")["RootFS"]["Layers"]
    for ref in (STATE["image"], pkgs["artifact"]):
        layers = image(ref)["RootFS"]["Layers"]
        assert layers[:len(spark_layers)] == spark_layers and len(layers) == len(spark_layers) + 1
    log = "\n".join(api.ok("GET", "/tenants/beta/sigs/pkgs/build/log?size=10000")["log"])
    assert "six-1.16.0" in log, log[-3000:]
    assert "Collecting pyspark" not in log and "Downloading pyspark" not in log
    for s in ("conf", "pkgs"):
        api.ok("DELETE", f"/tenants/beta/sigs/{s}", 202)
    for s in ("conf", "pkgs"):
        api.wait_gone("beta", s, timeout_s=180)
    # The packages image was beta/pkgs' alone: it goes with it; the shared one stays.
    assert subprocess.run(["docker", "image", "inspect", pkgs["artifact"]], capture_output=True).returncode != 0
    image(STATE["image"])


def test_a_killed_worker_is_replaced_and_registered_within_30s(compose: Compose) -> None:
    name = f"{STACK}-alpha-etl-worker-0"
    old = compose.inspect(name)["Id"]
    killed_at = time.time()
    sh("docker", "kill", name)

    def replaced() -> bool:
        try:
            info = compose.inspect(name)
        except AssertionError:
            return False
        if info["Id"] == old or not info["State"]["Running"]:
            return False
        hosts = compose.etcd_prefix("/spaas/hosts/alpha/etl/alpha-etl-worker-0")
        return any(h.get("ready") and h.get("registered_at", 0) > killed_at for h in hosts)

    compose.api.wait("a new registered worker", replaced, timeout_s=30, interval_s=0.5)
    print(f"worker replaced and registered in {time.time() - killed_at:.1f}s")
    compose.api.wait_phase("alpha", "etl", "READY", timeout_s=60)


def _connect(container: str, url: str) -> subprocess.CompletedProcess[str]:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    code = f"import socket; socket.create_connection(({host!r}, {int(port)}), timeout=3).close(); print('connected')"
    return subprocess.run(["docker", "exec", container, "/opt/spaas/venv/bin/python", "-c", code],
                          capture_output=True, text=True, timeout=30)


def test_tenants_cannot_reach_each_others_spark_master(compose: Compose) -> None:
    api = compose.api
    # beta/same has no workers yet; give it one so both tenants have a worker container.
    spec = api.sig("beta", "same")["spec"]
    api.ok("PUT", "/tenants/beta/sigs/same", 202, json=dict(spec, scaling={"min_workers": 1, "max_workers": 1}))
    beta = api.wait_phase("beta", "same", "READY", timeout_s=300)
    alpha = api.sig("alpha", "etl")
    own = _connect(f"{STACK}-alpha-etl-worker-0", alpha["status"]["master_url"])
    assert own.returncode == 0 and "connected" in own.stdout, own.stderr
    for container, url in ((f"{STACK}-beta-same-worker-0", alpha["status"]["master_url"]),
                           (f"{STACK}-alpha-etl-worker-0", beta["status"]["master_url"])):
        other = _connect(container, url)
        assert other.returncode != 0 and "connected" not in other.stdout, f"{container} reached {url}"


# Run inside a SIG container with its own environment (SPAAS_ETCD_USER/PASSWORD set by the scaler):
# what the code of a tenant's job can do with etcd.
ETCD_PROBE = """
import json, sys
from spaas.etcd import EtcdForbidden, EtcdStore
from spaas.keys import Keys
from spaas.settings import AgentSettings
settings = AgentSettings.from_env()
store, keys = EtcdStore.from_settings(settings), Keys(settings.etcd_prefix)
out = {"user": settings.etcd_user}
def attempt(name, call):
    try:
        call()
        out[name] = "ok"
    except EtcdForbidden as exc:
        out[name] = "denied: " + exc.message
attempt("own secret", lambda: store.get(keys.secret(settings.tenant, settings.sig)))
attempt("own spec", lambda: store.get(keys.sig_spec(settings.tenant, settings.sig)))
attempt("other secret", lambda: store.get(keys.secret(sys.argv[1], sys.argv[2])))
attempt("other spec", lambda: store.get(keys.sig_spec(sys.argv[1], sys.argv[2])))
attempt("list all", lambda: store.list(keys.prefix + "/"))
attempt("grant admin", lambda: store.put(keys.member(settings.tenant, "user", "mallory"), {"roles": ["cluster_admin"]}))
attempt("no credentials", lambda: EtcdStore(settings.etcd_url).get(keys.secret(sys.argv[1], sys.argv[2])))
print(json.dumps(out))
"""


def test_a_sig_container_reaches_only_its_own_sigs_etcd_keys(compose: Compose) -> None:
    api = compose.api
    api.wait_phase("alpha", "etl", "READY", timeout_s=120)
    # beta/same was just changed (a new generation that reuses its build): READY again shortly.
    api.wait_phase("beta", "same", "READY", timeout_s=120)
    assert api.app("alpha", "etl", STATE["app_id"])["state"] == "FINISHED"  # ran with the SIG's etcd user
    for container, other in ((f"{STACK}-alpha-etl-master-0", ("beta", "same")),
                             (f"{STACK}-beta-same-worker-0", ("alpha", "etl"))):
        proc = subprocess.run(["docker", "exec", container, "/opt/spaas/venv/bin/python", "-c", ETCD_PROBE, *other],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]
        seen = json.loads(proc.stdout.strip().splitlines()[-1])
        assert seen["user"].startswith("spaas.sig.") and seen["own secret"] == "ok" and seen["own spec"] == "ok", seen
        for attempt in ("other secret", "other spec", "list all", "grant admin"):
            assert seen[attempt].startswith("denied: ") and "permission denied" in seen[attempt], (container, seen)
        assert "requires authentication" in seen["no credentials"], seen
    assert compose.etcd_prefix("/spaas/members/alpha/user/mallory") == []


def test_deleting_a_sig_removes_its_containers_and_network_not_other_tenants(compose: Compose) -> None:
    api = compose.api
    api.ok("DELETE", "/tenants/beta/sigs/same", 202)
    api.wait_gone("beta", "same", timeout_s=180)
    assert compose.containers(tenant="beta", sig="same") == []
    nets = sh("docker", "network", "ls", "--format", "{{.Name}}").split()
    assert f"{STACK}-beta-same" not in nets and f"{STACK}-alpha-etl" in nets
    assert len(running(compose, "alpha", "etl")) == 2
    assert api.sig("alpha", "etl")["status"]["phase"] == "READY"
    image(STATE["image"])  # still used by alpha/etl


def test_state_survives_compose_down_and_up(compose: Compose) -> None:
    api = compose.api
    compose.run("down", "--timeout", "20")
    compose.up()
    view = api.wait_phase("alpha", "etl", "READY", timeout_s=300)
    assert view["status"]["build_key"] == STATE["key"]
    app = api.app("alpha", "etl", STATE["app_id"])
    assert app["state"] == "FINISHED"
    assert any("RESULT total=1001000" in line for line in api.log("alpha", "etl", STATE["app_id"]))
