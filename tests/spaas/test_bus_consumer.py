"""The bus consumer loop (spaas/bus.py on spaas.loops.run_every) against a real Redis that goes away
and comes back: it keeps its stop, reports idleness, reconnects after the outage and delivers what
was published, and returns promptly when stopped."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

from spaas import messages
from spaas.bus import RedisBus
from spaas.errors import TemporaryError
from spaas.stack import free_port, start_redis, stop_pid


def test_the_consumer_survives_a_redis_restart_and_stops_promptly(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis = start_redis(tmp_path / "redis", port, tmp_path / "redis.log")
    bus = RedisBus(url, timeout_s=2.0)
    got: queue.Queue[messages.Event] = queue.Queue()
    idle = threading.Event()
    stop = threading.Event()
    event = messages.HostChanged(tenant="t", sig="s", host="w-0")
    bus.declare_queue("test.consumer", [event.routing_key])
    consumer = threading.Thread(target=bus.consume, args=("test.consumer", [event.routing_key], got.put),
                                kwargs={"stop": stop, "on_idle": idle.set, "idle_s": 0.2}, daemon=True)
    consumer.start()
    try:
        assert idle.wait(20), "the consumer never reported an idle wait"
        bus.publish(event)
        assert got.get(timeout=20) == event

        stop_pid(redis.pid)
        time.sleep(1.0)  # the consumer meets the outage (and backs off) before Redis returns
        redis = start_redis(tmp_path / "redis", port, tmp_path / "redis.log")
        deadline = time.monotonic() + 60
        while True:  # the publisher's own connection may need a retry after the restart
            try:
                bus.publish(event)
                break
            except TemporaryError:
                assert time.monotonic() < deadline, "cannot publish after the restart"
                time.sleep(0.5)
        assert got.get(timeout=60) == event, "no delivery after Redis came back"
    finally:
        stop.set()
        consumer.join(10)
        stop_pid(redis.pid)
    assert not consumer.is_alive(), "the consumer did not return after its stop was set"
