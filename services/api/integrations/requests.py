"""The request queue's consumer: decode → execute through the REST API → reply.

Each message is acknowledged after its reply is sent (or after it was found undecodable), so
a worker that dies mid-request has it redelivered by kombu's visibility timeout; the
idempotency key (or the correlation id) makes that redelivery answer from the first run.
Tokens are never logged: only the request's type, tenant, SIG and correlation id.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from kombu import Connection, Exchange, Queue
from prometheus_client import Counter

from spaas import integrations

from services.api.integrations.executor import ClientFactory, execute

log = logging.getLogger(__name__)

REQUESTS = Counter("spaas_integration_requests_total", "Integration requests handled", ["type", "outcome"])


def handle(body: Any, headers: dict[str, Any], client_for: ClientFactory, *,
           correlation_id: str) -> dict[str, Any]:
    """The reply to one raw message."""
    request, problem = integrations.decode_message(body, headers)
    if request is None:
        assert problem is not None
        status = 401 if problem.code == "Unauthenticated" else 400
        REQUESTS.labels("unknown", "rejected").inc()
        return integrations.reply(status, type_=None, code=problem.code, field=problem.field,
                                  message=str(problem))
    reply = execute(request, client_for, correlation_id=correlation_id)
    REQUESTS.labels(request.type, "ok" if reply["ok"] else f"{reply['status']}").inc()
    log.info("integration request %s %s/%s (correlation %s): %s", request.type, request.tenant,
             request.sig or "-", correlation_id or "-", reply["status"])
    return reply


class RequestWorker:
    def __init__(self, redis_url: str, client_for: ClientFactory, *, queue: str = integrations.REQUEST_QUEUE,
                 timeout_s: float = 5.0) -> None:
        self._url = redis_url
        self._client_for = client_for
        self._queue = Queue(queue, exchange=Exchange(""), routing_key=queue, durable=True)
        self._timeout = timeout_s

    def _connection(self) -> Connection:
        return Connection(self._url, connect_timeout=self._timeout,
                          transport_options={"socket_timeout": self._timeout,
                                             "socket_connect_timeout": self._timeout,
                                             "visibility_timeout": 300})

    def _on_message(self, conn: Connection) -> Callable[[Any], None]:
        def on_message(message: Any) -> None:
            props = getattr(message, "properties", {}) or {}
            headers = getattr(message, "headers", {}) or {}
            correlation_id = str(props.get("correlation_id") or headers.get("id") or "")[:128]
            reply_to = str(props.get("reply_to") or "")
            try:
                raw = message.body
                if isinstance(raw, (bytes, bytearray)):
                    raw = raw.decode("utf-8", errors="replace")
                reply = handle(raw, headers, self._client_for, correlation_id=correlation_id)
            except Exception:
                log.exception("integration request (correlation %s) failed unexpectedly", correlation_id or "-")
                reply = integrations.reply(500, type_=None, code="InternalError",
                                           message="the integrations worker failed; see its log")
            if reply_to and integrations.reply_allowed(reply_to):
                self._reply(conn, reply_to, correlation_id, reply)
            elif reply_to:
                log.warning("not replying to %r (correlation %s): not a reply queue (spaas.replies.<t>.<i>.<x>)",
                            reply_to[:80], correlation_id or "-")
            message.ack()

        return on_message

    def _reply(self, conn: Connection, reply_to: str, correlation_id: str, reply: dict[str, Any]) -> None:
        producer = conn.Producer(exchange=Exchange(""))
        publish = conn.ensure(producer, producer.publish, max_retries=3, interval_start=0.2, interval_step=0.5)
        publish(json.dumps(reply), routing_key=reply_to, correlation_id=correlation_id or None,
                content_type="application/json", content_encoding="utf-8", declare=[])

    def run(self, stop: threading.Event, *, idle_s: float = 1.0) -> None:
        """Consume until `stop` is set; reconnect with backoff on connection loss."""
        backoff = 0.5
        while not stop.is_set():
            try:
                with self._connection() as conn:
                    # The raw body is decoded here (plain JSON or a Celery task), whatever its content type.
                    with conn.Consumer([self._queue], on_message=self._on_message(conn), accept=None):
                        backoff = 0.5
                        while not stop.is_set():
                            try:
                                conn.drain_events(timeout=idle_s)
                            except TimeoutError:
                                pass
            except Exception as exc:
                log.warning("integration request consumer lost its connection (%s); retrying in %.1fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 15.0)
