"""The CLI's config file: named contexts {name, url, user, token, tenant, sig} and the current one,
like a kubeconfig.

    $XDG_CONFIG_HOME/spaas/config.yaml   (default ~/.config/spaas/config.yaml)

    current-context: alice@127.0.0.1:8080
    contexts:
    - name: alice@127.0.0.1:8080
      url: http://127.0.0.1:8080
      user: alice
      token: spaas_...        # secret: the file is written 0600 (its directory 0700), atomically
      tenant: acme            # defaults for -t/--tenant and -s/--sig
      sig: etl
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(Exception):
    """The config file cannot be read or has no such context."""


@dataclass
class Context:
    name: str
    url: str
    user: str | None = None
    token: str | None = field(default=None, repr=False)
    tenant: str | None = None
    sig: str | None = None
    insecure: bool = False  # do not verify the server's TLS certificate (self-signed dev proxies)

    def public(self) -> dict[str, Any]:
        """What may be shown: everything but the token (whether there is one)."""
        out = {k: v for k, v in asdict(self).items() if k != "token"}
        out["logged_in"] = bool(self.token)
        return out


@dataclass
class Config:
    current: str | None = None
    contexts: dict[str, Context] = field(default_factory=dict)

    def context(self, name: str | None = None) -> Context | None:
        name = name or self.current
        if name is None:
            return None
        if name not in self.contexts:
            raise ConfigError(f"no context {name!r}; `spaas context list` shows them")
        return self.contexts[name]


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "spaas" / "config.yaml"


def load(path: Path) -> Config:
    if not path.exists():
        return Config()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        contexts = {c["name"]: Context(**{k: v for k, v in c.items() if k in Context.__dataclass_fields__})
                    for c in raw.get("contexts") or []}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path}: cannot read the config ({type(exc).__name__}); fix or remove it") from None
    return Config(current=raw.get("current-context"), contexts=contexts)


def save(config: Config, path: Path) -> None:
    """Write the config 0600 in a 0700 directory, replacing the old file in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    doc = {"current-context": config.current,
           "contexts": [{k: v for k, v in asdict(c).items() if v not in (None, False)} for c in config.contexts.values()]}
    fd, tmp = tempfile.mkstemp(prefix=".config-", dir=path.parent)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(doc, fh, sort_keys=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
