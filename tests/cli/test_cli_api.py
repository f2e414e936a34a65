"""The `spaas` command against the real API served over HTTP (API fixtures of tests/api: real etcd,
Redis, slapd; no Spark): login and contexts, tenants, members, SIGs from YAML, lists as JSON,
errors. The Spark side (wait, submit, kill) is in test_cli_e2e.py."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from flask import Flask

from tests.api.conftest import ADMIN_TOKEN, serve_http, SPARK_VERSIONS, app, logs, settings  # noqa: F401 (fixtures)
from tests.cli.conftest import Cli
from tests.ldap_fixture import PASSWORDS


@pytest.fixture
def url(app: Flask) -> Iterator[str]:  # noqa: F811
    yield from serve_http(app)


def test_login_contexts_and_a_sig_from_yaml(cli: Cli, url: str, tmp_path: Path) -> None:
    # The cluster admin (its token from stdin) makes a tenant and gives alice a role in it.
    cli.ok("login", url, "--token", "-", "--name", "admin", input=ADMIN_TOKEN + "\n")
    cli.ok("tenants", "create", "acme", "--max-containers", "6")
    cli.ok("members", "grant", "alice", "consumer_admin", "-t", "acme")
    assert json.loads(cli.ok("tenants", "list", "-o", "json").stdout)[0]["quota"]["max_containers"] == 6

    done = cli.ok("login", url, "-u", "alice", "--password-stdin", input=PASSWORDS["alice"] + "\n")
    assert "acme" in done.stderr  # her only tenant became the context's default
    # The token is in the config file, 0600 in a 0700 directory, and nowhere in what was printed.
    config = yaml.safe_load(cli.config_file.read_text())
    alice = next(c for c in config["contexts"] if c.get("user") == "alice")
    assert alice["token"] and alice["tenant"] == "acme" and config["current-context"] == alice["name"]
    assert stat.S_IMODE(cli.config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.config_file.parent.stat().st_mode) == 0o700
    listed = cli.ok("context", "list", "-o", "json")
    assert alice["token"] not in listed.stdout + listed.stderr + done.stdout + done.stderr
    assert [(c["name"], c["current"]) for c in json.loads(listed.stdout)] == [("admin", False), (alice["name"], True)]

    spec = tmp_path / "sig.yaml"
    spec.write_text(f"name: etl\nspark_version: '{SPARK_VERSIONS[0]}'\n"
                    "scaling:\n  min_workers: 1\n  max_workers: 2\nspark_conf:\n  spark.sql.shuffle.partitions: '8'\n")
    created = yaml.safe_load(cli.ok("sig", "create", "-f", str(spec)).stdout)
    assert (created["name"], created["generation"], created["status"]["phase"]) == ("etl", 1, "PENDING")
    sigs = json.loads(cli.ok("sigs", "list", "-o", "json").stdout)
    assert [(s["name"], s["spec"]["scaling"]["max_workers"]) for s in sigs] == [("etl", 2)]
    table = cli.ok("sigs", "list").stdout
    assert "NAME" in table and "PHASE" in table and "etl" in table and "PENDING" in table
    spec.write_text(json.dumps({"name": "etl", "spark_version": SPARK_VERSIONS[0], "scaling": {"max_workers": 3}}))
    assert json.loads(cli.ok("sig", "update", "etl", "-f", str(spec), "-o", "json").stdout)["generation"] == 2
    job = tmp_path / "job.py"
    job.write_text("print(1)\n")
    assert yaml.safe_load(cli.ok("files", "upload", str(job), "-s", "etl").stdout) == {"path": "files/job.py", "size": 9}
    assert "files/job.py" in cli.ok("files", "list", "-s", "etl").stdout
    cli.ok("file", "delete", "job.py", "-s", "etl")
    assert json.loads(cli.ok("files", "list", "-s", "etl", "-o", "json").stdout) == []

    # Switching contexts: the admin sees the tenant list, alice's defaults stay hers.
    cli.ok("context", "use", "admin")
    assert [t["name"] for t in json.loads(cli.ok("tenants", "list", "-o", "json").stdout)] == ["acme"]
    assert json.loads(cli.ok("--context", alice["name"], "members", "list", "-o", "json").stdout) == \
        [{"kind": "user", "name": "alice", "roles": ["consumer_admin"]}]


def test_api_errors_name_the_field_and_exit_1(cli: Cli, url: str, tmp_path: Path) -> None:
    cli.ok("login", url, "--token", ADMIN_TOKEN, "--tenant", "acme")
    cli.ok("tenants", "create", "acme")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: etl\nspark_version: '0.0.1'\n")
    done = cli("sig", "create", "-f", str(bad))
    assert done.returncode == 1 and "422" in done.stderr and "(spark_version)" in done.stderr
    done = cli("sig", "get", "nope")
    assert done.returncode == 1 and "404" in done.stderr
    bad.write_text("- not\n- a mapping\n")
    assert "mapping" in cli("sig", "create", "-f", str(bad)).stderr
    done = cli("login", url, "-u", "alice", "--password-stdin", input="wrong\n")
    assert done.returncode == 1 and "401" in done.stderr
    assert cli("tenants", "list", env={"SPAAS_TOKEN": "not-a-token"}).returncode == 1


def test_not_logged_in_and_completion(cli: Cli) -> None:
    done = cli("sigs", "list", "-t", "acme")
    assert done.returncode == 1 and "spaas login" in done.stderr
    assert "_SPAAS_COMPLETE" in cli.ok("completion", "bash").stdout
    done = cli.ok(env={"_SPAAS_COMPLETE": "bash_complete", "COMP_WORDS": "spaas si", "COMP_CWORD": "1"})
    assert "sigs" in done.stdout
