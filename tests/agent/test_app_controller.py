"""The master's application controller against real etcd, with real (tiny) driver processes
standing in for spark-submit: claim, finish, fail, kill, lost drivers and the driver limit."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from services.agent.apps import AppController
from services.agent.drivers import Driver
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.model import AppState


def controller(store: EtcdStore, keys: Keys, tmp_path: Path, scripts: dict[str, str], *, max_drivers: int = 4,
               me: str = "acme-etl-master-0") -> AppController:
    def make_driver(app_id: str, request: dict[str, Any]) -> Driver:
        return Driver(app_id=app_id, argv=[sys.executable, "-c", scripts[request["file"]]], env={},
                      log_path=tmp_path / app_id / "driver.log", cwd=tmp_path / "work" / app_id)

    return AppController(store, keys, tenant="acme", sig="etl", container=me, make_driver=make_driver,
                         max_drivers=max_drivers)


def submit(store: EtcdStore, keys: Keys, app_id: str, file: str) -> None:
    store.put(keys.app_spec("acme", "etl", app_id), {"request": {"file": file}, "submitter": "u"})


def state(store: EtcdStore, keys: Keys, app_id: str) -> dict[str, Any]:
    entry = store.get(keys.app_state("acme", "etl", app_id))
    return entry.value if entry else {}


def run_until(ctl: AppController, check: Any, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ctl.scan()
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def test_claims_runs_and_reports_finished_and_failed(store: EtcdStore, keys: Keys, tmp_path: Path) -> None:
    ctl = controller(store, keys, tmp_path, {"ok.py": "print('app-20260101000000-0001 RESULT 42')",
                                             "bad.py": "raise SystemExit(3)"})
    submit(store, keys, "001", "ok.py")
    submit(store, keys, "002", "bad.py")
    run_until(ctl, lambda: state(store, keys, "002").get("state") == "FAILED"
              and state(store, keys, "001").get("state") == "FINISHED")
    assert state(store, keys, "001")["exit_code"] == 0
    assert state(store, keys, "001")["spark_app_id"] == "app-20260101000000-0001"
    assert "RESULT 42" in (tmp_path / "001" / "driver.log").read_text()
    assert state(store, keys, "002")["exit_code"] == 3 and state(store, keys, "002")["reason"] == "NonZeroExit"
    assert ctl.drivers == {}


def test_kill_before_start_and_while_running(store: EtcdStore, keys: Keys, tmp_path: Path) -> None:
    ctl = controller(store, keys, tmp_path, {"slow.py": "import time; time.sleep(60)"})
    submit(store, keys, "001", "slow.py")
    store.put(keys.app_kill("acme", "etl", "001"), {})
    submit(store, keys, "002", "slow.py")
    run_until(ctl, lambda: "002" in ctl.drivers)
    assert state(store, keys, "001")["state"] == "KILLED"
    assert state(store, keys, "001")["reason"] == "KilledBeforeStart"
    store.put(keys.app_kill("acme", "etl", "002"), {})
    run_until(ctl, lambda: state(store, keys, "002").get("state") == "KILLED")
    assert state(store, keys, "002")["reason"] == "KilledByUser"


def test_driver_of_a_previous_master_is_reported_lost(store: EtcdStore, keys: Keys, tmp_path: Path) -> None:
    submit(store, keys, "001", "x.py")
    store.put(keys.app_state("acme", "etl", "001"), {"state": "RUNNING", "agent": "old-master"})
    ctl = controller(store, keys, tmp_path, {})
    ctl.scan()
    assert state(store, keys, "001")["state"] == "FAILED"
    assert state(store, keys, "001")["reason"] == "DriverLost"


def test_driver_limit_leaves_a_backlog(store: EtcdStore, keys: Keys, tmp_path: Path) -> None:
    ctl = controller(store, keys, tmp_path, {"slow.py": "import time; time.sleep(30)"}, max_drivers=1)
    for app_id in ("001", "002", "003"):
        submit(store, keys, app_id, "slow.py")
    ctl.scan()
    assert set(ctl.drivers) == {"001"} and ctl.backlog == 2
    assert state(store, keys, "002") == {}
    ctl.shutdown("test over")
    assert state(store, keys, "001")["state"] == "FAILED" and state(store, keys, "001")["reason"] == "ContainerStopped"


def test_a_terminal_state_is_never_overwritten(store: EtcdStore, keys: Keys, tmp_path: Path) -> None:
    submit(store, keys, "001", "x.py")
    store.put(keys.app_state("acme", "etl", "001"), {"state": "KILLED", "agent": "api"})
    ctl = controller(store, keys, tmp_path, {})
    assert ctl._set_state("001", AppState.FINISHED) is False
    assert state(store, keys, "001")["state"] == "KILLED"


def put_raw(store: EtcdStore, key: str, raw: bytes) -> None:
    import base64
    store.call("/v3/kv/put", {"key": base64.b64encode(key.encode()).decode(),
                              "value": base64.b64encode(raw).decode()})


def test_a_malformed_application_fails_alone(store: EtcdStore, keys: Keys, tmp_path: Path) -> None:
    """Records tenant code can write in its SIG's apps prefix: each bad one fails only its app
    (FAILED, reason InvalidRecord, naming the key); the good one still runs."""
    ctl = controller(store, keys, tmp_path, {"ok.py": "print('fine')"})
    submit(store, keys, "001", "ok.py")
    store.put(keys.app_spec("acme", "etl", "002"), {"request": {"file": "ok.py", "conf": {"spark.executor.cores": "x"}}})
    store.put(keys.app_spec("acme", "etl", "003"), {"request": {"file": "ok.py", "numExecutors": 10**12}})
    put_raw(store, keys.app_spec("acme", "etl", "004"), b"not json")
    submit(store, keys, "005", "ok.py")
    put_raw(store, keys.app_state("acme", "etl", "005"), b"{\"state\": 7}")
    put_raw(store, keys.apps("acme", "etl") + "junk", b"x")
    store.put(keys.app("acme", "etl", "006") + "garbage", {"a": 1})
    run_until(ctl, lambda: state(store, keys, "001").get("state") == "FINISHED"
              and all(state(store, keys, i).get("state") == "FAILED" for i in ("002", "003", "004", "005")))
    for app_id, needle in (("002", "spark.executor.cores"), ("003", "numExecutors"), ("004", "not JSON"),
                           ("005", "state")):
        failed = state(store, keys, app_id)
        assert failed["reason"] == "InvalidRecord", failed
        assert keys.app("acme", "etl", app_id) in failed["message"] and needle in failed["message"], failed
    assert ctl.drivers == {} and ctl.backlog == 0
    assert state(store, keys, "006") == {}, "a junk key of no application is left alone"
