"""The `spaas` command end to end: `spaas up` starts the embedded stack (with LDAP), then a cluster
admin and a tenant user work only through the CLI: log in, create a SIG from a YAML file, wait for
it, submit PySpark files and get their output and exit codes, kill a running one, list as JSON,
and `spaas down` stops it all."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spaas.stack import Stack
from tests.cli.conftest import Cli, make_cli
from tests.ldap_fixture import PASSWORDS, Ldap

pytestmark = pytest.mark.e2e

JOB = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("cli").getOrCreate()
total = spark.sparkContext.parallelize(range(1, 101), 2).sum()
print(f"RESULT total={total} args={sys.argv[1:]}")
spark.stop()
"""
FAILING = "import sys\nprint('giving up')\nsys.exit(3)\n"
SLOW = """
import time
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("slow").getOrCreate()
print("STARTED", flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, ldap_server: Ldap) -> Iterator[Cli]:
    root = tmp_path_factory.mktemp("cli")
    cli = make_cli(root)
    state = root / "state"
    cli.env.update(SPAAS_STATE_DIR=str(state), SPAAS_LAYERS_DIR=str(Path.home() / ".cache" / "spaas" / "layers"),
                   SPAAS_REGISTRY_PORT="0", SPAAS_RESYNC_S="1", SPAAS_SPARK_VERSIONS="3.5.9",
                   SPAAS_LDAP_URL=ldap_server.url, SPAAS_LDAP_BASE_DN=ldap_server.base_dn,
                   SPAAS_CLUSTER_ADMIN_GROUPS="platform-ops", SPAAS_HISTORY_DEFAULT="false")
    up = cli("up", "--port", "0", "--proxy-port", "0", timeout=400)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "admin token" in up.stdout
        status = cli("status")
        assert status.returncode == 0 and "api" in status.stdout and "DEAD" not in status.stdout, status.stdout
        yield cli
    finally:
        down = cli("down", timeout=300)
        assert down.returncode == 0, down.stdout + down.stderr
        assert Stack.load(state) is None or "down" in down.stdout


def test_login_sig_from_yaml_submit_output_and_exit_codes(cli: Cli) -> None:
    # `spaas login` with no URL talks to the stack `spaas up` started here.
    cli.ok("login", "-u", "opsadmin", "--password-stdin", "--name", "ops", input=PASSWORDS["opsadmin"] + "\n")
    cli.ok("tenants", "create", "acme")
    cli.ok("members", "grant", "carol", "sig_configure", "user", "-t", "acme")
    cli.ok("login", "-u", "carol", "--password-stdin", "--name", "carol", input=PASSWORDS["carol"] + "\n")
    assert stat.S_IMODE(cli.config_file.stat().st_mode) == 0o600

    spec = cli.home / "sig.yaml"
    spec.write_text("name: etl\nspark_version: '3.5.9'\nscaling:\n  min_workers: 1\n  max_workers: 2\n")
    cli.ok("sig", "create", "-f", str(spec))
    waited = cli.ok("sig", "wait", "etl", "--timeout", "900", "-o", "json", timeout=960)
    assert json.loads(waited.stdout)["status"]["phase"] == "READY"
    assert "sig acme/etl: READY" in waited.stderr  # plain progress lines: stderr is no terminal here
    cli.ok("context", "set", "--sig", "etl")

    job = cli.home / "job.py"
    job.write_text(JOB)
    done = cli("submit", str(job), "--name", "sum", "--", "a", "b", timeout=700)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RESULT total=5050 args=['a', 'b']" in done.stdout
    assert "FINISHED" in done.stderr

    failing = cli.home / "fail.py"
    failing.write_text(FAILING)
    done = cli("submit", str(failing), timeout=700)
    assert done.returncode == 3, done.stdout + done.stderr  # the driver's own exit code
    assert "giving up" in done.stdout and "FAILED" in done.stderr

    apps = json.loads(cli.ok("apps", "list", "-o", "json").stdout)
    assert sorted((str(a["name"]), a["state"]) for a in apps) == [("None", "FAILED"), ("sum", "FINISHED")]
    assert all(a["submitter"] == "carol" and a["sig"] == "etl" for a in apps)
    build = json.loads(cli.ok("build", "status", "etl", "-o", "json").stdout)
    assert build["state"] == "SUCCEEDED"
    assert cli.ok("build", "log", "etl", "-f", timeout=120).stderr.strip().endswith("SUCCEEDED")


def test_kill_a_running_application(cli: Cli) -> None:
    slow = cli.home / "slow.py"
    slow.write_text(SLOW)
    app_id = cli.ok("submit", str(slow), "--no-follow").stdout.strip()
    deadline = time.monotonic() + 600
    # Running, and past getOrCreate: its own line is in the driver log.
    while "STARTED" not in cli.ok("app", "log", app_id).stdout:
        state = json.loads(cli.ok("app", "get", app_id, "-o", "json").stdout)["state"]
        assert state in ("SUBMITTED", "STARTING", "RUNNING") and time.monotonic() < deadline, state
        time.sleep(2)
    assert json.loads(cli.ok("app", "get", app_id, "-o", "json").stdout)["state"] == "RUNNING"
    killed = cli("app", "kill", app_id, "--wait", timeout=400)
    assert killed.returncode == 0, killed.stdout + killed.stderr
    assert json.loads(cli.ok("app", "get", app_id, "-o", "json").stdout)["state"] == "KILLED"
    assert cli("app", "wait", app_id).returncode == 137
