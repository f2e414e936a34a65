"""End to end on the embedded stack: a real PySpark job turns its own driver log into a link to
the platform's admin token (and another into a FIFO); the API serves neither, does not hang, and
the master's agent goes on running applications."""

from __future__ import annotations

import time

import pytest

from spaas.stack import Stack

from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e

PLANT = """
import os, sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("plant").getOrCreate()
total = spark.sparkContext.parallelize(range(10), 2).sum()
print(f"RESULT total={total}", flush=True)
spark.stop()
# What tenant code can do: SIG storage is STATE/storage/<t>/<s>; this file is in its files/.
sig_root = os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[0])))
log = os.path.join(sig_root, "apps", os.environ["SPAAS_APP_ID"], "driver.log")
token = os.path.join(sig_root, "..", "..", "..", "admin-token")
assert os.path.exists(log) and os.path.exists(token), (log, token)
os.unlink(log)
if sys.argv[1] == "symlink":
    os.symlink(os.path.abspath(token), log)
else:
    os.mkfifo(log)
print("planted", flush=True)
"""


def test_a_job_cannot_read_the_admin_token_through_its_driver_log(api: Api, platform: Stack, tenant: str) -> None:
    token = platform.admin_token()
    api.create_sig(tenant, {"name": "files", "spark_version": "3.5.9"})
    api.wait_phase(tenant, "files", "READY")
    path = api.upload(tenant, "files", "plant.py", PLANT)
    for mode in ("symlink", "fifo"):
        app_id = api.submit(tenant, "files", file=path, args=[mode])
        app = api.wait_app(tenant, "files", app_id)
        assert app["state"] == "FINISHED", app  # the agent was not fooled or blocked by the swap
        started = time.monotonic()
        resp = api.call("GET", f"/tenants/{tenant}/sigs/files/applications/{app_id}/log")
        assert time.monotonic() - started < 10
        assert token not in resp.text
        assert resp.status_code == 409, resp.text
        assert resp.json()["error"]["code"] == "UnsafeFile"
    assert platform.token_file.read_text().strip() == token  # untouched
    # The API and the master's agent still serve and run applications.
    ok = api.submit(tenant, "files", file=api.upload(tenant, "files", "ok.py", "print('fine')\n"))
    assert api.wait_app(tenant, "files", ok)["state"] == "FINISHED"
    assert "fine" in api.log(tenant, "files", ok)
    api.delete_sig(tenant, "files")
    api.wait_gone(tenant, "files")
    assert platform.token_file.read_text().strip() == token
