"""`python -m services.scaler`: reconcile every SIG on the configured runtime until stopped."""

from __future__ import annotations

import logging
import signal
import threading
from urllib.parse import urlsplit

from spaas.bus import RedisBus
from spaas.cache import CachedStore
from spaas.demand import RedisDemandStore
from spaas.errors import TemporaryError
from spaas.etcd import EtcdStore
from spaas.etcdauth import ROOT, SigCredentials, enable_auth
from spaas.keys import Keys
from spaas.observability import serve_health, setup_logging
from spaas.records import read_sigs
from spaas.redisauth import SigRedisAccess, without_credentials
from spaas.runtimes.base import Runtime
from spaas.runtimes.process import ProcessRuntime
from spaas.settings import ScalerSettings
from spaas.storage import SigStorage

from services.scaler.loop import PassClock, Scaler, cached_prefixes, run
from services.scaler.warmpool import WarmPool, supports_pool


def make_runtime(settings: ScalerSettings, store: EtcdStore, keys: Keys) -> Runtime:
    # SIG containers never get the platform's Redis password: the scaler gives each its own URL.
    env = {"SPAAS_ETCD_URL": settings.etcd_url, "SPAAS_REDIS_URL": without_credentials(settings.redis_url),
           "SPAAS_ETCD_PREFIX": settings.etcd_prefix, "SPAAS_LOG_LEVEL": settings.log_level}
    if settings.runtime == "process":
        return ProcessRuntime(settings.state_dir, python=settings.agent_python, env=env)
    if settings.runtime == "docker":
        from spaas.runtimes.docker import DockerRuntime, connect

        def sig_images() -> dict[tuple[str, str], str]:
            return {(rec.tenant, rec.sig): rec.build.artifact for rec in read_sigs(store, keys)
                    if rec.build and rec.build.artifact}

        return DockerRuntime(connect(settings.docker_url, timeout_s=max(30.0, settings.call_timeout_s)),
                             stack=settings.docker_stack, platform_network=settings.docker_network,
                             state_volume=settings.docker_state_volume, state_dir=settings.state_dir.resolve(),
                             env=env, sig_images=sig_images, stop_grace_s=settings.stop_grace_s,
                             proxy_container=settings.docker_proxy_container)
    if settings.runtime == "kubernetes":
        from spaas.runtimes.kubernetes import kubernetes_runtime

        return kubernetes_runtime(settings, store, keys, env)
    raise SystemExit(f"SPAAS_RUNTIME={settings.runtime!r} is not available; use 'process', 'docker' or 'kubernetes'")


def etcd_credentials(settings: ScalerSettings, store: EtcdStore, keys: Keys,
                     stop: threading.Event) -> SigCredentials | None:
    """With an etcd user configured: enable etcd's authentication if we are root (idempotent) and
    give SIG containers users of their own, with passwords keyed by our password."""
    if not settings.etcd_user:
        return None
    while settings.etcd_user == ROOT and not stop.is_set():
        try:
            enable_auth(settings.etcd_url, settings.etcd_password, timeout_s=settings.call_timeout_s)
            break
        except TemporaryError as exc:
            logging.getLogger("scaler").warning("cannot enable etcd authentication yet: %s", exc)
            stop.wait(2)
    return SigCredentials(store, keys, secret=settings.etcd_password)


def warm_pool(settings: ScalerSettings, store: EtcdStore, runtime: Runtime) -> WarmPool | None:
    """The warm pool, when its size is set and the platform can run it: a runtime that adopts
    running containers (process), and no per-SIG etcd or Redis credentials (a pooled agent has
    none of a SIG's to hand over). Otherwise None: SIGs start cold, as with size 0."""
    if settings.warm_pool_size <= 0:
        return None
    if not supports_pool(runtime) or settings.etcd_user or urlsplit(settings.redis_url).password:
        logging.getLogger("scaler").warning(
            "SPAAS_WARM_POOL_SIZE=%d ignored: the warm pool runs on the process runtime without etcd/Redis "
            "authentication only", settings.warm_pool_size)
        return None
    return WarmPool(store, runtime, keys=Keys(settings.etcd_prefix), size=settings.warm_pool_size,  # type: ignore[arg-type]
                    workers=max(1, settings.warm_pool_workers))


def main() -> None:
    settings = ScalerSettings.from_env()
    setup_logging("scaler", settings.log_level)
    store = EtcdStore.from_settings(settings)
    bus = RedisBus(settings.redis_url, timeout_s=settings.call_timeout_s)
    runtime = make_runtime(settings, store, Keys(settings.etcd_prefix))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    passes = PassClock(settings.resync_s, slack_s=settings.stop_grace_s)

    def health() -> tuple[bool, str]:
        if not store.health():
            return False, "etcd does not answer"
        return passes.health()

    serve_health("127.0.0.1", settings.health_port, health)
    demand = RedisDemandStore(settings.redis_url, timeout_s=settings.call_timeout_s)
    # Every pass reads from watch-backed caches (one list + watch per prefix, services/scaler/loop.py).
    cached = CachedStore(store, cached_prefixes(Keys(settings.etcd_prefix))).start(wait_s=30.0)
    scaler = Scaler(cached, bus, runtime, SigStorage(settings.storage_dir), keys=Keys(settings.etcd_prefix),
                    demand=demand, credentials=etcd_credentials(settings, store, Keys(settings.etcd_prefix), stop),
                    redis_access=SigRedisAccess(settings.redis_url, Keys(settings.etcd_prefix),
                                                timeout_s=settings.call_timeout_s),
                    pool=warm_pool(settings, store, runtime))
    try:
        run(scaler, bus, stop=stop, resync_s=settings.resync_s, passes=passes)
    finally:
        cached.stop()


if __name__ == "__main__":
    main()
