"""The master's agent and the files its SIG's code can touch: a driver log planted as a link or
FIFO is neither followed nor blocks the agent, and properties files holding the SIG's Spark
secret are gone on every way a driver ends, failures to start included, and at agent start."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from services.agent.agent import DAEMON_PROPERTIES, Agent
from services.agent.apps import AppController
from services.agent.drivers import Driver
from spaas import safefs
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.settings import AgentSettings
from spaas.storage import SigStorage

from tests.agent.test_app_controller import run_until, state, submit

SECRET_PROPS = "spark.authenticate.secret=s3cret\n"


def controller(store: EtcdStore, keys: Keys, tmp_path: Path, scripts: dict[str, list[str]]) -> AppController:
    """Like the agent's: a 0600 properties file in the driver's work dir, the log opened via SigStorage."""
    storage = SigStorage(tmp_path / "storage")
    cdir = tmp_path / "container"

    def make_driver(app_id: str, request: dict[str, Any]) -> Driver:
        safefs.write_atomic(cdir, f"drivers/{app_id}/driver.properties", SECRET_PROPS.encode(), mode=0o600)
        return Driver(app_id=app_id, argv=scripts[request["file"]], env={}, cwd=cdir / "drivers" / app_id,
                      log_path=storage.driver_log("acme", "etl", app_id),
                      open_log=lambda: storage.open_driver_log("acme", "etl", app_id))

    return AppController(store, keys, tenant="acme", sig="etl", container="acme-etl-master-0", make_driver=make_driver)


def secrets_left(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "container").rglob("*.properties"))


def test_a_planted_driver_log_link_fails_the_app_and_writes_nothing_through_it(store: EtcdStore, keys: Keys,
                                                                                tmp_path: Path) -> None:
    target = tmp_path / "admin-token"
    target.write_text("token\n")
    log = SigStorage(tmp_path / "storage").driver_log("acme", "etl", "001")
    log.parent.mkdir(parents=True)
    log.symlink_to(target)
    ctl = controller(store, keys, tmp_path, {"ok.py": [sys.executable, "-c", "print('hello')"]})
    submit(store, keys, "001", "ok.py")
    ctl.scan()
    assert state(store, keys, "001")["state"] == "FAILED"
    assert state(store, keys, "001")["reason"] == "DriverStartFailed"
    assert target.read_text() == "token\n"
    assert secrets_left(tmp_path) == []


def test_a_driver_that_cannot_start_leaves_no_secret(store: EtcdStore, keys: Keys, tmp_path: Path) -> None:
    ctl = controller(store, keys, tmp_path, {"x.py": [str(tmp_path / "no-such-spark-submit")]})
    submit(store, keys, "001", "x.py")
    ctl.scan()
    assert state(store, keys, "001")["reason"] == "DriverStartFailed"
    assert secrets_left(tmp_path) == [] and not (tmp_path / "container" / "drivers" / "001").exists()


def test_a_fifo_swapped_in_for_the_log_does_not_block_the_agent(store: EtcdStore, keys: Keys, tmp_path: Path) -> None:
    # The job replaces its own log with a FIFO (as tenant code can), then reports its Spark id.
    script = ("import os, sys, time; p = sys.argv[1]; os.unlink(p); os.mkfifo(p); "
              "print('app-20260101000000-0042', flush=True); time.sleep(1.5)")
    log = SigStorage(tmp_path / "storage").driver_log("acme", "etl", "001")
    ctl = controller(store, keys, tmp_path, {"f.py": [sys.executable, "-c", script, str(log)]})
    submit(store, keys, "001", "f.py")
    done = threading.Event()

    def scans() -> None:
        run_until(ctl, lambda: state(store, keys, "001").get("state") == "FINISHED", timeout_s=20)
        done.set()

    t = threading.Thread(target=scans, daemon=True)
    t.start()
    t.join(25)
    assert done.is_set(), "the agent's scan blocked"
    assert state(store, keys, "001")["spark_app_id"] == "app-20260101000000-0042"
    assert secrets_left(tmp_path) == []


def test_finished_killed_and_shut_down_drivers_leave_no_secret(store: EtcdStore, keys: Keys, tmp_path: Path) -> None:
    ctl = controller(store, keys, tmp_path, {"ok.py": [sys.executable, "-c", "print(1)"],
                                             "slow.py": [sys.executable, "-c", "import time; time.sleep(60)"]})
    submit(store, keys, "001", "ok.py")
    submit(store, keys, "002", "slow.py")
    submit(store, keys, "003", "slow.py")
    run_until(ctl, lambda: state(store, keys, "001").get("state") == "FINISHED" and "003" in ctl.drivers)
    store.put(keys.app_kill("acme", "etl", "002"), {})
    run_until(ctl, lambda: state(store, keys, "002").get("state") == "KILLED")
    assert [p.parent.name for p in secrets_left(tmp_path)] == ["003"]
    ctl.shutdown("test over")
    assert secrets_left(tmp_path) == []


def test_agent_start_removes_secrets_left_by_a_crashed_predecessor(tmp_path: Path) -> None:
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "manifest.json").write_text(json.dumps({"spark_home": "/x", "python": "/x/python",
                                                        "spark_version": "3.5.9"}))
    cdir = tmp_path / "container"
    safefs.write_atomic(cdir, DAEMON_PROPERTIES, SECRET_PROPS.encode(), mode=0o600)
    safefs.write_atomic(cdir, "drivers/old/driver.properties", SECRET_PROPS.encode(), mode=0o600)
    (cdir / "drivers" / "old" / "out").symlink_to(tmp_path / "artifact")  # not followed by the cleanup
    agent = Agent(AgentSettings(tenant="acme", sig="etl", role="master", container="acme-etl-master-0",
                                artifact_dir=artifact, container_dir=cdir), store=None,  # type: ignore[arg-type]
                  bus=None, stop=threading.Event())  # type: ignore[arg-type]
    agent._remove_secrets()
    assert list(cdir.rglob("*.properties")) == [] and not (cdir / "drivers").exists()
    assert (artifact / "manifest.json").exists()
    assert os.listdir(cdir) == ["conf"]  # the conf dir stays, empty
