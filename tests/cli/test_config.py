"""The CLI's pure parts: the config file (contexts, 0600, atomic) and the exit code of an application."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from spaas.cli.commands import app_exit_code
from spaas.cli.config import Config, ConfigError, Context, config_path, load, save


def test_config_path_honours_xdg_config_home() -> None:
    assert config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == Path("/x/spaas/config.yaml")
    assert config_path({"HOME": "/h"}) == Path("/h/.config/spaas/config.yaml")


def test_contexts_round_trip_0600_and_the_token_is_not_public(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "spaas" / "config.yaml"
    ctx = Context(name="a", url="http://h:1", user="alice", token="secret-token", tenant="acme")
    save(Config(current="a", contexts={"a": ctx, "b": Context(name="b", url="http://h:2")}), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = load(path)
    assert loaded.current == "a" and loaded.context() == ctx and loaded.context("b").token is None  # type: ignore[union-attr]
    assert "secret-token" not in repr(ctx) and "secret-token" not in str(ctx.public())
    assert ctx.public()["logged_in"] is True
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # no temporary file left
    with pytest.raises(ConfigError, match="no context 'zzz'"):
        loaded.context("zzz")


def test_an_unreadable_config_says_so(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("contexts: [{url: 1}]\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load(path)
    assert load(tmp_path / "missing.yaml") == Config()


@pytest.mark.parametrize("view, code", [
    ({"state": "FINISHED", "exit_code": 0}, 0),
    ({"state": "FAILED", "exit_code": 3}, 3),
    ({"state": "FAILED", "exit_code": None, "reason": "DriverLost"}, 1),
    ({"state": "FAILED", "exit_code": 255}, 1),
    ({"state": "FAILED", "exit_code": -9}, 1),
    ({"state": "KILLED", "exit_code": -15}, 137),
])
def test_exit_code_of_an_application(view: dict[str, object], code: int) -> None:
    assert app_exit_code(view) == code  # type: ignore[arg-type]
