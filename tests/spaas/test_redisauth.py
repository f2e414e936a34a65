"""Redis ACLs per SIG (spaas/redisauth.py) against a real redis-server that requires a password:
a SIG's user runs a real kombu consumer and publisher (the agent's bus, `confined=True`) and
reports demand, and is refused everything else."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from spaas import messages
from spaas.bus import RedisBus
from spaas.demand import Demand, RedisDemandStore
from spaas.keys import Keys
from spaas.redisauth import SigRedisAccess, sig_password, sig_rules, url_password, url_with_user, without_credentials
from spaas.stack import free_port, start_redis, stop_pid

PASSWORD = "platform-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def platform_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("authredis")
    port = free_port()
    proc = start_redis(work / "data", port, work / "redis.log", password=PASSWORD)
    yield f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    stop_pid(proc.pid)


def denied(call: object) -> bool:
    try:
        call()  # type: ignore[operator]
    except redis.exceptions.NoPermissionError:
        return True
    except redis.exceptions.ResponseError as exc:
        return "NOPERM" in str(exc)
    return False


def test_url_helpers_and_rules_are_pure() -> None:
    url = "redis://:s3cr%2Ft@redis:6379/0"
    assert url_password(url) == "s3cr/t"
    assert without_credentials(url) == "redis://redis:6379/0"
    assert url_with_user(url, "spaas.sig.a.b", "p w") == "redis://spaas.sig.a.b:p%20w@redis:6379/0"
    keys = Keys("/spaas")
    assert sig_password("x", keys, "a", "b") == sig_password("x", keys, "a", "b") != sig_password("x", keys, "a", "c")
    rules = " ".join(sig_rules("acme", "etl"))
    assert "~spaas.apps.acme.etl " in rules and "~spaas.apps.acme.etl\x06\x16*" in rules and "~*" not in rules
    assert "+@all" not in rules and "&" not in rules  # no pub/sub channel at all


def test_without_a_platform_password_sig_containers_share_the_platform_url() -> None:
    access = SigRedisAccess("redis://127.0.0.1:1/0", Keys("/spaas"))
    assert not access.enabled and access.ensure("a", "b") == {"SPAAS_REDIS_URL": "redis://127.0.0.1:1/0"}


def test_a_sig_user_runs_its_agent_bus_and_reaches_nothing_else(platform_url: str, tmp_path: Path) -> None:
    keys = Keys("/spaas")
    access = SigRedisAccess(platform_url, keys)
    platform = redis.Redis.from_url(platform_url)
    platform.set("spaas:login-failures/spaas:user:alice", 3)
    platform.set("spaas:demand:beta/other", "{}")
    platform.rpush("spaas:log:build:sig:beta/other/1", "secret line")
    assert denied_or_noauth(lambda: redis.Redis.from_url(without_credentials(platform_url)).get("x"))

    env = access.ensure("acme", "etl")
    env_again = access.ensure("acme", "etl")  # every pass re-applies it: same user, same password
    assert env == env_again and "spaas.sig.acme.etl:" in env["SPAAS_REDIS_URL"] and PASSWORD not in env["SPAAS_REDIS_URL"]
    sig_url = env["SPAAS_REDIS_URL"]
    user = platform.execute_command("ACL", "GETUSER", "spaas.sig.acme.etl")
    assert len(dict(zip(user[::2], user[1::2]))[b"selectors"]) == 2  # re-applying does not pile them up

    # The scaler declares the agent's queue; the scaler's own consumer declares its queue.
    platform_bus = RedisBus(platform_url)
    platform_bus.declare_queue(messages.agent_queue("acme", "etl"), ["app.acme.etl"])
    platform_bus.declare_queue(messages.agent_queue("beta", "other"), ["app.beta.other"])
    platform_bus.declare_queue(messages.SCALER_QUEUE, [messages.HostChanged.type, messages.DemandChanged.type])

    # The agent's bus as the SIG user: receives its app events, sends hints to the scaler.
    agent_bus = RedisBus(sig_url, confined=True)
    got: list[messages.Event] = []
    stop = threading.Event()
    consumer = threading.Thread(target=agent_bus.consume, args=(messages.agent_queue("acme", "etl"), ["app.acme.etl"],
                                                                got.append), kwargs={"stop": stop, "idle_s": 0.2})
    consumer.start()
    try:
        deadline = time.monotonic() + 15
        while not got and time.monotonic() < deadline:
            platform_bus.publish(messages.AppEvent(tenant="acme", sig="etl", app_id="a1"))
            time.sleep(0.5)
        assert got and got[0].type == "app" and got[0].sig == "etl"  # type: ignore[attr-defined]
    finally:
        stop.set()
        consumer.join(10)
    agent_bus.publish(messages.HostChanged(tenant="acme", sig="etl", host="m"))
    hints: list[messages.Event] = []
    stop = threading.Event()
    platform_bus.consume(messages.SCALER_QUEUE, [messages.HostChanged.type],
                         lambda e: (hints.append(e), stop.set()), stop=stop, idle_s=0.2, on_idle=lambda: stop.set())
    assert [(e.type, e.sig) for e in hints] == [("sig.host", "etl")]
    RedisDemandStore(sig_url).report("acme", "etl", Demand(cores_wanted=4))
    assert RedisDemandStore(platform_url).latest("acme", "etl").cores_wanted == 4  # type: ignore[union-attr]

    sig = redis.Redis.from_url(sig_url)
    for attempt in (lambda: sig.get("spaas:login-failures/spaas:user:alice"),
                    lambda: sig.delete("spaas:login-failures/spaas:user:alice"),
                    lambda: sig.get("spaas:demand:beta/other"),
                    lambda: sig.set("spaas:demand:beta/other", "{}"),
                    lambda: sig.lrange("spaas:log:build:sig:beta/other/1", 0, -1),
                    lambda: sig.lpush(messages.agent_queue("beta", "other"), "x"),
                    lambda: sig.brpop([messages.agent_queue("beta", "other")], 1),
                    lambda: sig.lpush(messages.BUILD_QUEUE, "x"),
                    lambda: sig.lrange(messages.SCALER_QUEUE, 0, -1),
                    lambda: sig.rpop(messages.SCALER_QUEUE),
                    lambda: sig.smembers("_kombu.binding." + messages.EXCHANGE),
                    lambda: sig.sadd("_kombu.binding." + messages.EXCHANGE, "x"),
                    lambda: sig.hgetall("unacked"),
                    lambda: sig.keys("*"),
                    lambda: sig.scan(0),
                    lambda: sig.flushall(),
                    lambda: sig.publish("any", "x"),
                    lambda: sig.execute_command("ACL", "LIST"),
                    lambda: sig.config_get("requirepass")):
        assert denied(attempt), attempt
    assert platform.get("spaas:login-failures/spaas:user:alice") == b"3"

    access.forget("acme", "etl")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(sig_url).ping()


def denied_or_noauth(call: object) -> bool:
    try:
        call()  # type: ignore[operator]
    except redis.exceptions.AuthenticationError:
        return True
    except redis.exceptions.ResponseError as exc:
        return "NOAUTH" in str(exc)
    return False


def test_the_scaler_starts_sig_containers_with_their_own_redis_user_and_removes_it_with_the_sig(
        platform_url: str, store: object, keys: Keys, tmp_path: Path) -> None:
    from services.scaler.loop import Scaler
    from spaas.storage import SigStorage
    from tests.scaler.test_health_and_orphans import RecordingRuntime

    class Starting(RecordingRuntime):
        def __init__(self) -> None:
            super().__init__()
            self.started: list[dict[str, str]] = []

        def start(self, spec: object) -> None:
            self.started.append(spec.env)  # type: ignore[attr-defined]

    spec = {"spec": {"name": "web", "spark_version": "3.5.9", "scaling": {"min_workers": 1, "max_workers": 1}},
            "generation": 1}
    store.put(keys.sig_spec("acme", "web"), spec)  # type: ignore[attr-defined]
    store.put(keys.sig_build("acme", "web"), {"generation": 1, "state": "SUCCEEDED", "key": "k",  # type: ignore[attr-defined]
                                              "artifact": str(tmp_path)})
    runtime = Starting()
    access = SigRedisAccess(platform_url, keys)
    scaler = Scaler(store, RedisBus(platform_url), runtime, SigStorage(tmp_path), keys=keys,  # type: ignore[arg-type]
                    demand=RedisDemandStore(platform_url, prefix=f"test{keys.prefix}:"), redis_access=access)
    scaler.reconcile_all()
    assert len(runtime.started) == 2
    url = runtime.started[0]["SPAAS_REDIS_URL"]
    assert PASSWORD not in url and redis.Redis.from_url(url).ping()
    platform = redis.Redis.from_url(platform_url)
    bound = platform.smembers("_kombu.binding." + messages.EXCHANGE)
    assert any(b.startswith(b"app.acme.web\x06\x16") and b.endswith(b"\x06\x16spaas.apps.acme.web") for b in bound)

    store.put(keys.sig_spec("acme", "web"), dict(spec, deleting=True))  # type: ignore[attr-defined]
    scaler.reconcile_all()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(url).ping()
