"""Fixtures for the CLI tests: the real `spaas` command (`python -m spaas`, what `./dev` and the
console script run) in a subprocess, with its own HOME and XDG_CONFIG_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Cli:
    """Runs `spaas ...` as a user whose config lives under `home`."""

    home: Path
    env: dict[str, str]

    @property
    def config_file(self) -> Path:
        return Path(self.env["XDG_CONFIG_HOME"]) / "spaas" / "config.yaml"

    def __call__(self, *args: str, input: str | None = None, timeout: float = 300,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "spaas", *args], input=input, capture_output=True, text=True,
                              env=dict(self.env, **(env or {})), timeout=timeout, cwd=self.home)

    def ok(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        done = self(*args, **kwargs)  # type: ignore[arg-type]
        assert done.returncode == 0, f"spaas {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done


def make_cli(root: Path) -> Cli:
    home = root / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPAAS_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(root / "xdg"), PYTHONPATH=str(ROOT), COLUMNS="200")
    return Cli(home=home, env=env)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return make_cli(tmp_path)
