"""The driver program of a Livy interactive session: `spark-submit ... repl.py <kind> <idle_timeout_s>`.

It runs with the SIG's Python (stdlib and pyspark only: it must not import the platform) in the
session's driver directory, and talks to the agent through files below `./repl/`:

    in/{n}.json       statement n: {"code", "kind"}           written by the agent (atomically)
    cancel/{n}        cancel statement n                       written by the agent
    heartbeat         time of the client's last heartbeat     written by the agent
    out/{n}.json      {"state", "output", "started", "completed"}  written here (atomically)

Statements run one at a time, in order, in one namespace (`spark`, `sc`, `sqlContext` defined).
Python output is what the statement printed plus the value of a final expression, as
`text/plain`; SQL gives `application/json` `{schema, data}`. A failure is, as in Livy, an
`available` statement whose output has `status: error` with `ename`, `evalue`, `traceback`. Cancelling a statement cancels its Spark job group and interrupts
Python. With nothing to do for `idle_timeout_s` (counting client heartbeats) the session ends.
"""

from __future__ import annotations

import _thread
import ast
import io
import json
import os
import sys
import threading
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

SQL_MAX_ROWS = 1000
POLL_S = 0.1


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, default=str))
    os.replace(tmp, path)


def error_output(exc: BaseException, n: int) -> dict[str, Any]:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {"status": "error", "execution_count": n, "ename": type(exc).__name__, "evalue": str(exc),
            "traceback": lines}


def run_python(code: str, namespace: dict[str, Any]) -> str:
    """Run `code`; returns what it printed, plus the repr of a final expression's value."""
    tree = ast.parse(code, "<stdin>", "exec")
    last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    body = tree.body[:-1] if last is not None else tree.body
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        exec(compile(ast.Module(body=body, type_ignores=[]), "<stdin>", "exec"), namespace)
        if last is not None:
            value = eval(compile(ast.Expression(body=last.value), "<stdin>", "eval"), namespace)
            if value is not None:
                print(repr(value))
    return out.getvalue().rstrip("\n")


def run_sql(code: str, spark: Any) -> dict[str, Any]:
    df = spark.sql(code)
    rows = df.take(SQL_MAX_ROWS)
    data = [[json_safe(v) for v in row] for row in rows]
    return {"schema": json.loads(df.schema.json()), "data": data}


def json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return str(value)


class Repl:
    def __init__(self, root: Path, kind: str, idle_timeout_s: float) -> None:
        self.root = root
        self.kind = kind
        self.idle_timeout_s = idle_timeout_s
        for sub in ("in", "out", "cancel"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.current: int | None = None
        self.cancelled: set[int] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        from pyspark.sql import SparkSession

        self.spark = SparkSession.builder.getOrCreate()
        self.sc = self.spark.sparkContext
        self.namespace: dict[str, Any] = {"__name__": "__main__", "spark": self.spark, "sc": self.sc,
                                          "sqlContext": self.spark}

    def done(self) -> set[int]:
        out = set()
        for p in (self.root / "out").glob("*.json"):
            try:
                if json.loads(p.read_text()).get("state") in ("available", "error", "cancelled"):
                    out.add(int(p.stem))
            except (ValueError, OSError):
                pass
        return out

    def pending(self, done: set[int]) -> list[int]:
        return sorted(n for n in (int(p.stem) for p in (self.root / "in").glob("*.json") if p.stem.isdigit())
                      if n not in done)

    def last_heartbeat(self) -> float:
        try:
            return float((self.root / "heartbeat").read_text().strip() or 0)
        except (OSError, ValueError):
            return 0.0

    def watch_cancels(self) -> None:
        """A cancel file for the running statement: cancel its Spark jobs, then interrupt Python."""
        while not self.stop.wait(POLL_S):
            with self.lock:
                n = self.current
                if n is None or n in self.cancelled or not (self.root / "cancel" / str(n)).exists():
                    continue
                self.cancelled.add(n)
            self.sc.cancelJobGroup(f"livy-{n}")
            # A Spark job fails on its own once cancelled; interrupt Python only if it keeps running.
            deadline = time.time() + 2.0
            while time.time() < deadline and self.current == n:
                time.sleep(0.05)
            with self.lock:
                if self.current == n:
                    _thread.interrupt_main()

    def run_one(self, n: int) -> None:
        started = time.time()
        out_path = self.root / "out" / f"{n}.json"
        if (self.root / "cancel" / str(n)).exists():
            write_atomic(out_path, {"state": "cancelled", "output": None, "started": started, "completed": started})
            return
        stmt = json.loads((self.root / "in" / f"{n}.json").read_text())
        kind = stmt.get("kind") or self.kind
        write_atomic(out_path, {"state": "running", "output": None, "started": started})
        self.sc.setJobGroup(f"livy-{n}", f"statement {n}", interruptOnCancel=True)
        state, output = "available", None
        try:
            with self.lock:
                self.current = n
            try:
                if kind == "sql":
                    output = {"status": "ok", "execution_count": n, "data": {"application/json": run_sql(stmt["code"], self.spark)}}
                elif kind in ("pyspark", "python", "pyspark3"):
                    output = {"status": "ok", "execution_count": n, "data": {"text/plain": run_python(stmt["code"], self.namespace)}}
                else:
                    raise ValueError(f"statement kind {kind!r} is not supported here; use pyspark or sql")
            finally:
                with self.lock:
                    self.current = None
        except BaseException as exc:  # noqa: BLE001 - a statement's failure is its output, not the REPL's
            if n in self.cancelled:
                state, output = "cancelled", None
            else:
                # As Livy: the statement ran (state available); its output says it failed.
                output = error_output(exc, n)
                if isinstance(exc, SystemExit):
                    write_atomic(out_path, {"state": state, "output": output, "started": started,
                                            "completed": time.time()})
                    raise
        write_atomic(out_path, {"state": state, "output": output, "started": started, "completed": time.time()})

    def settle_cancelled(self) -> None:
        done = self.done()
        for n in sorted(self.cancelled - done):
            if (self.root / "in" / f"{n}.json").exists():
                now = time.time()
                write_atomic(self.root / "out" / f"{n}.json",
                             {"state": "cancelled", "output": None, "started": now, "completed": now})

    def loop(self) -> int:
        threading.Thread(target=self.watch_cancels, name="cancels", daemon=True).start()
        last_activity = time.time()
        print(f"spaas REPL ready: kind {self.kind}, idle timeout {self.idle_timeout_s:.0f} s", flush=True)
        try:
            while True:
                try:
                    todo = self.pending(self.done())
                    if todo:
                        self.run_one(todo[0])
                        last_activity = time.time()
                        continue
                    idle_since = max(last_activity, self.last_heartbeat())
                    if self.idle_timeout_s > 0 and time.time() - idle_since > self.idle_timeout_s:
                        print(f"session idle for {self.idle_timeout_s:.0f} s; ending it", flush=True)
                        return 0
                    time.sleep(POLL_S)
                except KeyboardInterrupt:
                    # An interrupt that landed outside the statement's own handler: a cancelled
                    # statement must end cancelled, never run again.
                    self.settle_cancelled()
        finally:
            self.stop.set()
            self.spark.stop()


def main(argv: list[str]) -> int:
    kind = argv[1] if len(argv) > 1 else "pyspark"
    idle = float(argv[2]) if len(argv) > 2 else 3600.0
    return Repl(Path.cwd() / "repl", kind, idle).loop()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
