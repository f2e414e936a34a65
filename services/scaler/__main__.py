"""`python -m services.scaler`: reconcile every SIG on the configured runtime until stopped."""

from __future__ import annotations

import signal
import threading

from spaas.bus import RedisBus
from spaas.demand import RedisDemandStore
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.observability import serve_health, setup_logging
from spaas.runtimes.process import ProcessRuntime
from spaas.settings import ScalerSettings
from spaas.storage import SigStorage

from services.scaler.loop import Scaler, run


def main() -> None:
    settings = ScalerSettings.from_env()
    setup_logging("scaler", settings.log_level)
    if settings.runtime != "process":
        raise SystemExit(f"SPAAS_RUNTIME={settings.runtime!r} is not available; use 'process'")
    store = EtcdStore(settings.etcd_url, timeout_s=settings.call_timeout_s)
    bus = RedisBus(settings.redis_url, timeout_s=settings.call_timeout_s)
    runtime = ProcessRuntime(settings.state_dir, python=settings.agent_python, env={
        "SPAAS_ETCD_URL": settings.etcd_url, "SPAAS_REDIS_URL": settings.redis_url,
        "SPAAS_ETCD_PREFIX": settings.etcd_prefix, "SPAAS_LOG_LEVEL": settings.log_level,
    })
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    serve_health("127.0.0.1", settings.health_port, store.health)
    demand = RedisDemandStore(settings.redis_url, timeout_s=settings.call_timeout_s)
    scaler = Scaler(store, bus, runtime, SigStorage(settings.storage_dir), keys=Keys(settings.etcd_prefix),
                    demand=demand)
    run(scaler, bus, stop=stop, resync_s=settings.resync_s)


if __name__ == "__main__":
    main()
