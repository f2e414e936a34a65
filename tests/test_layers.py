"""The layers of the code base, enforced (conventions 1 and 4 of the design).

- A service imports the shared library (`spaas`) and itself, never another service; the library
  imports no service.
- Only adapter modules import the clients of outside systems (`redis`, `kombu`, `celery`, `docker`,
  `ldap3`, `kubernetes`, `requests`): `ADAPTERS` below lists each module and what it may import, so
  a new import of one of them is a decision made here, in review, not by accident.

Imports are read from the syntax tree (module level and inside functions alike); the failure names
the file, the line and the import.

- `spaas.keys.Keys` is the only owner of the etcd key layout: no module builds a key from the prefix
  and a layout segment (`keys.prefix + "/members/"`, `f"{prefix}/hosts/..."`) outside spaas/keys.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Outside systems whose clients stay behind adapters.
GUARDED = frozenset({"redis", "kombu", "celery", "docker", "ldap3", "kubernetes", "requests"})

# module path -> the guarded packages it may import, and why it is an adapter.
ADAPTERS: dict[str, frozenset[str]] = {
    "spaas/etcd.py": frozenset({"requests"}),              # the etcd store (etcd's JSON gateway)
    "spaas/bus.py": frozenset({"celery", "kombu"}),        # the message bus
    "spaas/logstream.py": frozenset({"redis"}),            # build/driver log streams
    "spaas/demand.py": frozenset({"redis"}),               # demand reports
    "spaas/redisauth.py": frozenset({"redis"}),            # Redis ACL users
    "spaas/ldap.py": frozenset({"ldap3"}),                 # the LDAP authenticator
    "spaas/runtimes/docker.py": frozenset({"docker", "requests"}),  # the Docker runtime
    "spaas/runtimes/kubernetes.py": frozenset({"kubernetes"}),      # the Kubernetes runtime
    "spaas/cli/stack.py": frozenset({"requests"}),         # `spaas up/down/status`: health probes of the stack
    "spaas/integration_redis.py": frozenset({"redis", "kombu"}),  # integrations' Redis users, queues and bindings
    "services/api/integrations/events.py": frozenset({"kombu"}),    # lifecycle events onto the topic exchange
    "services/api/integrations/requests.py": frozenset({"kombu"}),  # the integrations' request queue and replies
    "spaas/client.py": frozenset({"requests"}),            # the Python SDK over the API
    "spaas/stack.py": frozenset({"requests"}),             # the embedded stack's health probes
    "services/api/ratelimit.py": frozenset({"redis"}),     # login rate limits in Redis
    "services/builder/dockerimage.py": frozenset({"docker"}),      # the Docker image builder
    "services/builder/kanikojob.py": frozenset({"kubernetes"}),    # the Kaniko build job
    "services/proxy/session.py": frozenset({"requests"}),  # the proxy's calls to the API
    "services/agent/agent.py": frozenset({"requests"}),    # the agent's calls to its Spark master
    "services/api/console/api.py": frozenset({"requests"}),  # the console's SDK transport: the API in-process
    "services/agent/notebook.py": frozenset({"requests"}),  # the notebook agent's calls to its Jupyter server
    "services/builder/cds.py": frozenset({"requests"}),     # probes of the daemons run to dump CDS archives
    "services/agent/daemon.py": frozenset({"requests"}),   # Spark daemon readiness probes
    "services/agent/demand.py": frozenset({"requests"}),   # Spark master JSON (waiting work)
}


def imports_of(source: str, module: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in `source`; relative imports are made absolute."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            # `from services import api` names a module too
            found.append((node.lineno, name))
            found.extend((node.lineno, f"{name}.{alias.name}") for alias in node.names if name in ("services", "spaas"))
    return found


def violations(path: str, source: str) -> list[str]:
    """What `path` (relative to the root, e.g. "services/api/app.py") imports against the layers."""
    parts = path[: -len(".py")].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    module = ".".join(parts)
    own_service = parts[1] if parts[0] == "services" and len(parts) > 1 else None
    allowed = ADAPTERS.get(path, frozenset())
    bad: list[str] = []
    for line, name in imports_of(source, module):
        top = name.split(".")
        if top[0] == "services" and len(top) > 1:
            if parts[0] == "spaas":
                bad.append(f"{path}:{line}: the library imports the service module {name}")
            elif own_service is not None and top[1] != own_service:
                bad.append(f"{path}:{line}: service {own_service!r} imports another service's module {name}")
        if top[0] in GUARDED and top[0] not in allowed:
            bad.append(f"{path}:{line}: imports {name}, but only the adapters listed in tests/test_layers.py "
                       f"ADAPTERS may import {top[0]}")
    return bad


def sources() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for top in ("spaas", "services") for p in (ROOT / top).rglob("*.py"))


def test_layers_hold() -> None:
    bad = [v for path in sources() for v in violations(path, (ROOT / path).read_text())]
    assert not bad, "layer violations:\n" + "\n".join(bad)


def test_every_listed_adapter_exists_or_is_expected() -> None:
    """A stale entry would silently allow a future module of that name; spaas/client.py is being added."""
    missing = [p for p in ADAPTERS if not (ROOT / p).exists() and p != "spaas/client.py"]
    assert not missing, f"ADAPTERS lists modules that do not exist: {missing}"


@pytest.mark.parametrize(("path", "source", "expected"), [
    ("services/api/x.py", "from services.scaler.policy import decide\n", "imports another service's module"),
    ("services/api/x.py", "from services import scaler\n", "imports another service's module"),
    ("services/api/x.py", "def f():\n    import redis\n", "only the adapters"),
    ("spaas/model.py", "import requests\n", "only the adapters"),
    ("spaas/model.py", "from services.api import app\n", "the library imports"),
    ("spaas/logstream.py", "import ldap3\n", "only the adapters"),
    ("services/agent/x.py", "from . import host\nfrom ..api import app\n", "imports another service's module"),
])
def test_checker_catches(path: str, source: str, expected: str) -> None:
    found = violations(path, source)
    assert found and expected in found[0], found


@pytest.mark.parametrize(("path", "source"), [
    ("services/api/x.py", "from services.api.deps import Deps\nfrom spaas.errors import Invalid\n"),
    ("services/agent/x.py", "from . import host\n"),
    ("spaas/logstream.py", "import redis\n"),
    ("services/api/x.py", "import requests_toolbelt\n"),
])
def test_checker_allows(path: str, source: str) -> None:
    assert violations(path, source) == []


# The top-level segments of the etcd layout (spaas/keys.py).
KEY_SEGMENTS = ("/tenants/", "/sigs/", "/secrets/", "/apps/", "/hosts/", "/builds/", "/build-locks/", "/auth/",
                "/members/", "/audit/", "/audit-days/")


def _names_prefix(node: ast.AST) -> bool:
    return any((isinstance(n, ast.Attribute) and n.attr.endswith("prefix")) or
               (isinstance(n, ast.Name) and n.id.endswith("prefix")) for n in ast.walk(node))


def _layout_strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and any(n.value.startswith(seg) or n.value.startswith(seg.rstrip("/")) and n.value != "/"
                    for seg in KEY_SEGMENTS)]


def key_builders(path: str, source: str) -> list[str]:
    """Expressions in `path` that build an etcd key from a prefix and a layout segment."""
    bad: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BinOp | ast.JoinedStr) and _names_prefix(node):
            found = _layout_strings(node)
            if found:
                bad.append(f"{path}:{node.lineno}: builds an etcd key from a prefix and {found[0]!r}; "
                           "add a method to spaas.keys.Keys instead")
    return sorted(set(bad))


def test_keys_is_the_only_owner_of_the_key_layout() -> None:
    bad = [v for path in sources() if path != "spaas/keys.py" for v in key_builders(path, (ROOT / path).read_text())]
    assert not bad, "key layout outside spaas/keys.py:\n" + "\n".join(bad)


@pytest.mark.parametrize(("source", "caught"), [
    ('k = keys.prefix + "/members/"\n', True),
    ('k = f"{self._prefix}/hosts/{t}"\n', True),
    ('k = f"{keys.prefix}/apps/{t}/{s}/"\n', True),
    ('k = keys.all_members()\n', False),
    ('loc = prefix + "/" + q\n', False),                      # a URL path, not a key
    ('route = "/tenants/<tenant>/sigs"\n', False),            # a Flask route, no prefix involved
])
def test_key_builder_check(source: str, caught: bool) -> None:
    assert bool(key_builders("services/x.py", source)) is caught
