"""Queue integrations against real Redis and etcd and the API served over HTTP: the integrations
worker runs in threads of this process (its request consumer and event publisher), clients use
only an integration's Redis credentials. No Spark runs here (applications stay SUBMITTED; the
FINISHED event is in tests/e2e/test_integrations.py)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from flask import Flask
from flask.testing import FlaskClient
from kombu import Connection, Exchange, Queue

from spaas import integrations
from spaas.client import Client
from spaas.integration_redis import IntegrationRedis
from spaas.keys import Keys
from spaas.records import read_apps
from spaas.settings import ApiSettings
from spaas.store import Store

from services.api.app import create_app
from services.api.integrations import access
from services.api.integrations.events import EventPublisher
from services.api.integrations.requests import RequestWorker
from tests.api.conftest import ADMIN_TOKEN, serve_http, error_of, sig_body

APP = {"file": "files/job.py", "args": ["1"]}


@pytest.fixture
def queue_name() -> str:
    return f"spaas.integrations.requests.{uuid.uuid4().hex[:8]}"


@pytest.fixture
def app(settings: ApiSettings, queue_name: str) -> Flask:  # type: ignore[override]
    return create_app(settings.replace(integration_queue=queue_name))


@pytest.fixture
def api_url(app: Flask) -> Iterator[str]:
    yield from serve_http(app)


@pytest.fixture
def worker(api_url: str, redis_url: str, queue_name: str) -> Iterator[None]:
    stop = threading.Event()
    w = RequestWorker(redis_url, lambda token: Client(api_url, token, timeout=30), queue=queue_name)
    thread = threading.Thread(target=w.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.fixture
def world(client: FlaskClient, tenant: str, sig: str) -> dict[str, Any]:
    """acme/s1 with a job file, tenant beta with its own SIG, and an integration in each."""
    assert client.post(f"/api/v1/tenants/{tenant}/sigs/{sig}/files", data={"file": (__import__("io").BytesIO(b"print(1)\n"), "job.py")},
                       content_type="multipart/form-data").status_code == 201
    assert client.post("/api/v1/tenants", json={"name": "beta"}).status_code == 201
    assert client.post("/api/v1/tenants/beta/sigs", json=sig_body("b1")).status_code == 202
    acme = client.post(f"/api/v1/tenants/{tenant}/integrations", json={"name": "pipe"})
    assert acme.status_code == 201, acme.get_json()
    beta = client.post("/api/v1/tenants/beta/integrations", json={"name": "pipe"})
    assert beta.status_code == 201, beta.get_json()
    yield {"acme": acme.get_json(), "beta": beta.get_json()}
    for t in (tenant, "beta"):
        client.delete(f"/api/v1/tenants/{t}/integrations/pipe")


def send_plain(url: str, queue: str, message: dict[str, Any] | str, reply_to: str, correlation_id: str) -> None:
    """A plain kombu producer, as docs/integrations.md shows: the anonymous exchange, no declaration."""
    with Connection(url) as conn:
        conn.Producer(exchange=Exchange("")).publish(
            message if isinstance(message, str) else json.dumps(message), routing_key=queue, declare=[],
            reply_to=reply_to, correlation_id=correlation_id, content_type="application/json")


def get_reply(url: str, queue: str, timeout_s: float = 30) -> tuple[dict[str, Any], str]:
    with Connection(url, transport_options={"ack_emulation": False}) as conn:
        q = Queue(queue, exchange=Exchange(""), routing_key=queue, no_declare=True)
        with conn.SimpleQueue(q, no_ack=True) as sq:
            msg = sq.get(block=True, timeout=timeout_s)
            return json.loads(msg.body), str(msg.properties.get("correlation_id"))


def apps_of(store: Store, keys: Keys, tenant: str, sig: str) -> list[str]:
    return [a.app_id for a in read_apps(store, keys, tenant, sig) if a.has_spec]


def test_create_shows_the_password_once_and_reads_never(client: FlaskClient, world: dict[str, Any],
                                                       queue_name: str) -> None:
    created = world["acme"]
    assert created["password"] and created["redis_url"].count(created["password"]) == 1
    assert created["request_queue"] == queue_name and created["event_queue"] == "spaas.lifecycle.acme.pipe"
    assert created["patterns"] == ["app.acme.#", "sig.acme.#"]
    for view in (client.get("/api/v1/tenants/acme/integrations/pipe").get_json(),
                 client.get("/api/v1/tenants/acme/integrations").get_json()["integrations"][0]):
        assert "password" not in json.dumps(view) and created["password"] not in json.dumps(view)
        assert view["redis_user"] == created["redis_user"]
    again = client.post("/api/v1/tenants/acme/integrations", json={"name": "pipe"})
    assert again.status_code == 409 and error_of(again.get_json())["field"] == "name"


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "Bad_Name"}, "name"), ({}, "name"), ({"name": "x", "extra": 1}, "extra"),
    ({"name": "x", "patterns": ["app.beta.#"]}, "patterns.0"), ({"name": "x", "patterns": ["#"]}, "patterns.0"),
    ({"name": "x", "patterns": "app.acme.#"}, "patterns"),
])
def test_bad_integration_requests_name_the_field(client: FlaskClient, tenant: str, body: dict[str, Any],
                                                 field: str) -> None:
    resp = client.post(f"/api/v1/tenants/{tenant}/integrations", json=body)
    assert resp.status_code == 422 and error_of(resp.get_json())["field"] == field


def test_credentials_reach_only_their_queues(world: dict[str, Any], redis_url: str, queue_name: str,
                                             store: Store, keys: Keys) -> None:
    mine = redis.Redis.from_url(world["acme"]["redis_url"], socket_timeout=5)
    assert mine.ping()
    mine.lpush(queue_name, b"x")  # may publish a request
    assert mine.llen("spaas.lifecycle.acme.pipe") == 0  # and read its own event queue
    admin = redis.Redis.from_url(redis_url)
    admin.set("spaas:platform-secret", "x")
    denied = [
        lambda: mine.llen("spaas.lifecycle.beta.pipe"),  # the other tenant's events
        lambda: mine.brpop(["spaas.lifecycle.beta.pipe"], timeout=1),
        lambda: mine.smembers(f"_kombu.binding.{integrations.EVENT_EXCHANGE}"),  # the binding set
        lambda: mine.sadd(f"_kombu.binding.{integrations.EVENT_EXCHANGE}", "x"),
        lambda: mine.get("spaas:platform-secret"),  # platform keys
        lambda: mine.lpush("spaas.apps.acme.s1", b"x"),
        lambda: mine.lpush("spaas.lifecycle.acme.pipe", b"x"),  # no forging events
        lambda: mine.brpop([queue_name], timeout=1),  # nor reading others' requests
        lambda: mine.keys("*"),
        lambda: mine.execute_command("ACL", "LIST"),
        lambda: mine.publish("spaas", "x"),
        lambda: mine.brpop(["spaas.replies.beta.pipe.x"], timeout=1),
    ]
    for i, call in enumerate(denied):
        with pytest.raises(redis.exceptions.NoPermissionError):
            call()
            pytest.fail(f"call {i} was allowed")
    admin.delete(queue_name, "spaas:platform-secret")


def test_delete_removes_the_user_and_another_tenant_sees_404(client: FlaskClient, world: dict[str, Any]) -> None:
    assert client.get("/api/v1/tenants/beta/integrations/nope").status_code == 404
    assert client.delete("/api/v1/tenants/acme/integrations/pipe").status_code == 200
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(world["acme"]["redis_url"], socket_timeout=5).ping()
    assert client.get("/api/v1/tenants/acme/integrations/pipe").status_code == 404


def test_resync_restores_users_after_redis_forgets_them(world: dict[str, Any], redis_url: str, store: Store,
                                                         keys: Keys, settings: ApiSettings) -> None:
    access_ = IntegrationRedis(redis_url, platform_prefix=keys.prefix)
    redis.Redis.from_url(redis_url).execute_command("ACL", "DELUSER", world["acme"]["redis_user"])
    assert access.resync(store, keys, access_) >= 2
    assert redis.Redis.from_url(world["acme"]["redis_url"], socket_timeout=5).ping()


def test_plain_kombu_submit_runs_once_and_replies(world: dict[str, Any], worker: None, queue_name: str,
                                                  store: Store, keys: Keys) -> None:
    url, reply_to = world["acme"]["redis_url"], world["acme"]["reply_queue_prefix"] + "r1"
    message = {"version": 1, "type": "app.submit", "token": ADMIN_TOKEN, "tenant": "acme", "sig": "s1",
               "body": APP, "idempotency_key": "nightly-1"}
    send_plain(url, queue_name, message, reply_to, "c-1")
    first, corr = get_reply(url, reply_to)
    assert corr == "c-1" and first["ok"] and first["status"] == 201, first
    app_id = first["result"]["id"]
    send_plain(url, queue_name, message, reply_to, "c-2")  # a retried message
    second, corr = get_reply(url, reply_to)
    assert corr == "c-2" and second["ok"] and second["status"] == 200 and second["result"]["id"] == app_id
    assert apps_of(store, keys, "acme", "s1") == [app_id]
    other = dict(message, body={**APP, "args": ["2"]})
    send_plain(url, queue_name, other, reply_to, "c-3")
    third, _ = get_reply(url, reply_to)
    assert not third["ok"] and third["status"] == 422 and third["error"]["code"] == "IdempotencyKeyReused"
    assert apps_of(store, keys, "acme", "s1") == [app_id]


def test_celery_send_task_submits_and_kills(world: dict[str, Any], worker: None, queue_name: str,
                                            store: Store, keys: Keys) -> None:
    url, reply_to = world["acme"]["redis_url"], world["acme"]["reply_queue_prefix"] + "celery"
    celery = Celery("pipeline", broker=url)
    celery.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    target = Queue(queue_name, exchange=Exchange(""), routing_key=queue_name, no_declare=True)
    result = celery.send_task("spaas.app.submit", kwargs={"token": ADMIN_TOKEN, "tenant": "acme", "sig": "s1",
                                                          "body": APP}, queue=target, reply_to=reply_to)
    reply, corr = get_reply(url, reply_to)
    assert corr == result.id and reply["ok"] and reply["status"] == 201, reply
    app_id = reply["result"]["id"]
    # The same task id again (a Celery retry) is answered from the first run.
    celery.send_task("spaas.app.submit", kwargs={"token": ADMIN_TOKEN, "tenant": "acme", "sig": "s1", "body": APP},
                     queue=target, reply_to=reply_to, task_id=result.id)
    again, _ = get_reply(url, reply_to)
    assert again["result"]["id"] == app_id and apps_of(store, keys, "acme", "s1") == [app_id]
    celery.send_task("spaas.app.kill", kwargs={"token": ADMIN_TOKEN, "tenant": "acme", "sig": "s1", "id": app_id},
                     queue=target, reply_to=reply_to)
    killed, _ = get_reply(url, reply_to)
    assert killed["ok"] and killed["result"]["state"] == "KILLED", killed


@pytest.mark.parametrize(("message", "status", "code", "field"), [
    ({"type": "app.submit", "token": "not-a-token", "tenant": "acme", "sig": "s1", "body": APP},
     401, "Unauthorized", None),
    ({"type": "app.submit", "token": "", "tenant": "acme", "sig": "s1", "body": APP}, 401, "Unauthenticated", "token"),
    ({"type": "app.submit", "token": "TOKEN", "tenant": "beta", "sig": "b1", "body": APP}, 404, "NotFound", "tenant"),
    ({"type": "app.submit", "token": "TOKEN", "tenant": "acme", "sig": "s1", "body": {"file": 3}}, 422, "Invalid",
     "file"),
    ({"type": "app.submit", "token": "TOKEN", "tenant": "acme", "sig": "s1", "body": "x"}, 400, "BadMessage", "body"),
    ({"type": "app.explode", "token": "TOKEN", "tenant": "acme"}, 400, "BadMessage", "type"),
    ({"version": 7, "type": "app.submit"}, 400, "UnsupportedVersion", "version"),
    ("{not json", 400, "BadMessage", "body"),
])
def test_rejected_requests_reply_why_and_run_nothing(world: dict[str, Any], worker: None, queue_name: str,
                                                     store: Store, keys: Keys, app: Flask, message: Any, status: int,
                                                     code: str, field: str | None) -> None:
    # A member of acme only (not the admin token, which may see beta): another tenant's SIG is a 404.
    from spaas.auth import Identity, Tokens

    token = Tokens(store, keys).issue(Identity("bob", frozenset()), kind="session", ttl_s=600).token
    assert app.test_client().put("/api/v1/tenants/acme/members/user/bob", json={"roles": ["user"]},
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200
    if isinstance(message, dict) and message.get("token") == "TOKEN":
        message = dict(message, token=token)
    url, reply_to = world["acme"]["redis_url"], world["acme"]["reply_queue_prefix"] + "bad"
    send_plain(url, queue_name, message, reply_to, "bad-1")
    reply, corr = get_reply(url, reply_to)
    assert corr == "bad-1" and not reply["ok"] and reply["status"] == status, reply
    assert reply["error"]["code"] == code and reply["error"]["field"] == field and reply["error"]["message"], reply
    assert apps_of(store, keys, "acme", "s1") == [] and apps_of(store, keys, "beta", "b1") == []


@pytest.mark.parametrize("target", ["spaas.apps.acme.s1", "spaas.scaler", "spaas.lifecycle.beta.pipe",
                                    "spaas.replies.acme.pipe.*"])
def test_replies_go_only_to_reply_queues(world: dict[str, Any], worker: None, queue_name: str, redis_url: str,
                                         target: str) -> None:
    url = world["acme"]["redis_url"]
    kill = {"type": "app.kill", "token": ADMIN_TOKEN, "tenant": "acme", "sig": "s1", "id": "nope"}
    send_plain(url, queue_name, kill, target, "f-1")
    mine = world["acme"]["reply_queue_prefix"] + "after"
    send_plain(url, queue_name, kill, mine, "f-2")
    reply, corr = get_reply(url, mine)  # requests are handled in order: the first is done
    assert corr == "f-2" and reply["status"] == 404
    assert redis.Redis.from_url(redis_url).llen(target) == 0


def test_events_reach_only_the_tenants_integration(world: dict[str, Any], store: Store, keys: Keys,
                                                   redis_url: str) -> None:
    publisher = EventPublisher(store, keys, redis_url)
    with Connection(redis_url) as conn:
        publisher.pass_once(conn)  # first start: the cursor, nothing old is news
        store.put(keys.sig_status("acme", "s1"), {"phase": "READY", "observed_generation": 1})
        store.put(keys.sig_status("beta", "b1"), {"phase": "READY", "observed_generation": 1})
        assert publisher.pass_once(conn) == 2
        assert publisher.pass_once(conn) == 0  # unchanged: nothing again
    url = world["acme"]["redis_url"]
    with Connection(url, transport_options={"ack_emulation": False}) as conn:
        q = Queue(world["acme"]["event_queue"], no_declare=True)
        with conn.SimpleQueue(q, no_ack=True) as sq:
            event = json.loads(sq.get(block=True, timeout=10).body)
            assert event["type"] == "sig.phase" and event["tenant"] == "acme" and event["phase"] == "READY"
            assert event["version"] == 1 and event["sig"] == "s1"
            with pytest.raises(sq.Empty):
                sq.get(block=True, timeout=1)
    # A restarted publisher (same cursor in etcd) does not replay what was published.
    with Connection(redis_url) as conn:
        assert EventPublisher(store, keys, redis_url).pass_once(conn) == 0


def test_deleting_the_tenant_removes_its_integrations(client: FlaskClient, world: dict[str, Any], store: Store,
                                                      keys: Keys, redis_url: str) -> None:
    assert client.delete("/api/v1/tenants/beta/sigs/b1").status_code == 202
    store.delete_prefix(keys.sig("beta", "b1"))  # (no scaler here to finish the deletion)
    assert client.delete("/api/v1/tenants/beta").status_code == 200
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(world["beta"]["redis_url"], socket_timeout=5).ping()
    assert store.list(keys.integrations("beta")) == []
    assert client.post("/api/v1/tenants", json={"name": "beta"}).status_code == 201
    assert client.get("/api/v1/tenants/beta/integrations").get_json() == {"integrations": []}
