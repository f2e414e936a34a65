"""`?follow=true` on the build log and the driver log: server-sent events until the build or the
application is over, resumable with Last-Event-ID."""

from __future__ import annotations

import io
import time

from flask import Flask
from flask.testing import FlaskClient

from spaas.keys import Keys
from spaas.logstream import RedisLogStreams, sig_build_stream
from spaas.settings import ApiSettings
from spaas.storage import SigStorage

from services.api.follow import events

S = "/api/v1/tenants/acme/sigs/s1"


def test_events_send_each_line_once_then_end() -> None:
    batches = iter([(["a", "b"], None), ([], None), (["c"], None), ([], "FINISHED")])
    out = list(events(lambda offset: next(batches), 0, sleep=lambda s: None))
    assert out == ["retry: 1000\n\n", "id: 1\ndata: a\n\n", "id: 2\ndata: b\n\n", "id: 3\ndata: c\n\n",
                   'event: end\ndata: {"state": "FINISHED"}\n\n']


def test_events_stop_after_max_s_so_the_client_reconnects() -> None:
    now = iter(range(100))
    out = list(events(lambda offset: ([], None), 5, max_s=3, keepalive_s=100, clock=lambda: next(now),
                      sleep=lambda s: None))
    assert out == ["retry: 1000\n\n"]


def test_build_log_follows_to_the_end_of_the_build(app: Flask, client: FlaskClient, sig: str,
                                                   logs: RedisLogStreams, settings: ApiSettings) -> None:
    logs.append(sig_build_stream("acme", "s1", 1), "step 1", "step 2", "step 3")
    keys = Keys(settings.etcd_prefix)
    app.extensions["spaas"].store.put(keys.sig_build("acme", "s1"),
                                      {"generation": 1, "state": "SUCCEEDED", "key": "k"})
    resp = client.get(f"{S}/build/log?follow=true&from=1")
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    text = resp.get_data(as_text=True)
    assert "id: 2\ndata: step 2\n\n" in text and "data: step 1" not in text
    assert text.endswith('event: end\ndata: {"state": "SUCCEEDED"}\n\n')
    # Resuming: Last-Event-ID wins over from.
    text = client.get(f"{S}/build/log?follow=true", headers={"Last-Event-ID": "2"}).get_data(as_text=True)
    assert "data: step 3" in text and "data: step 2" not in text


def test_driver_log_streams_while_running_and_stops_within_follow_max_s(client: FlaskClient, sig: str,
                                                                         settings: ApiSettings) -> None:
    client.post(f"{S}/files", data={"file": (io.BytesIO(b"print(1)\n"), "job.py")}, content_type="multipart/form-data")
    app_id = client.post(f"{S}/applications", json={"file": "files/job.py"}).get_json()["id"]
    path = SigStorage(settings.storage_dir).driver_log("acme", "s1", app_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("hello\nRESULT 42\n")
    t0 = time.monotonic()
    text = client.get(f"{S}/applications/{app_id}/log?follow=1").get_data(as_text=True)
    assert "data: RESULT 42" in text and "event: end" not in text  # still SUBMITTED: no end
    assert time.monotonic() - t0 < 10  # follow_max_s is 1 s in these tests
    client.delete(f"{S}/applications/{app_id}")  # never started: KILLED at once
    text = client.get(f"{S}/applications/{app_id}/log?follow=1&from=2").get_data(as_text=True)
    assert text.endswith('event: end\ndata: {"state": "KILLED"}\n\n')
