"""The hygiene gate: ruff and mypy pass on the code base (configured in pyproject.toml).

Run it alone with `./dev lint` (or `pytest tests/test_hygiene.py`). A failure prints the tools'
own report, so the fix is in the output. The tools come pinned from requirements-test.txt and run
from this interpreter's environment, so CI and a developer check the same thing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What the linter covers: all the Python the project ships, tests and benchmarks included.
LINTED = ["spaas", "services", "tests", "bench"]


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    done = run_tool("ruff", "check", "--no-cache", "--output-format", "concise", *LINTED)
    assert done.returncode == 0, f"ruff check {' '.join(LINTED)} failed:\n{done.stdout}{done.stderr}"


def test_mypy_finds_nothing() -> None:
    """Strict for `spaas/`, checked for `services/` (the files and rules are in pyproject.toml)."""
    done = run_tool("mypy", "--no-error-summary")
    assert done.returncode == 0, f"mypy (see [tool.mypy] in pyproject.toml) failed:\n{done.stdout}{done.stderr}"
