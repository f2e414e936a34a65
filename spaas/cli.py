"""`spaas` command line: start and stop the embedded dev stack.

    spaas up      start Redis, etcd and every service; print the API URL and admin token
    spaas down    stop everything `up` started, SIG containers included
    spaas status  what runs
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from spaas.settings import StackSettings
from spaas.stack import Stack, StackError, _wait


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def cmd_up(settings: StackSettings) -> int:
    existing = Stack.load(settings.state_dir.resolve())
    if existing and any(_alive(pid) for pid in existing.pids.values()):
        print(f"spaas is already running from {settings.state_dir} (API {existing.api_url}); `spaas down` first",
              file=sys.stderr)
        return 1
    stack = _stack_from(settings)
    try:
        stack.up()
        _wait(lambda: stack.token_file.exists(), "the admin token file", 30)
    except StackError as exc:
        print(f"spaas up failed: {exc}", file=sys.stderr)
        print(f"logs: {stack.state_dir / 'logs'}", file=sys.stderr)
        stack.down()
        return 1
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
    for name, pid in sorted(stack.pids.items()):
        print(f"{name:15} pid {pid:<8} {'running' if _alive(pid) else 'DEAD'}")
    print(f"API: {stack.api_url}/api/v1")
    if stack.proxy_port:
        print(f"proxy: {stack.proxy_url}/")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spaas", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--state-dir", type=Path, help="where state lives (default $SPAAS_STATE_DIR or ./.state)")
    parser.add_argument("--port", type=int, help="API port (default 8080; 0 picks a free one)")
    parser.add_argument("--proxy-port", type=int, help="proxy port (default $SPAAS_PROXY_PORT or 8090; 0 picks a free one)")
    args = parser.parse_args(argv)
    settings = StackSettings.from_env()
    if args.state_dir:
        settings = settings.replace(state_dir=args.state_dir)
    if args.port is not None:
        settings = settings.replace(api_port=args.port)
    if args.proxy_port is not None:
        settings = settings.replace(proxy_port=args.proxy_port)
    return {"up": cmd_up, "down": cmd_down, "status": cmd_status}[args.command](settings)


if __name__ == "__main__":
    sys.exit(main())
