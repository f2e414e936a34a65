"""The one loop helper: the pure `Backoff` as a table, `run_every` with short real periods."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from spaas.errors import PermanentError, TemporaryError
from spaas.loops import Backoff, run_every


@pytest.mark.parametrize("errors, expected", [
    ([TemporaryError("etcd down")], [2.0]),
    ([TemporaryError("x")] * 5, [2.0, 4.0, 8.0, 10.0, 10.0]),        # doubles, capped
    ([ValueError("bug"), KeyError("k")], [2.0, 4.0]),                 # any error backs off the same way
    ([TemporaryError("busy", delay=7.0)], [7.0]),                     # the error names its delay
    ([TemporaryError("x"), TemporaryError("busy", delay=0.5), TemporaryError("x")], [2.0, 0.5, 8.0]),
    ([PermanentError("no")], [2.0]),
])
def test_backoff_waits(errors: list[Exception], expected: list[float]) -> None:
    backoff = Backoff(first_s=2.0, max_s=10.0)
    assert [backoff.failed(exc) for exc in errors] == expected


def test_backoff_starts_over_after_a_success() -> None:
    backoff = Backoff(first_s=1.0, max_s=60.0)
    assert [backoff.failed(TemporaryError("x")) for _ in range(3)] == [1.0, 2.0, 4.0]
    backoff.succeeded()
    assert backoff.failed(TemporaryError("x")) == 1.0


class Steps:
    """A step that fails as scripted (an exception, or None for success) and records when it ran."""

    def __init__(self, script: list[Exception | None], *, then: Callable[[], float | None] = lambda: None) -> None:
        self.script = list(script)
        self.then = then
        self.calls: list[float] = []

    def __call__(self) -> float | None:
        self.calls.append(time.monotonic())
        if self.script:
            outcome = self.script.pop(0)
            if outcome is not None:
                raise outcome
            return None
        return self.then()

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.calls, self.calls[1:], strict=False)]


def run_until(steps: Steps, calls: int, **kwargs: object) -> threading.Thread:
    """Run `run_every` in a thread until `steps` ran `calls` times; the loop must then return."""
    stop = threading.Event()
    thread = threading.Thread(target=run_every, args=(steps, stop), kwargs=kwargs, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while len(steps.calls) < calls and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive(), "run_every did not return after stop was set"
    assert len(steps.calls) >= calls
    return thread


def test_survives_errors_backs_off_and_resets() -> None:
    steps = Steps([TemporaryError("etcd down"), RuntimeError("a bug"), None, None])
    run_until(steps, 5, period_s=0.1, max_backoff_s=5.0, name="test loop")
    gaps = steps.gaps()
    # fail (wait 0.2), fail again (0.4), succeed (period 0.1), succeed (0.1)
    assert gaps[0] == pytest.approx(0.2, abs=0.15)
    assert gaps[1] == pytest.approx(0.4, abs=0.15)
    assert gaps[2] == pytest.approx(0.1, abs=0.15)
    assert gaps[1] > gaps[0] > gaps[2] - 0.05


def test_honours_the_delay_a_temporary_error_names() -> None:
    steps = Steps([TemporaryError("come back later", delay=0.6)])
    run_until(steps, 2, period_s=0.05, max_backoff_s=0.1, name="test loop")
    assert steps.gaps()[0] >= 0.55  # the named delay wins over the (shorter) backoff cap


def test_a_step_may_ask_for_its_next_wait() -> None:
    steps = Steps([], then=lambda: 0.02)
    run_until(steps, 10, period_s=30.0, max_backoff_s=30.0, name="test loop")  # would take minutes at the period


def test_stop_ends_a_long_wait_at_once() -> None:
    steps = Steps([])
    stop = threading.Event()
    thread = threading.Thread(target=run_every, args=(steps, stop, 60.0), daemon=True,
                              kwargs={"max_backoff_s": 60.0, "name": "test loop", "wake": threading.Event()})
    thread.start()
    while not steps.calls:
        time.sleep(0.01)
    started = time.monotonic()
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert len(steps.calls) == 1


def test_wake_runs_the_next_step_early() -> None:
    steps = Steps([])
    stop, wake = threading.Event(), threading.Event()
    thread = threading.Thread(target=run_every, args=(steps, stop, 60.0), daemon=True,
                              kwargs={"max_backoff_s": 60.0, "name": "test loop", "wake": wake})
    thread.start()
    try:
        while not steps.calls:
            time.sleep(0.01)
        wake.set()
        deadline = time.monotonic() + 5
        while len(steps.calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(steps.calls) == 2
    finally:
        stop.set()
        thread.join(timeout=5)


def test_initial_delay_and_stop_before_the_first_step() -> None:
    steps = Steps([])
    stop = threading.Event()
    thread = threading.Thread(target=run_every, args=(steps, stop, 0.1), daemon=True,
                              kwargs={"max_backoff_s": 1.0, "name": "test loop", "initial_delay_s": 30.0})
    thread.start()
    time.sleep(0.2)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive() and steps.calls == []
