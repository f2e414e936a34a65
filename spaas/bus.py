"""The Bus port and its Redis adapter (kombu for events, Celery for build tasks).

Declarations (exchange, queues, task names) live in `spaas.messages`. Consumers are loops with
a stop flag, a timeout on every wait, backoff on connection loss (`spaas.loops.run_every`: 0.5 s
doubling to 15 s, reset by the next good wait), and a hook for undecodable messages (logged,
acked, skipped).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from kombu import Connection, Exchange, Queue, binding

from spaas import messages
from spaas.errors import TemporaryError
from spaas.loops import run_every
from spaas.messages import Event

if TYPE_CHECKING:  # celery is imported when first needed: a SIG agent never is (~0.3 s of its start)
    from celery import Celery

log = logging.getLogger(__name__)


class Bus(Protocol):
    def publish(self, event: Event) -> None: ...

    def request_build(self, tenant: str, sig: str) -> None:
        """Ask a builder to bring a SIG's build up to date (idempotent)."""
        ...

    def consume(
        self,
        queue: str,
        routing_keys: Sequence[str],
        handler: Callable[[Event], None],
        *,
        stop: threading.Event,
        on_idle: Callable[[], None] | None = None,
        idle_s: float = 1.0,
    ) -> None: ...

    def delete_queue(self, queue: str) -> None: ...

    def declare_queue(self, queue: str, routing_keys: Sequence[str]) -> None:
        """Create a durable queue bound to the exchange (idempotent)."""
        ...


def make_celery(redis_url: str) -> Celery:
    """The Celery app shared by the builder (worker) and the API (sender)."""
    from celery import Celery

    app = Celery("spaas", broker=redis_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        task_default_queue=messages.BUILD_QUEUE,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        broker_transport_options={"visibility_timeout": 3600, "socket_timeout": 5, "socket_connect_timeout": 5},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


class RedisBus:
    def __init__(self, redis_url: str, *, timeout_s: float = 5.0, celery: Celery | None = None,
                 confined: bool = False) -> None:
        """`confined`: the bus of a SIG's agent, which may touch only its own Redis keys
        (spaas/redisauth.py): it consumes a queue the scaler declared, without kombu's shared
        `unacked*` keys, and sends its events straight to their consumer's queue."""
        self._url = redis_url
        self._timeout = timeout_s
        self._confined = confined
        self._exchange = Exchange(messages.EXCHANGE, type="topic", durable=True)
        self._celery = celery
        self._lock = threading.Lock()
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        options: dict[str, object] = {"socket_timeout": self._timeout, "socket_connect_timeout": self._timeout}
        if self._confined:
            options["ack_emulation"] = False  # no shared unacked/unacked_index/unacked_mutex keys
        return Connection(self._url, connect_timeout=self._timeout, transport_options=options)

    def publish(self, event: Event) -> None:
        body = event.to_json()
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connection()
                if self._confined:
                    # The anonymous exchange puts the message on the named queue: no binding lookup.
                    producer = self._conn.Producer(exchange=Exchange(""))
                    routing_key, declare = messages.consumer_queue(event), []
                else:
                    producer = self._conn.Producer(exchange=self._exchange)
                    routing_key, declare = event.routing_key, [self._exchange]
                publish = self._conn.ensure(producer, producer.publish, max_retries=3, interval_start=0.2, interval_step=0.5)
                publish(
                    body,
                    routing_key=routing_key,
                    content_type="application/json",
                    content_encoding="utf-8",
                    declare=declare,
                )
            except Exception as exc:  # kombu raises many transport-specific classes
                self._close()
                raise TemporaryError(f"cannot publish {event.type}: {exc.__class__.__name__}: {exc}") from None

    def request_build(self, tenant: str, sig: str) -> None:
        try:
            with self._lock:
                if self._celery is None:
                    self._celery = make_celery(self._url)
            self._celery.send_task(
                messages.BUILD_TASK,
                args=[tenant, sig],
                queue=messages.BUILD_QUEUE,
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
            )
        except Exception as exc:
            raise TemporaryError(f"cannot queue build of {tenant}/{sig}: {exc.__class__.__name__}: {exc}") from None

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.release()
            except Exception:
                pass
            self._conn = None

    def declare_queue(self, queue: str, routing_keys: Sequence[str]) -> None:
        bindings = [binding(self._exchange, routing_key=key) for key in routing_keys]
        # On the publisher's connection: a connection per queue cost the scaler ~70 ms per SIG
        # started (bench/scale.py, 5,000 SIGs).
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connection()
                Queue(queue, bindings=bindings, durable=True)(self._conn.default_channel).declare()
            except Exception as exc:
                self._close()
                raise TemporaryError(f"cannot declare queue {queue}: {exc.__class__.__name__}: {exc}") from None

    def delete_queue(self, queue: str) -> None:
        try:
            with self._connection() as conn:
                Queue(queue, exchange=self._exchange)(conn.default_channel).delete()
        except Exception as exc:
            log.warning("cannot delete queue %s: %s", queue, exc)

    def consume(
        self,
        queue: str,
        routing_keys: Sequence[str],
        handler: Callable[[Event], None],
        *,
        stop: threading.Event,
        on_idle: Callable[[], None] | None = None,
        idle_s: float = 1.0,
    ) -> None:
        """Deliver events to `handler` until `stop` is set. Handler errors are logged and the
        message acked: the periodic resync, not redelivery, is what repairs a missed action."""
        bindings = [binding(self._exchange, routing_key=key) for key in routing_keys]
        q = Queue(queue, bindings=bindings, durable=True)

        def on_message(body: object, message: object) -> None:
            try:
                event = messages.decode(body if isinstance(body, (str, bytes, dict)) else str(body))
            except messages.UndecodableMessage as exc:
                log.warning("dropping undecodable message on %s: %s", queue, exc)
                message.ack()  # type: ignore[attr-defined]
                return
            try:
                handler(event)
            except Exception:
                log.exception("handler failed for %s on %s", event.type, queue)
            message.ack()  # type: ignore[attr-defined]

        session: contextlib.ExitStack | None = None  # the connection and its consumer, while open
        conn: Connection | None = None

        def close() -> None:
            nonlocal session, conn
            if session is not None:
                with contextlib.suppress(Exception):
                    session.close()
            session = conn = None

        def drain() -> float:
            """One wait for messages (at most `idle_s`), on a connection opened when there is none."""
            nonlocal session, conn
            idle = False
            try:
                if conn is None:
                    session = contextlib.ExitStack()
                    conn = session.enter_context(self._connection())
                    session.enter_context(conn.Consumer([q], callbacks=[on_message],
                                                        accept=["json", "application/json"],
                                                        auto_declare=not self._confined))
                try:
                    conn.drain_events(timeout=idle_s)
                except TimeoutError:
                    idle = True
            except Exception as exc:  # kombu raises many transport-specific classes
                close()
                raise TemporaryError(f"lost its connection: {exc.__class__.__name__}: {exc}") from None
            if idle and on_idle:
                on_idle()
            return 0.0  # drain again at once: drain_events' timeout is the wait

        try:
            run_every(drain, stop, 0.0, max_backoff_s=15.0, first_backoff_s=0.5, name=f"bus consumer {queue}")
        finally:
            close()
