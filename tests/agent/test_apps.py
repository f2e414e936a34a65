"""Table tests for the SIG master's application decisions (`services.agent.apps.decide`): which
submitted applications it claims, cancels, kills or reports lost."""

from __future__ import annotations

from typing import Any

import pytest

from services.agent.apps import Action, AppView, decide

SPEC: dict[str, Any] = {"file": "job.py"}


def app(app_id: str, state: str | None = None, *, kill: bool = False, spec: dict[str, Any] | None = SPEC) -> AppView:
    return AppView(app_id, spec, {"state": state, "agent": "acme-etl-master-0"} if state else None, kill)


def acts(*pairs: tuple[str, str]) -> list[Action]:
    return [Action(kind, app_id) for kind, app_id in pairs]


@pytest.mark.parametrize(
    ("apps", "running", "max_drivers", "expected"),
    [
        ([app("a1")], set(), 4, acts(("claim", "a1"))),
        ([app("a1"), app("a2"), app("a3")], set(), 2, acts(("claim", "a1"), ("claim", "a2"))),
        ([app("a1"), app("a2"), app("a3")], {"r1"}, 3, acts(("claim", "a1"), ("claim", "a2"))),
        ([app("a1")], {"r1", "r2"}, 2, []),
        ([app("a1")], {"r1", "r2", "r3"}, 2, []),
        ([app("a1")], set(), 0, []),
        ([app("a1", kill=True)], set(), 4, acts(("cancel", "a1"))),
        ([app("a1", kill=True)], {"r1"}, 1, acts(("cancel", "a1"))),
        ([app("a1", kill=True), app("a2")], set(), 1, acts(("cancel", "a1"), ("claim", "a2"))),
    ],
    ids=["claim", "up-to-max", "free-slots-only", "full", "over-full", "no-drivers", "cancel",
         "cancel-when-full", "cancel-takes-no-slot"],
)
def test_unclaimed_apps(apps: list[AppView], running: set[str], max_drivers: int, expected: list[Action]) -> None:
    assert decide(apps, running, max_drivers=max_drivers) == expected


@pytest.mark.parametrize("state", ["SUBMITTED", "STARTING", "RUNNING"])
@pytest.mark.parametrize(
    ("in_running", "kill", "expected"),
    [(False, False, "lost"), (False, True, "lost"), (True, True, "kill"), (True, False, None)],
    ids=["lost", "lost-despite-kill", "kill", "running"],
)
def test_active_apps(state: str, in_running: bool, kill: bool, expected: str | None) -> None:
    running = {"a1"} if in_running else set()
    result = decide([app("a1", state, kill=kill)], running, max_drivers=4)
    assert result == (acts((expected, "a1")) if expected else [])


@pytest.mark.parametrize("state", ["FINISHED", "FAILED", "KILLED"])
@pytest.mark.parametrize(("in_running", "kill"), [(False, False), (False, True), (True, False), (True, True)])
def test_terminal_apps_need_nothing(state: str, in_running: bool, kill: bool) -> None:
    running = {"a1"} if in_running else set()
    assert decide([app("a1", state, kill=kill)], running, max_drivers=4) == []


@pytest.mark.parametrize(("state", "kill"), [(None, False), (None, True), ("RUNNING", True), ("STARTING", False)])
def test_apps_without_spec_are_left_alone(state: str | None, kill: bool) -> None:
    assert decide([app("a1", state, kill=kill, spec=None)], set(), max_drivers=4) == []


def test_mixed_scan_in_id_order() -> None:
    apps = [
        app("a1", "RUNNING"),
        app("a2", "RUNNING", kill=True),
        app("a3", "STARTING"),
        app("a4", "FINISHED"),
        app("a5"),
        app("a6", kill=True),
        app("a7"),
        app("a8", spec=None),
    ]
    assert decide(apps, {"a1", "a2"}, max_drivers=3) == acts(
        ("kill", "a2"), ("lost", "a3"), ("claim", "a5"), ("cancel", "a6"))


def test_same_inputs_same_actions() -> None:
    apps = [app("a1"), app("a2", "RUNNING"), app("a3", kill=True)]
    assert decide(apps, set(), max_drivers=2) == decide(list(apps), set(), max_drivers=2)




def bad(app_id: str, state: str | None = None, *, spec: dict[str, Any] | None = None) -> AppView:
    return AppView(app_id, spec, {"state": state} if state else None, False, invalid=f"/p/apps/t/s/{app_id}/spec: x")


@pytest.mark.parametrize(
    ("view", "running", "expected"),
    [
        (bad("a1"), set(), acts(("invalid", "a1"))),                    # bad spec, never claimed
        (bad("a1", spec=SPEC), set(), acts(("invalid", "a1"))),         # bad state (spec fine)
        (bad("a1", "RUNNING"), set(), acts(("invalid", "a1"))),         # bad spec, driver gone
        (bad("a1", spec=SPEC), {"a1"}, []),                             # its driver still runs: its end decides
        (bad("a1", "FAILED"), set(), []),                               # already final
    ],
    ids=["bad-spec", "bad-state", "bad-spec-running-state", "driver-running", "final"],
)
def test_malformed_applications_are_failed_once_no_driver_runs(view: AppView, running: set[str],
                                                               expected: list[Action]) -> None:
    assert decide([view, app("a2")], running, max_drivers=4) == expected + acts(("claim", "a2"))
