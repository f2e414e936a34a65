"""`python -m services.etcd_registry`: serve host lookups and sweep stale entries until SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import waitress

from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.observability import setup_logging
from spaas.settings import RegistrySettings

from services.etcd_registry.app import create_app
from services.etcd_registry.sweep import sweep_loop

log = logging.getLogger("etcd_registry")


def _exit(signum: int, frame: FrameType | None) -> None:
    # waitress stops its loop cleanly on SystemExit; `main` then stops the sweep.
    raise SystemExit(0)


def main() -> None:
    settings = RegistrySettings.from_env()
    setup_logging("etcd_registry", settings.log_level)
    store = EtcdStore.from_settings(settings)
    keys = Keys(settings.etcd_prefix)
    stop = threading.Event()
    sweeper = threading.Thread(target=sweep_loop, args=(store, keys, stop, settings.sweep_s), name="sweep", daemon=True)
    sweeper.start()
    signal.signal(signal.SIGTERM, _exit)
    log.info("serving host lookups on %s:%d (etcd %s, prefix %s)", settings.host, settings.port,
             settings.etcd_url, settings.etcd_prefix)
    try:
        waitress.serve(create_app(store, keys), host=settings.host, port=settings.port, threads=4)
    finally:
        stop.set()
        log.info("stopped")


if __name__ == "__main__":
    main()
