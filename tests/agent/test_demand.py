"""What a SIG master reports as demand (services/agent/demand.py compute), from its Spark
master's JSON and its drivers."""

from __future__ import annotations

import pytest

from services.agent.demand import DriverDemand, compute

W0 = ("127.0.0.1", 7001)
W1 = ("127.0.0.1", 7002)
HOSTS = {W0: "t-s-worker-0", W1: "t-s-worker-1"}


def master(apps: list[dict], workers: list[dict] | None = None) -> dict:
    return {"activeapps": apps, "workers": workers or []}


def worker(addr: tuple[str, int], used: int, state: str = "ALIVE") -> dict:
    return {"host": addr[0], "port": addr[1], "cores": 1, "coresused": used, "state": state}


@pytest.mark.parametrize(("case", "app", "driver", "wanted", "granted"), [
    ("sized app waiting", {"id": "a", "cores": 0, "state": "WAITING"}, DriverDemand("a", 3), 3, 0),
    ("sized app partly granted", {"id": "a", "cores": 1, "state": "RUNNING"}, DriverDemand("a", 3), 3, 1),
    ("granted beyond the ask counts what it holds", {"id": "a", "cores": 4, "state": "RUNNING"}, DriverDemand("a", 2),
     4, 4),
    ("unsized app waiting wants one worker", {"id": "a", "cores": 0, "state": "WAITING"}, DriverDemand("a", 0), 2, 0),
    ("unsized running app wants what it has", {"id": "a", "cores": 2, "state": "RUNNING"}, DriverDemand("a", 0), 2, 2),
    ("dynamic allocation target wins", {"id": "a", "cores": 1, "state": "RUNNING"}, DriverDemand("a", 3, 5), 5, 1),
    ("driver not registered yet: its ask", None, DriverDemand("", 3), 3, 0),
    ("app over, driver exiting: nothing", None, DriverDemand("a", 3), 0, 0),
])
def test_cores_wanted(case: str, app: dict | None, driver: DriverDemand, wanted: int, granted: int) -> None:
    demand, _ = compute(master([app] if app else []), [driver], HOSTS, {}, backlog=0, cores_per_worker=2, now=10.0)
    assert (demand.cores_wanted, demand.cores_granted) == (wanted, granted), case


def test_waiting_apps_and_backlog_are_reported() -> None:
    demand, _ = compute(master([{"id": "a", "cores": 0, "state": "WAITING"}]), [DriverDemand("a", 1)], HOSTS, {},
                        backlog=2, cores_per_worker=1, now=1.0)
    assert (demand.waiting_apps, demand.running_apps, demand.driver_backlog) == (1, 1, 2)


def test_idle_since_starts_when_a_worker_empties_and_is_kept_while_idle() -> None:
    m = master([], [worker(W0, 0), worker(W1, 1)])
    first, idle = compute(m, [], HOSTS, {}, backlog=0, cores_per_worker=1, now=100.0)
    assert first.workers["t-s-worker-0"].idle_since == 100.0
    assert first.workers["t-s-worker-1"].idle_since is None and first.workers["t-s-worker-1"].cores_used == 1
    later, idle = compute(m, [], HOSTS, idle, backlog=0, cores_per_worker=1, now=130.0)
    assert later.workers["t-s-worker-0"].idle_since == 100.0
    busy_again, idle = compute(master([], [worker(W0, 1)]), [], HOSTS, idle, backlog=0, cores_per_worker=1, now=140.0)
    assert busy_again.workers["t-s-worker-0"].idle_since is None and idle == {}


def test_workers_of_other_sigs_or_dead_are_ignored() -> None:
    m = master([], [worker(("10.0.0.9", 1), 0), worker(W0, 0, state="DEAD")])
    demand, _ = compute(m, [], HOSTS, {}, backlog=0, cores_per_worker=1, now=1.0)
    assert demand.workers == {}
