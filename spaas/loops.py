"""The one loop helper: run a step every period until stopped, backing off while it fails.

Every long-running loop of the services has the same shape (conventions 8): do a step, wait, repeat
until a stop event is set. A step that raises does not end the loop:

- `TemporaryError` with a `delay` waits that long (the dependency said when to come back);
- any other `TemporaryError`, and any other exception (a bug, logged with its traceback), waits
  `first_backoff_s`, doubling per consecutive failure up to `max_backoff_s`;
- a step that succeeds resets the backoff.

The waiting is decided by `Backoff` (pure, table-tested); `run_every` is the thin loop around it.
A step may return a number: the wait before the next step instead of the period (a loop that polls
faster while it has work). A `wake` event cuts a wait short (an event-driven loop with a resync period).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from spaas.errors import TemporaryError

log = logging.getLogger(__name__)

# How often a wait on `wake` also looks at `stop` (two events cannot be waited on together).
STOP_POLL_S = 0.25
# The shortest first backoff, so a loop with a tiny period never spins on a failing dependency.
MIN_BACKOFF_S = 0.1


@dataclass
class Backoff:
    """The wait after each failure: `exc.delay` if the error names one, else `first_s` doubling per
    consecutive failure, at most `max_s`. `succeeded()` starts over."""

    first_s: float
    max_s: float
    failures: int = 0

    def failed(self, exc: BaseException) -> float:
        self.failures += 1
        if isinstance(exc, TemporaryError) and exc.delay is not None:
            return max(0.0, exc.delay)
        return min(self.max_s, self.first_s * 2.0 ** (self.failures - 1))

    def succeeded(self) -> None:
        self.failures = 0


def wait(stop: threading.Event, seconds: float, wake: threading.Event | None = None) -> bool:
    """Wait `seconds`, or less if `stop` (or `wake`, which is then cleared) is set; True if stopped."""
    if wake is None:
        return stop.wait(seconds)
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if wake.wait(min(left, STOP_POLL_S)):
            wake.clear()
            return stop.is_set()
    return True


def run_every(step: Callable[[], float | None], stop: threading.Event, period_s: float, *, max_backoff_s: float,
              name: str, first_backoff_s: float | None = None, initial_delay_s: float = 0.0,
              wake: threading.Event | None = None) -> None:
    """Run `step` now (or after `initial_delay_s`) and then every `period_s` until `stop` is set.

    `first_backoff_s` (default twice the period) is the wait after the first failure in a row. `name`
    names the loop in its log lines. Returns once `stop` is set; a step in progress is never interrupted.
    """
    backoff = Backoff(first_s=max(MIN_BACKOFF_S, 2 * period_s if first_backoff_s is None else first_backoff_s),
                      max_s=max_backoff_s)
    if initial_delay_s > 0 and wait(stop, initial_delay_s, wake):
        return
    while not stop.is_set():
        try:
            asked = step()
        except TemporaryError as exc:
            delay = backoff.failed(exc)
            log.warning("%s failed (%d in a row), retrying in %.1fs: %s", name, backoff.failures, delay, exc)
        except Exception:  # a bug or a permanent error must not silently end the loop's thread
            delay = backoff.failed(Exception())
            log.exception("%s failed unexpectedly (%d in a row), retrying in %.1fs", name, backoff.failures, delay)
        else:
            backoff.succeeded()
            delay = period_s if asked is None else asked
        if wait(stop, delay, wake):
            return
