"""Entry point of a SIG container: `python -m services.agent` (settings from SPAAS_* variables)."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from spaas.bus import RedisBus
from spaas.demand import RedisDemandStore
from spaas.etcd import EtcdStore
from spaas.observability import setup_logging
from spaas.settings import AgentSettings

from services.agent.address import resolve
from services.agent.agent import Agent


def main() -> int:
    settings = AgentSettings.from_env()
    settings = settings.replace(advertise_ip=resolve(settings.advertise_ip, settings.advertise_subnet))
    setup_logging(f"agent[{settings.tenant}/{settings.sig}/{settings.container}]", settings.log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    store = EtcdStore.from_settings(settings)
    # Confined: the agent touches only its SIG's own Redis keys (spaas/redisauth.py).
    bus = RedisBus(settings.redis_url, timeout_s=settings.call_timeout_s, confined=True)
    try:
        demand = RedisDemandStore(settings.redis_url, timeout_s=settings.call_timeout_s)
        return Agent(settings, store, bus, stop=stop, demand=demand).run()
    except Exception:
        logging.getLogger("agent").exception("agent failed")
        return 2


if __name__ == "__main__":
    sys.exit(main())
