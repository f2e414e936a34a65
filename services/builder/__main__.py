"""`python -m services.builder`: a Celery worker for build tasks plus a resync loop.

The resync loop re-queues builds of SIGs that are behind their spec, so a lost task or a
builder that died mid-build costs latency, never a stuck SIG.
"""

from __future__ import annotations

import logging
import threading
import time

from spaas import messages
from spaas.bus import RedisBus, make_celery
from spaas.errors import TemporaryError
from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.logstream import RedisLogStreams
from spaas.loops import run_every
from spaas.observability import serve_health, setup_logging
from spaas.redact import Redactor
from spaas.settings import BuilderSettings

from services.builder.localenv import LocalEnvBuilder
from services.builder.service import ArtifactBuilder, BuildService

log = logging.getLogger("builder")


def resync_loop(service: BuildService, bus: RedisBus, stop: threading.Event, period_s: float) -> None:
    requested: dict[tuple[str, str], float] = {}

    def step() -> None:
        now = time.monotonic()
        for tenant, sig in service.pending():
            if now - requested.get((tenant, sig), -1e9) > 60:
                log.info("resync: %s/%s needs a build", tenant, sig)
                bus.request_build(tenant, sig)
                requested[(tenant, sig)] = now

    run_every(step, stop, period_s, max_backoff_s=30.0, initial_delay_s=period_s, name="build resync")


def main() -> None:
    settings = BuilderSettings.from_env()
    setup_logging("builder", settings.log_level)
    store = EtcdStore.from_settings(settings)
    celery = make_celery(settings.redis_url)
    bus = RedisBus(settings.redis_url, timeout_s=settings.call_timeout_s, celery=celery)
    logs = RedisLogStreams(settings.redis_url, timeout_s=settings.call_timeout_s)
    artifacts: ArtifactBuilder
    base_for = None
    # Operator credentials (pip index URLs, the registry password) never reach a build log or status.
    redact = Redactor([settings.registry_password], texts=(*settings.pip_args, settings.registry))
    if settings.runtime == "docker":
        from services.builder.dockerimage import DockerImageBuilder
        from spaas.runtimes.docker import connect

        images = DockerImageBuilder(
            connect(settings.docker_url, timeout_s=max(60.0, settings.call_timeout_s)),
            spark_image=settings.spark_image, repository=settings.image_repository, registry=settings.registry,
            registry_user=settings.registry_user, registry_password=settings.registry_password,
            pip_args=settings.pip_args, timeout_s=settings.build_timeout_s)
        artifacts, base_for = images, images.base_for
    elif settings.runtime == "kubernetes":
        from services.builder.kanikojob import KanikoJobBuilder
        from spaas.runtimes.kube_manifests import KubeOptions
        from spaas.runtimes.kubernetes import connect as kube_connect

        kaniko = KanikoJobBuilder(
            kube_connect(settings.k8s_api_url),
            KubeOptions(namespace=settings.k8s_namespace, stack=settings.k8s_stack, instance=settings.k8s_instance),
            registry=settings.registry, spark_image=settings.spark_image, repository=settings.image_repository,
            push_secret=settings.k8s_push_secret, kaniko_image=settings.kaniko_image, pip_args=settings.pip_args,
            timeout_s=settings.build_timeout_s, call_timeout_s=max(10.0, settings.call_timeout_s))
        artifacts, base_for = kaniko, kaniko.base_for
    elif settings.runtime == "process":
        artifacts = LocalEnvBuilder(settings.artifacts_dir, settings.layers_path, pip_args=settings.pip_args,
                                    timeout_s=settings.build_timeout_s, redact=redact)
    else:
        raise SystemExit(f"SPAAS_RUNTIME={settings.runtime!r} is not available; "
                         "use 'process', 'docker' or 'kubernetes'")
    service = BuildService(store, bus, logs, artifacts, keys=Keys(settings.etcd_prefix), lock_ttl_s=settings.lock_ttl_s,
                           join_timeout_s=settings.build_timeout_s, runtime=settings.runtime, base_for=base_for,
                           redact=redact)

    @celery.task(name=messages.BUILD_TASK, bind=True, autoretry_for=(TemporaryError,), retry_backoff=True,
                 retry_backoff_max=30, max_retries=20)
    def build_sig(self: object, tenant: str, sig: str) -> None:
        service.build_sig(tenant, sig)

    stop = threading.Event()
    serve_health("127.0.0.1", settings.health_port, store.health)
    threading.Thread(target=resync_loop, args=(service, bus, stop, settings.resync_s), name="resync", daemon=True).start()
    worker = celery.Worker(
        pool="threads", concurrency=settings.concurrency, queues=[messages.BUILD_QUEUE], loglevel=settings.log_level,
        without_heartbeat=True, without_mingle=True, without_gossip=True, hostname=f"builder@{time.time_ns()}",
    )
    try:
        worker.start()
    finally:
        stop.set()


if __name__ == "__main__":
    main()
