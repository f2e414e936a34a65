"""How the CLI prints records: `-o table` (Rich, the default for lists), `-o yaml` (the default for one
record) or `-o json` (what the API returned, for scripts). Progress goes to stderr: a Rich progress
bar when stderr is a terminal, one plain line per change otherwise."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # Rich loads when a table or a bar is drawn, not on every start (shell completion)
    from rich.console import Console
    from rich.progress import Progress

FORMATS = ("table", "json", "yaml")
# One column: (header, getter).
Column = tuple[str, Callable[[dict[str, Any]], Any]]


def _when(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if isinstance(ts, (int, float)) else "-"


def _get(*path: str) -> Callable[[dict[str, Any]], Any]:
    def get(record: dict[str, Any]) -> Any:
        value: Any = record
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        return value
    return get


def _used(what: str, limit: str) -> Callable[[dict[str, Any]], str]:
    return lambda t: f"{(t.get('usage') or {}).get(what, '-')}/{(t.get('quota') or {}).get(limit, '-')}"


COLUMNS: dict[str, list[Column]] = {
    "tenant": [("NAME", _get("name")), ("CONTAINERS", _used("containers", "max_containers")),
               ("CORES", _used("cores", "cores")), ("MEMORY_MB", _used("memory_mb", "memory_mb")),
               ("GPUS", _used("gpus", "gpus"))],
    "sig": [("NAME", _get("name")), ("PHASE", _get("status", "phase")), ("GEN", _get("generation")),
            ("SPARK", _get("spec", "spark_version")),
            ("WORKERS", lambda s: f"{_get('status', 'workers', 'ready')(s)}/{_get('status', 'workers', 'desired')(s)}"),
            ("REASON", _get("status", "reason")), ("MESSAGE", _get("status", "message"))],
    "app": [("ID", _get("id")), ("NAME", _get("name")), ("STATE", _get("state")), ("EXIT", _get("exit_code")),
            ("REASON", _get("reason")), ("SUBMITTER", _get("submitter")),
            ("SUBMITTED", lambda a: _when(a.get("submitted_at"))), ("FILE", _get("request", "file"))],
    "file": [("PATH", _get("path")), ("SIZE", _get("size")), ("MODIFIED", lambda f: _when(f.get("modified_at")))],
    "member": [("KIND", _get("kind")), ("NAME", _get("name")), ("ROLES", lambda m: ",".join(m.get("roles") or []))],
    "token": [("ID", _get("id")), ("NAME", _get("name")), ("CREATED", lambda t: _when(t.get("created_at"))),
              ("EXPIRES", lambda t: _when(t.get("expires_at")))],
    "context": [("CURRENT", lambda c: "*" if c.get("current") else ""), ("NAME", _get("name")), ("URL", _get("url")),
                ("USER", _get("user")), ("TENANT", _get("tenant")), ("SIG", _get("sig")),
                ("LOGGED_IN", lambda c: "yes" if c.get("logged_in") else "no")],
    "decision": [("TIME", lambda d: _when(d.get("at") or d.get("time") or d.get("ts"))), ("ACTION", _get("action")),
                 ("FROM", _get("from")), ("TO", _get("to")), ("REASON", _get("reason"))],
}


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Not a terminal: no colours, and wide enough that tables are not cut for scripts.
    return Console(file=stream, width=None if stream.isatty() else 250, highlight=False)


def show(data: Any, fmt: str | None, *, kind: str | None = None) -> None:
    """Print one record or a list. A list in table form uses the kind's columns."""
    fmt = fmt or ("table" if isinstance(data, list) and kind in COLUMNS else "yaml")
    if fmt == "json":
        print(json.dumps(data, indent=2, sort_keys=False))
    elif fmt == "yaml" or kind not in COLUMNS:
        print(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())
    else:
        from rich.table import Table

        rows: Sequence[dict[str, Any]] = data if isinstance(data, list) else [data]
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for header, _ in COLUMNS[kind]:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*("-" if (v := get(row)) is None else str(v) for _, get in COLUMNS[kind]))
        console().print(table)


def note(message: str) -> None:
    """A line for people (progress, what was done) on stderr, so stdout stays data."""
    print(message, file=sys.stderr, flush=True)


SIG_STEPS = ["PENDING", "BUILDING", "DEPLOYING", "READY"]


class PhaseProgress:
    """Shows a SIG (or an application) moving through its phases: a Rich bar on a terminal,
    otherwise one plain line per change (`sig acme/etl: BUILDING`)."""

    def __init__(self, label: str, steps: list[str], *, tty: bool | None = None) -> None:
        self.label, self.steps = label, steps
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.last: str | None = None
        self.progress: Progress | None = None
        self.task: Any = None

    def __enter__(self) -> PhaseProgress:
        if self.tty:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                                     TextColumn("{task.fields[state]}"), TimeElapsedColumn(), console=console(True),
                                     transient=False)
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=len(self.steps) - 1, state="...")
        return self

    def update(self, state: str, detail: str = "") -> None:
        text = state + (f" ({detail})" if detail else "")
        if self.progress is not None:
            done = self.steps.index(state) if state in self.steps else None
            if done is not None:
                self.progress.update(self.task, state=text, completed=done)
            else:
                self.progress.update(self.task, state=text)
        elif text != self.last:
            note(f"{self.label}: {text}")
        self.last = text

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
