"""`spaas up|down|status`: start and stop the embedded dev stack (wired into the `spaas` command by
`spaas.cli`; the options and output are what they always were).

    spaas up      start Redis, etcd and every service under a supervisor that restarts what dies;
                  on a partly dead stack, repair it; print the API URL and admin token
    spaas down    stop everything `up` started, SIG containers included
    spaas status  what runs, and how often each component was restarted
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import requests

from spaas.settings import StackSettings
from spaas.stack import ROOT, Stack, StackError, _spawn, _wait, free_port, missing_programs
from spaas.supervisor import COMPONENTS
from spaas.supervisor import alive as _running


def _stack_from(settings: StackSettings) -> Stack:
    return Stack(
        state_dir=settings.state_dir.resolve(),
        api_port=settings.api_port,
        registry_port=settings.registry_port,
        proxy_port=settings.proxy_port,
        redis_port=settings.redis_port,
        etcd_port=settings.etcd_port,
        spark_versions=settings.spark_versions,
        layers_dir=None if str(settings.layers_dir) in ("", ".") else settings.layers_dir.resolve(),
    )


def _ready(state_dir: Path) -> bool:
    stack = Stack.load(state_dir)
    if stack is None or not all(_running(int(stack.pids.get(n, 0))) for n in COMPONENTS):
        return False
    if not (stack.token_file.exists() and requests.get(stack.api_url + "/api/v1/healthz", timeout=2).ok):
        return False
    # The proxy starts last: up means the one door answers too.
    return not stack.proxy_port or requests.get(stack.proxy_url + "/healthz", timeout=2, verify=False).ok


def cmd_up(settings: StackSettings) -> int:
    """Start the supervisor, which starts (or, on a partly dead stack, repairs) every component."""
    state_dir = settings.state_dir.resolve()
    problems = missing_programs()
    if problems:
        print("spaas up failed: " + "\n".join(problems), file=sys.stderr)
        return 1
    existing = Stack.load(state_dir)
    fresh = existing is None
    stack = existing or _stack_from(settings)
    if not _running(stack.supervisor):
        if fresh:
            state_dir.mkdir(parents=True, exist_ok=True)
            stack.api_port = stack.api_port or free_port()
            stack.registry_port = stack.registry_port or free_port()
            stack.proxy_port = stack.proxy_port or free_port()
            stack._save()
        else:
            dead = [n for n in COMPONENTS if not _running(int(stack.pids.get(n, 0)))]
            print(f"repairing the stack in {state_dir}: " + (", ".join(dead) + " not running" if dead else
                                                              "its supervisor is not running"))
        proc = _spawn([sys.executable, "-m", "spaas.supervisor", str(state_dir)], state_dir / "logs" / "supervisor.log",
                      dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))),
                      cwd=ROOT)
    else:
        proc = None
    try:
        _wait(lambda: _ready(state_dir), "every component of the stack", 300, proc)
    except StackError as exc:
        print(f"spaas up failed: {exc}", file=sys.stderr)
        print(f"logs: {state_dir / 'logs'} (supervisor.log first)", file=sys.stderr)
        if fresh:
            latest = Stack.load(state_dir)
            (latest or stack).down()
        return 1
    stack = Stack.load(state_dir) or stack
    print(f"spaas is up.\n  API:         {stack.api_url}/api/v1\n"
          f"  proxy:       {stack.proxy_url}/  (API {stack.proxy_url}/api/v1, Spark UIs {stack.proxy_url}/sig/<tenant>/<sig>/,"
          f" forward proxy for SIG hosts)\n"
          f"  registry:    http://127.0.0.1:{stack.registry_port}/hosts/<tenant>/<sig>\n"
          f"  metrics:     " + "  ".join(f"{n} http://127.0.0.1:{p}/metrics" for n, p in sorted(stack.health_ports.items()))
          + "\n"
          f"  admin token: {stack.admin_token()}\n  token file:  {stack.token_file}\n"
          f"  logs:        {stack.state_dir / 'logs'}\n  stop with:   spaas down")
    return 0


def cmd_down(settings: StackSettings) -> int:
    stack = Stack.load(settings.state_dir.resolve())
    if stack is None:
        print("spaas is not running (no stack.json)")
        stack = Stack(state_dir=settings.state_dir.resolve())
    stack.down()
    print("spaas is down.")
    return 0


def cmd_status(settings: StackSettings) -> int:
    stack = Stack.load(settings.state_dir.resolve())
    if stack is None:
        print("spaas is not running")
        return 1
    sup = stack.supervisor
    print(f"{'supervisor':15} pid {sup:<8} {'running' if _running(sup) else 'DEAD (spaas up repairs)'}")
    for name, pid in sorted(stack.pids.items()):
        line = f"{name:15} pid {pid:<8} {'running' if _running(pid) else 'DEAD':8}"
        restarts = stack.restarts.get(name)
        if restarts:
            line += f" restarts {restarts.get('count', 0)} (last: {restarts.get('last_exit', '?')})"
        print(line)
    print(f"API: {stack.api_url}/api/v1")
    if stack.proxy_port:
        print(f"proxy: {stack.proxy_url}/")
    return 0

