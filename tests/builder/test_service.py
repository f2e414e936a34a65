"""BuildService against real etcd and Redis, with a counting artifact builder at the adapter
boundary: cache hits do no work, a build in flight is joined, failures carry the error."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from services.builder.planner import BuildPlan
from services.builder.service import BuildService
from spaas.errors import PermanentError
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.logstream import RedisLogStreams, sig_build_stream
from spaas.messages import Event
from spaas.model import SigSpec, dump


class CountingBuilder:
    """Builds nothing real: records each build and can be slow or fail."""

    def __init__(self, *, delay_s: float = 0.0, error: str = "") -> None:
        self.builds: list[str] = []
        self.done: set[str] = set()
        self.delay_s = delay_s
        self.error = error

    def existing(self, plan: BuildPlan) -> str | None:
        return f"/artifacts/{plan.key}" if plan.key in self.done else None

    def build(self, plan: BuildPlan, log: Callable[[str], None]) -> str:
        self.builds.append(plan.key)
        log(f"building {plan.key}")
        time.sleep(self.delay_s)
        if self.error:
            raise PermanentError(self.error)
        self.done.add(plan.key)
        return f"/artifacts/{plan.key}"


class RecordingBus:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)


@pytest.fixture
def logs(redis_url: str, prefix: str) -> RedisLogStreams:
    return RedisLogStreams(redis_url, prefix=f"{prefix}:log:")


def service(store: EtcdStore, keys: Keys, logs: RedisLogStreams, builder: CountingBuilder) -> BuildService:
    return BuildService(store, RecordingBus(), logs, builder, keys=keys, lock_ttl_s=5, join_timeout_s=30)  # type: ignore[arg-type]


def add_sig(store: EtcdStore, keys: Keys, name: str, generation: int = 1, **spec: Any) -> None:
    body = dump(SigSpec(name=name, spark_version="3.5.9", **spec))
    store.put(keys.sig_spec("acme", name), {"spec": body, "generation": generation, "deleting": False})


def build_status(store: EtcdStore, keys: Keys, name: str) -> dict[str, Any]:
    entry = store.get(keys.sig_build("acme", name))
    assert entry is not None
    return entry.value


def test_identical_spec_is_a_cache_hit_with_no_build_work(store: EtcdStore, keys: Keys, logs: RedisLogStreams) -> None:
    builder = CountingBuilder()
    svc = service(store, keys, logs, builder)
    add_sig(store, keys, "a", python_packages=["six"])
    add_sig(store, keys, "b", python_packages=["six"])
    assert svc.build_sig("acme", "a") == "built"
    assert svc.build_sig("acme", "b") == "cache hit"
    assert len(builder.builds) == 1
    assert build_status(store, keys, "b")["cache_hit"] is True
    assert build_status(store, keys, "a")["key"] == build_status(store, keys, "b")["key"]
    lines, _ = logs.read(sig_build_stream("acme", "b", 1))
    assert any("cache hit" in line for line in lines)


def test_a_build_in_flight_is_joined_not_repeated(store: EtcdStore, keys: Keys, logs: RedisLogStreams) -> None:
    builder = CountingBuilder(delay_s=1.5)
    svc = service(store, keys, logs, builder)
    add_sig(store, keys, "a")
    add_sig(store, keys, "b")
    results: dict[str, str | None] = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, svc.build_sig("acme", n))) for n in "ab"]
    for t in threads:
        t.start()
        time.sleep(0.2)
    for t in threads:
        t.join(30)
    assert len(builder.builds) == 1
    assert sorted(results.values()) == ["built", "joined"]
    assert build_status(store, keys, "b")["state"] == "SUCCEEDED"


def test_failed_build_records_the_error_and_fails_the_sig(store: EtcdStore, keys: Keys, logs: RedisLogStreams) -> None:
    svc = service(store, keys, logs, CountingBuilder(error="pip: No matching distribution found for nope==1"))
    add_sig(store, keys, "a")
    assert svc.build_sig("acme", "a") == "failed"
    status = build_status(store, keys, "a")
    assert status["state"] == "FAILED" and status["reason"] == "BuildFailed"
    assert "No matching distribution found for nope==1" in status["message"]
    assert svc.needs_build("acme", "a") is False  # failed for this generation: no retry loop


def test_new_generation_needs_a_build_and_done_generation_does_not(store: EtcdStore, keys: Keys,
                                                                   logs: RedisLogStreams) -> None:
    svc = service(store, keys, logs, CountingBuilder())
    add_sig(store, keys, "a")
    assert svc.pending() == [("acme", "a")]
    svc.build_sig("acme", "a")
    assert svc.pending() == []
    add_sig(store, keys, "a", generation=2, spark_conf={"spark.sql.shuffle.partitions": "4"})
    assert svc.pending() == [("acme", "a")]
    assert svc.build_sig("acme", "a") == "cache hit"  # conf is not part of the build key
    assert build_status(store, keys, "a")["generation"] == 2


def test_a_building_sig_whose_builder_died_is_picked_up(store: EtcdStore, keys: Keys, logs: RedisLogStreams) -> None:
    svc = service(store, keys, logs, CountingBuilder())
    add_sig(store, keys, "a")
    # A builder wrote BUILDING and died: no lock is held for its key.
    store.put(keys.sig_build("acme", "a"), {"generation": 1, "key": "k-dead", "state": "BUILDING"})
    assert svc.needs_build("acme", "a") is True
    lease = store.grant_lease(5)
    store.put(keys.build_lock("k-dead"), {"ident": "other"}, lease=lease)
    assert svc.needs_build("acme", "a") is False  # someone is on it
    store.revoke(lease)


def test_a_deleting_sig_is_not_built(store: EtcdStore, keys: Keys, logs: RedisLogStreams) -> None:
    builder = CountingBuilder()
    svc = service(store, keys, logs, builder)
    body = dump(SigSpec(name="a", spark_version="3.5.9"))
    store.put(keys.sig_spec("acme", "a"), {"spec": body, "generation": 1, "deleting": True})
    assert svc.build_sig("acme", "a") is None and builder.builds == []


def test_a_vanished_artifact_is_rebuilt(store: EtcdStore, keys: Keys, logs: RedisLogStreams) -> None:
    builder = CountingBuilder()
    svc = service(store, keys, logs, builder)
    add_sig(store, keys, "a")
    assert svc.build_sig("acme", "a") == "built"
    assert svc.needs_build("acme", "a") is False
    builder.done.clear()  # someone removed the image / directory
    assert svc.needs_build("acme", "a") is True
    assert svc.build_sig("acme", "a") == "built"
    assert len(builder.builds) == 2


def put_raw(store: EtcdStore, key: str, raw: bytes) -> None:
    import base64
    store.call("/v3/kv/put", {"key": base64.b64encode(key.encode()).decode(),
                              "value": base64.b64encode(raw).decode()})


def test_malformed_records_fail_only_themselves(store: EtcdStore, keys: Keys, logs: RedisLogStreams) -> None:
    """A mistyped spec is skipped (the scaler shows it), a garbage build status or build record is
    built over; the resync still finds and builds every other SIG."""
    builder = CountingBuilder()
    svc = service(store, keys, logs, builder)
    add_sig(store, keys, "good")
    add_sig(store, keys, "rebuilt", python_packages=["six"])
    put_raw(store, keys.sig_build("acme", "rebuilt"), b"garbage")
    store.put(keys.sig_spec("acme", "typed"), {"spec": {"name": "typed", "spark_version": 3}, "generation": "x"})
    put_raw(store, keys.sig("acme", "good") + "junk", b"junk")
    put_raw(store, keys.sigs("acme") + "stray", b"junk")
    assert svc.pending() == [("acme", "good"), ("acme", "rebuilt")]
    assert svc.build_sig("acme", "typed") is None
    assert svc.build_sig("acme", "rebuilt") == "built"
    assert build_status(store, keys, "rebuilt")["state"] == "SUCCEEDED"
    key = build_status(store, keys, "rebuilt")["key"]
    put_raw(store, keys.build(key), b"\xff")
    builder.done.clear()  # the artifact is gone too: the garbage record must not pass for a cache hit
    assert svc.pending() == [("acme", "good"), ("acme", "rebuilt")], "the vanished artifact is rebuilt"
    assert svc.build_sig("acme", "rebuilt") == "built"
    assert store.get(keys.build(key)).value["state"] == "SUCCEEDED"
    assert svc.build_sig("acme", "good") == "built"
    assert svc.pending() == []
