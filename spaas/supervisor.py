"""The embedded stack's supervisor: started by `spaas up`, it starts Redis, etcd and every
service and keeps them running.

One process (`python -m spaas.supervisor STATE_DIR`, its own session, log in
`STATE/logs/supervisor.log`) polls its components every half second. A component whose process
is gone (killed, crashed, a zombie) has its whole process group killed (no orphaned children)
and is started again on its recorded ports (a service is spawned and not waited for, so one
whose readiness hangs on another dead component never holds up that component's restart), after
a backoff that doubles per quick failure
(1 s, 2 s, ... 30 s) and resets once it has run a minute. Each restart is recorded in
`STATE/stack.json` (`restarts`: count, last exit status, time), which `spaas status` shows.
At start it adopts what still runs from an earlier record and starts only what is missing, so
`spaas up` on a partly dead stack repairs it. SIGTERM (`spaas down`) stops the supervisor only;
`down` then stops the components.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from spaas.loops import run_every
from spaas.stack import SERVICES, Stack, StackError, missing_programs

log = logging.getLogger("spaas.supervisor")

COMPONENTS = ("redis", "etcd", *SERVICES)
BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
# A component that ran this long before dying is restarted after the first backoff again.
STABLE_S = 60.0


def alive(pid: int) -> bool:
    """True unless the process is gone or a zombie (pid 0: never started)."""
    if pid <= 0:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _kill_group(pid: int) -> None:
    """What is left of a dead component's session (its children) goes too."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Supervisor:
    def __init__(self, stack: Stack, *, stop: threading.Event, poll_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stack = stack
        self.stop = stop
        self.poll_s = poll_s
        self._clock = clock
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._started_at: dict[str, float] = {}
        self._delay: dict[str, float] = {}
        self._not_before: dict[str, float] = {}

    def _exit_status(self, name: str, pid: int) -> str:
        proc = self._procs.get(name)
        if proc is not None and proc.pid == pid:
            try:
                # Called once the process looks dead (gone or a zombie); a killed multi-threaded
                # process (etcd) can be reaped only once all its threads are gone: wait briefly.
                code: int | None = proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                code = None
            if code is not None:
                return f"killed by signal {-code}" if code < 0 else f"exit {code}"
        return "unknown (not started by this supervisor)"

    def _start(self, name: str, *, wait: bool = True) -> None:
        self._started_at[name] = self._clock()
        try:
            self._procs[name] = self.stack.start_component(name, wait=wait)
        except StackError as exc:
            log.error("%s did not come up: %s", name, exc)

    def adopt_or_start(self) -> None:
        """Keep what runs (from an earlier record), start what does not, in dependency order."""
        for name in COMPONENTS:
            pid = int(self.stack.pids.get(name, 0))
            if alive(pid):
                log.info("%s already runs (pid %d): adopted", name, pid)
                self._started_at[name] = self._clock()
                continue
            if pid:
                _kill_group(pid)
                self._record(name, "found dead at supervisor start")
            log.info("starting %s", name)
            self._start(name)

    def _record(self, name: str, status: str) -> None:
        entry = dict(self.stack.restarts.get(name, {}))
        entry.update(count=int(str(entry.get("count", 0))) + 1, last_exit=status, at=time.time())
        self.stack.restarts[name] = entry
        self.stack._save()

    def check_once(self) -> list[str]:
        """Restart what died (when its backoff allows); the names restarted."""
        restarted = []
        for name in COMPONENTS:
            if self.stop.is_set():
                break
            pid = int(self.stack.pids.get(name, 0))
            now = self._clock()
            if alive(pid):
                if now - self._started_at.get(name, now) >= STABLE_S:
                    self._delay.pop(name, None)
                continue
            if now < self._not_before.get(name, 0.0):
                continue
            status = self._exit_status(name, pid)
            if pid:
                _kill_group(pid)
            self._delay[name] = min(max(self._delay.get(name, 0.0) * 2, BACKOFF_START_S), BACKOFF_MAX_S)
            self._not_before[name] = now + self._delay[name]
            log.warning("%s (pid %d) is gone (%s): restarting", name, pid, status)
            self._record(name, status)
            # A restarted service is spawned, not waited for: its readiness may hang on another
            # component that died with it (the proxy on etcd), which this check must restart next.
            self._start(name, wait=False)
            restarted.append(name)
        return restarted

    def run(self) -> None:
        self.adopt_or_start()
        # A check that fails (stack.json not writable, say) is retried after a backoff, never ends supervision.
        def check() -> None:
            self.check_once()
        run_every(check, self.stop, self.poll_s, max_backoff_s=BACKOFF_MAX_S, first_backoff_s=BACKOFF_START_S,
                  name="supervisor check")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    state_dir = Path(args[0]).resolve()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s supervisor: %(message)s")
    problems = missing_programs()
    if problems:
        log.error("; ".join(problems))
        return 1
    stack = Stack.load(state_dir)
    if stack is None:
        raise SystemExit(f"no {state_dir / 'stack.json'}: `spaas up` writes it before starting the supervisor")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stack.supervisor = os.getpid()
    stack._save()
    Supervisor(stack, stop=stop).run()
    log.info("supervisor stopped (components keep running until `spaas down`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
