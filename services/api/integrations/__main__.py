"""`python -m services.api.integrations`: consume integration requests, publish lifecycle events and
keep integrations' Redis users, until SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
import time

from spaas.client import Client
from spaas.etcd import EtcdStore
from spaas.integration_redis import IntegrationRedis
from spaas.keys import Keys
from spaas.observability import serve_health, setup_logging
from spaas.settings import IntegrationsSettings

from services.api.integrations import access
from services.api.integrations.events import EventPublisher
from services.api.integrations.requests import RequestWorker

log = logging.getLogger("integrations")


def main() -> None:
    settings = IntegrationsSettings.from_env()
    setup_logging("integrations", settings.log_level)
    store = EtcdStore.from_settings(settings)
    keys = Keys(settings.etcd_prefix)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def client_for(token: str) -> Client:
        return Client(settings.api_url, token, timeout=settings.request_timeout_s)

    publisher = EventPublisher(store, keys, settings.redis_url, poll_s=settings.poll_s,
                               timeout_s=settings.call_timeout_s)
    redis_access = IntegrationRedis(settings.redis_url, platform_prefix=settings.etcd_prefix,
                                    request_queue=settings.integration_queue, timeout_s=settings.call_timeout_s)
    worker = RequestWorker(settings.redis_url, client_for, queue=settings.integration_queue,
                           timeout_s=settings.call_timeout_s)

    def healthy() -> tuple[bool, str]:
        age = time.time() - publisher.last_pass_at
        limit = 3 * settings.poll_s + 3 * settings.call_timeout_s
        return (age < limit, f"last event pass {age:.0f}s ago") if store.health() else (False, "etcd unreachable")

    serve_health("127.0.0.1", settings.health_port, healthy)
    threads = [
        threading.Thread(target=worker.run, args=(stop,), name="requests", daemon=True),
        threading.Thread(target=publisher.run, args=(stop,), name="events", daemon=True),
        threading.Thread(target=access.run, args=(store, keys, redis_access, stop), kwargs={"every_s": settings.resync_s},
                         name="access", daemon=True),
    ]
    for thread in threads:
        thread.start()
    log.info("integrations worker: requests from %s, events to the lifecycle exchange, API %s",
             settings.integration_queue, settings.api_url)
    stop.wait()
    for thread in threads:
        thread.join(timeout=10)


if __name__ == "__main__":
    main()
