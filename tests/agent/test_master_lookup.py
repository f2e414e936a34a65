"""A worker's agent finds its SIG's master in the host registry (real etcd): a ready master
first, else one still starting whose ports are known, so the worker's JVM starts beside the
master's instead of after it (issue #11)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from services.agent.agent import Agent
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.settings import AgentSettings


class NoBus:
    """The agent's bus is not used by the lookup (adapter boundary)."""

    def publish(self, event: Any) -> None:
        raise AssertionError("not expected")


def worker_agent(store: EtcdStore, keys: Keys, tmp_path: Path) -> Agent:
    (tmp_path / "manifest.json").write_text(json.dumps({"spark_home": "/opt/spark", "python": "/p",
                                                         "spark_version": "3.5.9"}))
    settings = AgentSettings(etcd_prefix=keys.prefix, tenant="t", sig="s", role="worker", index=0,
                             container="t-s-worker-0", artifact_dir=tmp_path, container_dir=tmp_path / "c")
    return Agent(settings, store, NoBus(), stop=threading.Event())  # type: ignore[arg-type]


def master(host: str, port: int, *, ready: bool) -> dict[str, Any]:
    return {"host": host, "role": "master", "ip": "127.0.0.1", "ready": ready, "ports": {"spark": port, "ui": port + 1},
            "spark_url": f"spark://127.0.0.1:{port}", "ui_url": f"http://127.0.0.1:{port + 1}"}


def test_a_starting_master_is_found_and_a_ready_one_preferred(store: EtcdStore, keys: Keys, tmp_path: Path) -> None:
    agent = worker_agent(store, keys, tmp_path)
    assert agent._master_record() is None
    store.put(keys.host("t", "s", "t-s-master-0"), master("t-s-master-0", 7000, ready=False))
    found = agent._master_record()
    assert found is not None and found["spark_url"] == "spark://127.0.0.1:7000" and not found["ready"]
    store.put(keys.host("t", "s", "t-s-master-1"), master("t-s-master-1", 7100, ready=True))
    found = agent._master_record()
    assert found is not None and found["spark_url"] == "spark://127.0.0.1:7100"


def test_a_master_without_its_addresses_is_not_used(store: EtcdStore, keys: Keys, tmp_path: Path) -> None:
    agent = worker_agent(store, keys, tmp_path)
    rec = master("t-s-master-0", 7000, ready=False)
    del rec["spark_url"]
    store.put(keys.host("t", "s", "t-s-master-0"), rec)
    assert agent._master_record() is None


class RecordingBus:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def publish(self, event: Any) -> None:
        self.events.append(event)


def test_a_worker_published_not_ready_turns_ready_once_the_master_lists_it(
        store: EtcdStore, keys: Keys, tmp_path: Path) -> None:
    """A worker the master did not list within the agent's first wait is published not ready; it
    must not stay so (the scaler would count it lost for ever): the agent's next look at the
    master's JSON page that lists it ALIVE publishes it ready, registered after the first."""
    import http.server
    import time

    listed: list[dict[str, Any]] = []

    class MasterPage(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = json.dumps({"status": "ALIVE", "workers": listed}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MasterPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        agent = worker_agent(store, keys, tmp_path)
        bus = RecordingBus()
        agent.bus = bus  # type: ignore[assignment]
        the_master = {"spark_url": "spark://127.0.0.1:7077", "ui_url": f"http://127.0.0.1:{server.server_port}"}
        agent.registration.publish(agent._record(ports={"spark": 45678, "ui": 45679}, ready=False))
        first = store.get(keys.host("t", "s", "t-s-worker-0"))
        assert first is not None and first.value["ready"] is False

        agent._confirm_worker(the_master)  # the master does not list it yet
        entry = store.get(keys.host("t", "s", "t-s-worker-0"))
        assert entry is not None and entry.value["ready"] is False and not bus.events

        listed.append({"host": "127.0.0.1", "port": 45678, "state": "ALIVE"})
        time.sleep(0.01)
        agent._confirm_worker(the_master)
        entry = store.get(keys.host("t", "s", "t-s-worker-0"))
        assert entry is not None and entry.value["ready"] is True
        assert entry.value["registered_at"] > first.value["registered_at"]
        assert len(bus.events) == 1
    finally:
        server.shutdown()
        agent.registration.withdraw()
