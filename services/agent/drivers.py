"""One application driver: `spark-submit` in client mode, its log, and its outcome.

The driver log sits in the SIG's storage, which the application itself can change: it is opened
once, through `spaas.safefs` (no link followed, a regular file of its own), and scanned through
that same fd afterwards, so whatever the job later puts at the log's name is never read. The
driver's work directory holds its properties file (with the SIG's Spark secret): `cleanup()`
removes it, and the agent calls it on every way a driver ends, failures to start included.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from spaas import safefs

log = logging.getLogger(__name__)

APP_ID_RE = re.compile(rb"app-\d{14}-\d{4,}")


@dataclass
class Driver:
    app_id: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path
    proc: subprocess.Popen[bytes] | None = None
    spark_app_id: str = ""
    kill_requested: bool = False
    started_at: float = 0.0
    # The driver UI (for its metrics) and what it asked for, for the demand report.
    ui_url: str = ""
    requested_cores: int = 0
    dynamic_allocation: bool = False
    executor_cores: int = 0
    # Opens the log (read/write, append) safely; default: `log_path` beneath its own directory.
    open_log: Callable[[], int] | None = field(default=None, repr=False)
    # A Livy session's REPL exchange directory (services/agent/repl.py); None for batches.
    repl_dir: Path | None = None
    _scanned: int = field(default=0, repr=False)
    _log_fd: int = field(default=-1, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self) -> None:
        self.cwd.mkdir(parents=True, exist_ok=True)
        if self.open_log is not None:
            self._log_fd = self.open_log()
        else:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_fd = safefs.open_append(self.log_path.parent, self.log_path.name)
        # Own process group, so killing this driver kills its Python and JVM, nothing else.
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=self._log_fd,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.started_at = time.time()
        log.info("app %s: driver started (pid %d)", self.app_id, self.proc.pid)

    def cleanup(self) -> None:
        """Close the log and remove the work directory (and the secret in it); idempotent."""
        if self._log_fd >= 0:
            try:
                os.close(self._log_fd)
            except OSError:
                pass
            self._log_fd = -1
        try:
            safefs.remove(self.cwd.parent, [self.cwd.name])
        except (OSError, safefs.UnsafeFile) as exc:
            log.warning("app %s: work directory %s not removed: %s", self.app_id, self.cwd, exc)

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def find_spark_app_id(self) -> str:
        """Scan the new part of the log for the id the master gave the application."""
        if self.spark_app_id:
            return self.spark_app_id
        if self._log_fd < 0:
            return ""
        try:
            start = max(0, self._scanned - 64)
            chunk = os.pread(self._log_fd, 4 << 20, start)
            self._scanned = start + len(chunk)
        except OSError:
            return ""
        match = APP_ID_RE.search(chunk)
        if match:
            self.spark_app_id = match.group().decode()
        return self.spark_app_id

    def kill(self, grace_s: float = 10.0) -> None:
        """SIGTERM the driver's process group, SIGKILL after `grace_s`; returns when it is gone."""
        with self._lock:
            self.kill_requested = True
            if self.proc is None or self.proc.poll() is not None:
                return
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)
        # The driver's Python or JVM children may outlive the leader; end the whole group.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
