"""Queue integrations on the embedded platform (`spaas up`'s own integrations worker), with Spark:
the runnable examples of docs/integrations.md submit a PySpark job with an integration's
credentials (a plain kombu message and a Celery task) and the consumer example sees it FINISHED
on the tenant's event stream; a retried submission runs once; another tenant's integration never
sees the events."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from spaas.stack import Stack

from tests.e2e.conftest import JOB, Api

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "integrations"
SIG = "q1"


def run_example(name: str, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          timeout=timeout_s)


def produce(integration: dict[str, Any], token: str, tenant: str, *extra: str) -> dict[str, Any]:
    done = run_example("producer.py", "--redis-url", integration["redis_url"],
                       "--request-queue", integration["request_queue"],
                       "--reply-queue", integration["reply_queue_prefix"] + "e2e", "--token", token,
                       "--tenant", tenant, "--sig", SIG, "--file", "files/job.py", "--arg", "q", *extra,
                       timeout_s=120)
    assert done.stdout.strip(), done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_examples_submit_and_follow_to_finished(platform: Stack, api: Api, tenant: str) -> None:
    api.ok("POST", f"/tenants/{tenant}/sigs", 202, json={"name": SIG, "spark_version": "3.5.9"})
    integration = api.ok("POST", f"/tenants/{tenant}/integrations", 201, json={"name": "pipeline"})
    api.ok("POST", "/tenants", 201, json={"name": tenant + "x"})
    other = api.ok("POST", f"/tenants/{tenant}x/integrations", 201, json={"name": "pipeline"})
    api.wait_phase(tenant, SIG, "READY")
    api.upload(tenant, SIG, "job.py", JOB)
    token = platform.admin_token()

    first = produce(integration, token, tenant, "--key", "e2e-1")
    assert first["ok"] and first["status"] == 201, first
    app_id = first["result"]["id"]
    # The retried message (same key) is answered with the same application; nothing else runs.
    again = produce(integration, token, tenant, "--key", "e2e-1", "--celery")
    assert again["ok"] and again["status"] == 200 and again["result"]["id"] == app_id, again

    done = run_example("consumer.py", "--redis-url", integration["redis_url"], "--queue", integration["event_queue"],
                       "--until-app", app_id, "--timeout", "300", timeout_s=330)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert done.returncode == 0, (done.returncode, events, done.stderr[-2000:])
    mine = [e["state"] for e in events if e.get("type") == "app.state" and e["id"] == app_id]
    assert mine[-1] == "FINISHED" and mine == sorted(set(mine), key=mine.index), mine
    assert all(e["tenant"] == tenant for e in events)
    assert any(e.get("type") == "sig.phase" and e["phase"] == "READY" for e in events), events
    apps = api.ok("GET", f"/tenants/{tenant}/sigs/{SIG}/applications")["applications"]
    assert [a["id"] for a in apps] == [app_id]
    assert any("RESULT total=1001000" in line for line in api.log(tenant, SIG, app_id))

    # The other tenant's integration saw none of it, and cannot read this tenant's queue.
    theirs = redis.Redis.from_url(other["redis_url"], socket_timeout=5)
    assert theirs.llen(other["event_queue"]) == 0
    with pytest.raises(redis.exceptions.NoPermissionError):
        theirs.llen(integration["event_queue"])
    api.ok("DELETE", f"/tenants/{tenant}/sigs/{SIG}", 202)
    api.ok("DELETE", f"/tenants/{tenant}/integrations/pipeline")
    api.ok("DELETE", f"/tenants/{tenant}x/integrations/pipeline")
