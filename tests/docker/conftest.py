"""The docker-compose stack, started once per session from nothing, exactly as an operator does:
`deploy/images/build.sh` then `docker-compose up -d`. Its names (compose project, network, state
volume, container prefix) are the test's own, so it never touches an operator's `spaas` stack.

Skipped only when no Docker engine can run here; under CI (`CI=true`) that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from spaas.stack import free_port
from tests.e2e.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
# Another name (SPAAS_TEST_DOCKER_STACK) lets a second checkout run its Docker tests beside this one.
STACK = os.environ.get("SPAAS_TEST_DOCKER_STACK", "spaastest")
SPARK = "3.5.9"


def docker_problem() -> str | None:
    for prog in ("docker", "docker-compose"):
        if shutil.which(prog) is None:
            return f"{prog} is not installed (apt-get install docker.io docker-compose; ./dev test does it)"
    try:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                              timeout=20)
    except subprocess.TimeoutExpired:
        return "the Docker engine does not answer (docker info timed out)"
    if info.returncode != 0:
        return f"no Docker engine answers: {info.stderr.strip()[:300]} (./dev test starts dockerd)"
    return None


def require_docker(*, image: str | None = None) -> None:
    """Skip without a Docker engine (fail instead under CI, where these tests must run); fail
    if a needed image was not built."""
    problem = docker_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"Docker tests must run in CI: {problem}")
        pytest.skip(problem)
    if image and subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
        pytest.fail(f"{image} is missing: run deploy/images/build.sh {SPARK} (./dev test does)")


def sh(*argv: str, timeout: float = 120, check: bool = True, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-2000:]}{proc.stdout[-1000:]}")
    return proc.stdout


class Compose:
    def __init__(self, stack: str = STACK) -> None:
        self.stack = stack
        self.port = free_port()
        self.proxy_port = free_port()
        self.token = uuid.uuid4().hex
        self.etcd_root_password = uuid.uuid4().hex
        self.redis_password = uuid.uuid4().hex
        self.env = dict(os.environ, COMPOSE_PROJECT_NAME=stack, SPAAS_NETWORK=f"{stack}-platform",
                        SPAAS_STATE_VOLUME=f"{stack}-state", SPAAS_DOCKER_STACK=stack, SPAAS_API_PORT=str(self.port),
                        SPAAS_PROXY_PORT=str(self.proxy_port),
                        SPAAS_PROXY_PUBLIC_URL=f"http://127.0.0.1:{self.proxy_port}",
                        SPAAS_ADMIN_TOKEN=self.token, SPAAS_SPARK_VERSIONS=SPARK,
                        SPAAS_ETCD_ROOT_PASSWORD=self.etcd_root_password, SPAAS_REDIS_PASSWORD=self.redis_password,
                        # A SIG whose spec does not ask runs no history server here (2 cores in CI).
                        SPAAS_HISTORY_DEFAULT="false")
        self.api = Api(f"http://127.0.0.1:{self.port}", self.token)
        self.proxy_url = f"http://127.0.0.1:{self.proxy_port}"

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        return sh("docker-compose", *args, timeout=timeout, check=check, env=self.env)

    def up(self) -> None:
        self.run("up", "-d")
        self.api.wait("the API", self._api_ok, timeout_s=180)
        self.api.wait("every service healthy", self.healthy, timeout_s=180)

    def ensure_tenant(self, name: str) -> None:
        """The tenant, created unless an earlier test of the session made it."""
        if self.api.call("GET", f"/tenants/{name}").status_code == 404:
            self.api.ok("POST", "/tenants", 201, json={"name": name})

    def ready_sig(self, tenant: str, name: str, timeout_s: float = 600, **spec: Any) -> dict[str, Any]:
        """A SIG of `SPARK` created in `tenant` (made if missing) and waited for until READY."""
        self.ensure_tenant(tenant)
        self.api.ok("POST", f"/tenants/{tenant}/sigs", 202, json={"name": name, "spark_version": SPARK, **spec})
        return self.api.wait_phase(tenant, name, "READY", timeout_s=timeout_s)

    def _api_ok(self) -> bool:
        try:
            return requests.get(self.api.base + "/healthz", timeout=2).ok
        except requests.RequestException:
            return False

    def healthy(self) -> bool:
        ids = self.run("ps", "-q").split()
        states = [json.loads(sh("docker", "inspect", "--format", "{{json .State.Health.Status}}", i)) for i in ids]
        return len(ids) == len(self.services()) and all(s == "healthy" for s in states)

    def services(self) -> list[str]:
        """Every service docker-compose.yml declares (each must run and be healthy)."""
        return self.run("config", "--services").split()

    def containers(self, **labels: str) -> list[dict[str, Any]]:
        """SIG containers of this stack (docker ps -a), with their labels."""
        filters = ["--filter", f"label=spaas.stack={self.stack}"]
        for key, value in labels.items():
            filters += ["--filter", f"label=spaas.{key}={value}"]
        out = sh("docker", "ps", "-a", *filters, "--format", "{{json .}}")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def inspect(self, name: str) -> dict[str, Any]:
        return dict(json.loads(sh("docker", "inspect", name))[0])

    def etcd_prefix(self, prefix: str) -> list[dict[str, Any]]:
        """Values under an etcd prefix, read inside the etcd container (etcd is not published) as root."""
        code = ("import base64,json,urllib.request as u,sys;p=sys.argv[1].encode();"
                "e=p[:-1]+bytes([p[-1]+1]);b=lambda x:base64.b64encode(x).decode();E='http://127.0.0.1:2379/v3/';"
                "t=json.load(u.urlopen(u.Request(E+'auth/authenticate',json.dumps({'name':'root','password':sys.argv[2]}).encode())))['token'];"
                "r=u.urlopen(u.Request(E+'kv/range',json.dumps({'key':b(p),'range_end':b(e)}).encode(),{'Authorization':t}));"
                "print(json.dumps([json.loads(base64.b64decode(k['value'])) for k in json.load(r).get('kvs',[])]))")
        return list(json.loads(self.run("exec", "-T", "etcd", "python3", "-c", code, prefix, self.etcd_root_password)))

    def cleanup(self) -> None:
        self.run("down", "-v", "--remove-orphans", "--timeout", "20", check=False)
        for c in self.containers():
            sh("docker", "rm", "-f", c["ID"], check=False)
        nets = sh("docker", "network", "ls", "-q", "--filter", f"label=spaas.stack={self.stack}", check=False).split()
        for net in nets:
            sh("docker", "network", "rm", net, check=False)
        sh("docker", "network", "rm", f"{self.stack}-platform", check=False)
        sh("docker", "volume", "rm", f"{self.stack}-state", check=False)

    def start(self) -> None:
        """From nothing: clean leftovers of an earlier run, make the platform network, up."""
        self.cleanup()
        sh("docker", "network", "create", "--label", "spaas.stack=platform", f"{self.stack}-platform")
        self.up()


@pytest.fixture(scope="session")
def compose() -> Iterator[Compose]:
    require_docker()
    started = time.monotonic()
    sh(str(ROOT / "deploy/images/build.sh"), SPARK, timeout=1800)
    print(f"images ready in {time.monotonic() - started:.1f}s")
    stack = Compose()
    try:
        stack.start()
        yield stack
    finally:
        if os.environ.get("SPAAS_KEEP_STACK") != "1":
            stack.cleanup()
