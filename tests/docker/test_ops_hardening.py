"""Hardening on the compose stack: a SIG container reaches only its own Redis keys (its own ACL
user) while its agent works; the scaler removes containers and networks of SIGs whose state
is gone from etcd (the orphan sweep)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.docker.conftest import SPARK, STACK, Compose, sh

pytestmark = pytest.mark.docker

SPEC = {"name": "ops", "spark_version": SPARK, "resources": {"cpu": 1, "memory_mb": 1024, "max_cpu": 2, "max_memory_mb": 2048},
        "scaling": {"min_workers": 1, "max_workers": 1}}
JOB = """
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("ops").getOrCreate()
print(f"RESULT {spark.sparkContext.parallelize(range(10), 2).sum()}")  # one write
spark.stop()
"""

# Run inside a SIG container with its own environment: what a tenant's job can do with Redis.
REDIS_PROBE = """
import json, os, sys, redis
from urllib.parse import urlsplit
url = os.environ["SPAAS_REDIS_URL"]
r = redis.Redis.from_url(url, socket_timeout=5)
t, s = os.environ["SPAAS_TENANT"], os.environ["SPAAS_SIG"]
out = {"user": urlsplit(url).username}
def attempt(name, call):
    try:
        call()
        out[name] = "ok"
    except redis.RedisError as exc:
        out[name] = "denied: " + str(exc)
attempt("own demand", lambda: r.get(f"spaas:demand:{t}/{s}"))
attempt("other demand", lambda: r.get("spaas:demand:other/sig"))
attempt("write other demand", lambda: r.set("spaas:demand:other/sig", "{}"))
attempt("login counters", lambda: r.get(sys.argv[1]))
attempt("reset login counters", lambda: r.delete(sys.argv[1]))
attempt("other queue", lambda: r.lpush("spaas.apps.other.sig", "x"))
attempt("build queue", lambda: r.lpush("spaas.builds", "x"))
attempt("read scaler queue", lambda: r.lrange("spaas.scaler", 0, -1))
attempt("bindings", lambda: r.smembers("_kombu.binding.spaas.events"))
attempt("keys", lambda: r.keys("*"))
attempt("flushall", lambda: r.flushall())
attempt("no credentials", lambda: redis.Redis.from_url(url.split("@")[0].split("//")[0] + "//" + url.split("@")[1]).get("x"))
print(json.dumps(out))
"""


def redis_cli(compose: Compose, *args: str) -> str:
    return compose.run("exec", "-T", "redis", "redis-cli", "--no-auth-warning", *args).strip()


def test_a_sig_container_reaches_only_its_own_redis_keys_while_its_agent_works(compose: Compose) -> None:
    api = compose.api
    if api.call("GET", "/tenants/ops").status_code == 404:
        api.ok("POST", "/tenants", 201, json={"name": "ops"})
    api.ok("POST", "/tenants/ops/sigs", 202, json=SPEC)
    api.wait_phase("ops", "ops", "READY", timeout_s=600)
    app_id = api.submit("ops", "ops", file=api.upload("ops", "ops", "job.py", JOB))
    app = api.wait_app("ops", "ops", app_id, timeout_s=300)
    log = "\n".join(api.log("ops", "ops", app_id))
    assert app["state"] == "FINISHED" and "RESULT 45" in log, log[-3000:]

    counter = "spaas:login-failures/spaas:user:alice"
    redis_cli(compose, "SET", counter, "3")
    redis_cli(compose, "SET", "spaas:demand:other/sig", '{"x": 1}')
    master = f"{STACK}-ops-ops-master-0"
    env = compose.inspect(master)["Config"]["Env"]
    assert not any(compose.redis_password in item for item in env)  # the platform password is not there
    proc = subprocess.run(["docker", "exec", master, "/opt/spaas/venv/bin/python", "-c", REDIS_PROBE, counter],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["user"] == "spaas.sig.ops.ops" and seen["own demand"] == "ok", seen
    for name in ("other demand", "write other demand", "login counters", "reset login counters", "other queue",
                 "build queue", "read scaler queue", "bindings", "keys", "flushall"):
        assert seen[name].startswith("denied: ") and "permission" in seen[name], (name, seen)
    assert "denied: " in seen["no credentials"] and "auth" in seen["no credentials"].lower(), seen
    assert redis_cli(compose, "GET", counter) == "3" and redis_cli(compose, "GET", "spaas:demand:other/sig") == '{"x": 1}'


def test_the_scaler_removes_containers_and_network_of_a_sig_whose_state_was_wiped(compose: Compose) -> None:
    assert compose.containers(tenant="ops", sig="ops"), "the previous test leaves ops/ops running"
    assert "spaas.sig.ops.ops" in redis_cli(compose, "ACL", "USERS")
    # As after `docker-compose down -v`: the SIG's records are gone from etcd, its containers are not.
    code = ("import base64,json,urllib.request as u,sys;b=lambda x:base64.b64encode(x.encode()).decode();"
            "E='http://127.0.0.1:2379/v3/';"
            "t=json.load(u.urlopen(u.Request(E+'auth/authenticate',json.dumps({'name':'root','password':sys.argv[1]}).encode())))['token'];"
            "[u.urlopen(u.Request(E+'kv/deleterange',json.dumps({'key':b(p),'range_end':b(p[:-1]+chr(ord(p[-1])+1))}).encode(),"
            "{'Authorization':t})) for p in ('/spaas/sigs/ops/ops/','/spaas/apps/ops/ops/','/spaas/hosts/ops/ops/')]")
    compose.run("exec", "-T", "etcd", "python3", "-c", code, compose.etcd_root_password)
    compose.api.wait("orphan containers removed", lambda: compose.containers(tenant="ops", sig="ops") == [],
                     timeout_s=120)
    compose.api.wait("orphan network removed",
                     lambda: f"{STACK}-ops-ops" not in sh("docker", "network", "ls", "--format", "{{.Name}}").split(),
                     timeout_s=60)
    compose.api.wait("its redis user removed", lambda: "spaas.sig.ops.ops" not in redis_cli(compose, "ACL", "USERS"),
                     timeout_s=30)


def test_one_command_uninstalls_the_platform_sig_containers_networks_volumes_and_sig_images(compose: Compose) -> None:
    api = compose.api
    api.ok("POST", "/tenants/ops/sigs", 202, json=dict(SPEC, name="again"))
    api.wait_phase("ops", "again", "READY", timeout_s=600)
    assert compose.containers(tenant="ops", sig="again")
    out = sh(str(compose_root() / "deploy/uninstall.sh"), "--keep-base-images", env=compose.env, timeout=300)
    assert "removing SIG containers" in out and "done" in out
    assert compose.containers() == []
    assert sh("docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={STACK}").split() == []
    assert sh("docker", "network", "ls", "-q", "--filter", f"label=spaas.stack={STACK}").split() == []
    nets = sh("docker", "network", "ls", "--format", "{{.Name}}").split()
    assert f"{STACK}-platform" not in nets
    volumes = sh("docker", "volume", "ls", "--format", "{{.Name}}").split()
    assert [v for v in volumes if v.startswith(STACK)] == []
    assert sh("docker", "images", "-q", "--filter", "label=spaas.build_key").split() == []
    compose.start()  # later test files share the session's stack


def compose_root() -> Path:
    return Path(__file__).resolve().parents[2]
