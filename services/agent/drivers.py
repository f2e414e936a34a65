"""One application driver: `spark-submit` in client mode, its log, and its outcome."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

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
    # A Livy session's REPL exchange directory (services/agent/repl.py); None for batches.
    repl_dir: Path | None = None
    _scanned: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.cwd.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            # Own process group, so killing this driver kills its Python and JVM, nothing else.
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.started_at = time.time()
        log.info("app %s: driver started (pid %d)", self.app_id, self.proc.pid)

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def find_spark_app_id(self) -> str:
        """Scan the new part of the log for the id the master gave the application."""
        if self.spark_app_id:
            return self.spark_app_id
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(max(0, self._scanned - 64))
                chunk = fh.read()
                self._scanned = fh.tell()
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
