"""The agent's main loop for one SIG container.

master: start the Spark master, register `spark://ip:port` and its UI, then run the
        application controller until stopped. Its host record appears (not ready) as soon as
        the master's ports answer, and turns ready once the master is ALIVE.
worker: wait for the SIG's master in the registry (ready, or starting with its ports known),
        start a Spark worker against it at once, register once the master lists it ALIVE;
        restart the worker if the master moves.
Either way: if the Spark daemon dies the agent exits non-zero and the runtime/scaler replace
the container (a container is only as alive as its daemon).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests

from spaas import messages, safefs
from spaas import notebooks as nb
from spaas.bus import Bus
from spaas.demand import Demand, DemandStore
from spaas.errors import Invalid, TemporaryError
from spaas.keys import Keys
from spaas.loops import run_every
from spaas.records import BadRecord, SecretRecord, SigSpecRecord, get_record, read_hosts
from spaas.runtimes.base import HISTORY
from spaas.settings import AgentSettings
from spaas.stack import free_port
from spaas.storage import SigStorage
from spaas.store import Store

from services.agent import notebook, pool, repl, spark
from services.agent.apps import AppController
from services.agent.daemon import SparkDaemon, child_env, master_json, port_open, wait_until, worker_alive
from services.agent.demand import DriverDemand, compute, dynamic_target_executors
from services.agent.drivers import Driver
from services.agent.host import HostRegistration
from services.agent.sessions import SessionRelay

T = TypeVar("T")

log = logging.getLogger(__name__)

# Beneath the container's directory; holds the SIG's Spark secret while the daemon runs.
DAEMON_PROPERTIES = "conf/daemon.properties"
# How often a worker waiting to register with its master looks whether the SIG's master moved.
MASTER_RECHECK_S = 2.0


class Agent:
    def __init__(self, settings: AgentSettings, store: Store, bus: Bus, *, stop: threading.Event,
                 demand: DemandStore | None = None) -> None:
        self.s = settings
        self.store = store
        self.bus = bus
        self.demand = demand
        self.stop = stop
        self.keys = Keys(settings.etcd_prefix)
        self.env = spark.SparkEnv.load(settings.artifact_dir)
        self.cdir = Path(settings.container_dir)
        self.ident = f"{settings.tenant}/{settings.sig}/{settings.container}"
        self.registration = HostRegistration(store, self.keys, settings.tenant, settings.sig, settings.container,
                                             ttl_s=settings.host_ttl_s)
        self.daemon: SparkDaemon | None = None
        # Every UI of the SIG (master, workers, drivers) links under its path on services/proxy.
        self.ui_base = spark.ui_proxy_base(settings.tenant, settings.sig)

    # -- shared ------------------------------------------------------------------------
    def _sig_inputs(self) -> tuple[str, dict[str, str]]:
        secret = get_record(self.store, self.keys.secret(self.s.tenant, self.s.sig), SecretRecord)
        spec = get_record(self.store, self.keys.sig_spec(self.s.tenant, self.s.sig), SigSpecRecord)
        if secret is None or spec is None:
            raise SystemExit(f"{self.ident}: SIG is gone; nothing to run")
        for record in (secret, spec):
            if isinstance(record, BadRecord):
                raise SystemExit(f"{self.ident}: cannot start: {record.message}")
        assert isinstance(secret, SecretRecord) and isinstance(spec, SigSpecRecord)
        return secret.secret, dict(spec.spec.spark_conf)

    def _write_private(self, rel: str, text: str) -> Path:
        """A 0600 file beneath the container's directory, which the SIG's own code can change:
        written through an O_EXCL temporary file renamed into place, no link followed."""
        safefs.write_atomic(self.cdir, rel, text.encode(), mode=0o600)
        return self.cdir / rel

    def _remove_secrets(self) -> None:
        """Properties files hold the SIG's Spark secret: gone when the agent stops, and any left
        by a crashed predecessor in this container directory gone when it starts."""
        for rel in (DAEMON_PROPERTIES, "drivers"):
            try:
                safefs.remove(self.cdir, rel)
            except (OSError, safefs.UnsafeFile) as exc:
                log.warning("%s: cannot remove %s: %s", self.ident, rel, exc)

    def _daemon_env(self) -> dict[str, str]:
        return child_env({
            "SPARK_HOME": str(self.env.spark_home),
            "SPARK_DAEMON_MEMORY": self.s.daemon_memory,
            "SPARK_LOCAL_IP": self.s.advertise_ip,
            "SPARK_LOG_DIR": str(self.cdir / "logs"),
            "SPARK_WORKER_DIR": str(self.cdir / "work"),
            "SPARK_LOCAL_DIRS": str(self.cdir / "local"),
            "SPARK_CONF_DIR": str(self.cdir / "conf"),
            "PYSPARK_PYTHON": str(self.env.python),
            **spark.launch_env(self.env),
        })

    def _jvm(self, role: str) -> dict[str, Any]:
        """How to start a daemon's JVM: with the build's class-data-sharing archive if it has one."""
        launch = self.env.launch(role)
        log.info("%s: starting the Spark %s %s", self.ident, role,
                 f"with class-data sharing ({launch.archive})" if launch else "through spark-class")
        return {"launch": launch, "memory": self.s.daemon_memory,
                "java_opts": self._daemon_env().get("SPARK_DAEMON_JAVA_OPTS", "")}

    def _announce_host(self) -> None:
        """Wake the scaler now rather than at its next resync (a hint; losing it costs latency)."""
        try:
            self.bus.publish(messages.HostChanged(tenant=self.s.tenant, sig=self.s.sig, host=self.s.container))
        except TemporaryError as exc:
            log.warning("%s: host change not announced: %s", self.ident, exc)

    def _record(self, **extra: Any) -> dict[str, Any]:
        return {
            "host": self.s.container, "role": self.s.role, "index": self.s.index, "ip": self.s.advertise_ip,
            "config_hash": self.s.config_hash, "generation": self.s.generation, "pid": os.getpid(),
            "spark_version": self.env.spark_version, **extra,
        }

    def run(self) -> int:
        self._remove_secrets()
        try:
            if self.s.role == HISTORY:
                return self.run_history()
            if self.s.role == "notebook":
                return self.run_notebook()
            if self.s.pool:
                return pool.run_pooled(self)
            return self.run_master() if self.s.role == "master" else self.run_worker()
        finally:
            try:
                self.registration.withdraw()
                if self.daemon:
                    self.daemon.stop()
            finally:
                self._remove_secrets()

    # -- master --------------------------------------------------------------------------
    def run_notebook(self) -> int:
        return run_notebook(self)

    def run_master(self) -> int:
        secret, sig_conf = self._sig_inputs()
        props = spark.daemon_properties(secret, sig_conf, local_dir=self.cdir / "local", ui_base=self.ui_base)
        props.update(spark.master_history_properties(self.env.spark_version,
                                                     spark.history_proxy_base(self.s.tenant, self.s.sig)))
        started = self.start_master(props)
        if started is None:
            return 1
        self._announce_host()
        return self.serve_master(*started)

    def start_master(self, props: dict[str, str]) -> tuple[str, str] | None:
        """Start the Spark master with `props` and publish its host record (ready once ALIVE):
        (spark_url, ui_url), or None if it did not come up."""
        prop_file = self._write_private(DAEMON_PROPERTIES, spark.render_properties(props))
        port, ui_port = free_port(self.s.advertise_ip), free_port(self.s.advertise_ip)
        self.daemon = SparkDaemon(
            spark.master_argv(self.env, host=self.s.advertise_ip, port=port, ui_port=ui_port, properties=prop_file,
                              **self._jvm("master")),
            env=self._daemon_env(), log_path=self.cdir / "spark-master.log", name="master")
        self.daemon.start()
        ui_url = f"http://{self.s.advertise_ip}:{ui_port}"
        spark_url = f"spark://{self.s.advertise_ip}:{port}"
        record = self._record(ports={"spark": port, "ui": ui_port}, spark_url=spark_url, ui_url=ui_url)
        # Once the master's UI is bound (its RPC port is already), workers may start their JVMs:
        # a not-ready record tells them where. The master is elected moments later, well before
        # a worker JVM gets to register, so the worker's first attempt is not refused.
        if wait_until(lambda: port_open(self.s.advertise_ip, ui_port) or self.daemon.exited() is not None,
                      120, interval_s=0.1, stop=self.stop) and self.daemon.exited() is None:
            self.registration.publish(dict(record, ready=False))
        if not wait_until(lambda: (master_json(ui_url) or {}).get("status") == "ALIVE" or self.daemon.exited() is not None,
                          120, interval_s=0.1, stop=self.stop) or self.daemon.exited() is not None:
            log.error("%s: Spark master did not come up; see spark-master.log", self.ident)
            return None
        self.registration.publish(dict(record, ready=True))
        log.info("%s: Spark master ready at %s (UI %s)", self.ident, spark_url, ui_url)
        return spark_url, ui_url

    def serve_master(self, spark_url: str, ui_url: str) -> int:
        """The SIG's application controller and demand reports on its running master."""
        secret, sig_conf = self._sig_inputs()
        storage = SigStorage(self.s.storage_dir)

        def make_driver(app_id: str, spec: dict[str, Any]) -> Driver:
            try:
                return build_driver(app_id, spec)
            except BaseException:
                with contextlib.suppress(OSError, safefs.UnsafeFile):
                    safefs.remove(self.cdir, ["drivers", app_id])  # with the secret it may hold
                raise

        def build_driver(app_id: str, spec: dict[str, Any]) -> Driver:
            app_conf = dict(spec.get("conf", {}))
            session = spec.get("session")
            workdir = self.cdir / "drivers" / app_id
            if session:
                # A Livy session: the platform's REPL, run by the SIG's Python like any PySpark driver.
                # A copy in the driver's directory, so the agent's other modules are not on its path.
                file = self._write_private(f"drivers/{app_id}/spaas_repl.py", Path(repl.__file__).read_text())
                spec = dict(spec, args=[str(session.get("kind", "pyspark")), str(session.get("idle_timeout_s", 3600))],
                            name=spec.get("name") or f"livy-session-{app_id}")
            else:
                file = storage.resolve(self.s.tenant, self.s.sig, spec["file"], field="file")
            py_files = [storage.resolve(self.s.tenant, self.s.sig, p, field="pyFiles") for p in spec.get("pyFiles", [])]
            ui_port = free_port(self.s.advertise_ip)
            try:  # made on every start: Spark refuses to start a driver without it
                event_log_dir = storage.ensure_event_log_dir(self.s.tenant, self.s.sig)
            except (OSError, safefs.UnsafeFile) as exc:
                raise Invalid(f"the SIG's event log directory cannot be used: {exc}", field="eventlog") from None
            dprops = spark.driver_properties(secret, sig_conf, app_conf, local_dir=workdir / "local",
                                             driver_host=self.s.advertise_ip, ui_port=ui_port,
                                             python=self.env.python, ui_base=self.ui_base,
                                             event_log_dir=event_log_dir)
            dprop_file = self._write_private(f"drivers/{app_id}/driver.properties", spark.render_properties(dprops))
            argv = spark.submit_argv(self.env, spec, master_url=spark_url, properties=dprop_file, file=file,
                                     py_files=py_files)
            env = child_env({"SPARK_HOME": str(self.env.spark_home), "PYSPARK_PYTHON": str(self.env.python),
                             "PYSPARK_DRIVER_PYTHON": str(self.env.python), "SPARK_CONF_DIR": str(workdir),
                             "SPARK_LOCAL_IP": self.s.advertise_ip, "SPAAS_APP_ID": app_id})
            merged = {**sig_conf, **app_conf}
            return Driver(app_id=app_id, argv=argv, env=env, cwd=workdir, repl_dir=workdir / "repl" if session else None,
                          log_path=storage.driver_log(self.s.tenant, self.s.sig, app_id),
                          open_log=lambda: storage.open_driver_log(self.s.tenant, self.s.sig, app_id),
                          ui_url=f"http://{self.s.advertise_ip}:{ui_port}",
                          requested_cores=spark.requested_cores(spec, merged),
                          dynamic_allocation=merged.get("spark.dynamicAllocation.enabled", "").lower() == "true",
                          executor_cores=int(spec.get("executorCores") or merged.get("spark.executor.cores") or 0))

        controller = AppController(self.store, self.keys, tenant=self.s.tenant, sig=self.s.sig,
                                   container=self.s.container, make_driver=make_driver, max_drivers=self.s.max_drivers)
        wake = threading.Event()
        threading.Thread(
            target=self.bus.consume,
            args=(messages.agent_queue(self.s.tenant, self.s.sig), [f"app.{self.s.tenant}.{self.s.sig}"],
                  lambda _event: wake.set()),
            kwargs={"stop": self.stop}, name="app-events", daemon=True,
        ).start()
        reporter = DemandReporter(self, controller, ui_url)
        relay = SessionRelay(self.store, self.keys, tenant=self.s.tenant, sig=self.s.sig)
        exit_code = 0

        def scan() -> float:
            nonlocal exit_code
            if self.daemon is not None and self.daemon.exited() is not None:
                log.error("%s: Spark master exited with %s", self.ident, self.daemon.exited())
                exit_code = 1
                self.stop.set()  # the container ends with its master
                return 0.0
            controller.scan()
            relay.sync(controller.drivers)
            reporter.report()
            # Poll running drivers (and idle workers) briskly; otherwise wait for an event.
            return 0.5 if controller.drivers else min(self.s.app_scan_s, 1.0)

        try:
            run_every(scan, self.stop, self.s.app_scan_s, max_backoff_s=15.0, first_backoff_s=min(self.s.app_scan_s, 1.0),
                      wake=wake, name=f"{self.ident}: application scan")
        finally:
            controller.shutdown("the SIG master container stopped")
        return exit_code

    # -- history server -----------------------------------------------------------------
    def run_history(self) -> int:
        """The SIG's Spark history server over its event log directory; registered with its `ui`
        port once its REST API answers, so the proxy routes `/sig/{t}/{s}/history/` to it."""
        storage = SigStorage(self.s.storage_dir)
        event_log_dir = storage.ensure_event_log_dir(self.s.tenant, self.s.sig)
        ui_port = free_port(self.s.advertise_ip)
        props = spark.history_properties(event_log_dir=event_log_dir, ui_port=ui_port)
        prop_file = self._write_private(DAEMON_PROPERTIES, spark.render_properties(props))
        self.daemon = SparkDaemon(spark.history_argv(self.env, properties=prop_file), env=self._daemon_env(),
                                  log_path=self.cdir / "spark-history.log", name="history", ui_port=ui_port)
        self.daemon.start()
        ui_url = f"http://{self.s.advertise_ip}:{ui_port}"

        def answers() -> bool:
            try:
                return requests.get(f"{ui_url}/api/v1/version", timeout=2).ok
            except requests.RequestException:
                return False
        # Generous: a fresh JVM on one CPU of a loaded host can take minutes, and giving up restarts it from scratch.
        if not wait_until(lambda: answers() or self.daemon.exited() is not None, 600, interval_s=0.5, stop=self.stop) \
                or self.daemon.exited() is not None:
            log.error("%s: Spark history server did not come up; see spark-history.log", self.ident)
            return 1
        self.registration.publish(self._record(ports={"ui": ui_port}, ui_url=ui_url, ready=True))
        self._announce_host()
        log.info("%s: Spark history server ready at %s over %s", self.ident, ui_url, event_log_dir)
        while not self.stop.is_set():
            if self.daemon.exited() is not None:
                log.error("%s: Spark history server exited with %s", self.ident, self.daemon.exited())
                return 1
            self.stop.wait(2)
        return 0

    def wait_for(self, read: Callable[[], T | None], what: str, period_s: float) -> T | None:
        """`read()` every `period_s` until it gives a value (a registry it cannot reach is logged
        and asked again); None once the agent is told to stop."""
        while not self.stop.is_set():
            try:
                value = read()
            except TemporaryError as exc:
                log.warning("%s: cannot read %s: %s", self.ident, what, exc)
                value = None
            if value is not None:
                return value
            self.stop.wait(period_s)
        return None

    # -- worker --------------------------------------------------------------------------
    def _master_record(self) -> dict[str, Any] | None:
        """The SIG's master: a ready one, else one still starting whose ports are known (the
        worker's JVM then starts while the master finishes; see run_master)."""
        hosts = read_hosts(self.store, self.keys, self.s.tenant, self.s.sig)
        masters = [h.to_value() for h in hosts if h.role == "master" and h.spark_url and h.ui_url]
        masters.sort(key=lambda h: not h.get("ready"))
        return masters[0] if masters else None

    def run_worker(self, master: dict[str, Any] | None = None) -> int:
        """`master`: the master record a worker already runs against (a claimed pooled worker)."""
        prop_file = self.cdir / DAEMON_PROPERTIES
        if master is None:
            secret, sig_conf = self._sig_inputs()
            props = spark.daemon_properties(secret, sig_conf, local_dir=self.cdir / "local", ui_base=self.ui_base)
            prop_file = self._write_private(DAEMON_PROPERTIES, spark.render_properties(props))
        exit_code = 0

        def follow_master() -> float | None:
            """Start the worker against the SIG's master once it is known, restart it if the master
            moves; a registry that cannot be read backs off (run_every), the worker keeps running."""
            nonlocal master, exit_code
            if self.daemon is not None and self.daemon.exited() is not None:
                log.error("%s: Spark worker exited with %s", self.ident, self.daemon.exited())
                exit_code = 1
                self.stop.set()  # the container ends with its worker
                return 0.0
            current = self._master_record()
            if current is None:
                return 0.2  # the master is starting: pick it up as soon as it registers
            if master is not None and current.get("spark_url") != master.get("spark_url") and self.daemon:
                log.info("%s: master moved to %s; restarting the worker", self.ident, current.get("spark_url"))
                self.registration.withdraw()
                self.registration = HostRegistration(self.store, self.keys, self.s.tenant, self.s.sig,
                                                     self.s.container, ttl_s=self.s.host_ttl_s)
                self.daemon.stop()
                self.daemon = None
            if self.daemon is None:
                master = current
                try:
                    self._start_worker(master, prop_file)
                except Exception:
                    if self.daemon is not None:  # not registered: started afresh after the backoff
                        self.daemon.stop()
                        self.daemon = None
                    raise
            elif not self.registration.record.get("ready"):
                self._confirm_worker(master or current)
            return None

        run_every(follow_master, self.stop, 2.0, max_backoff_s=15.0, first_backoff_s=2.0,
                  name=f"{self.ident}: worker")
        if exit_code:
            return exit_code
        self._decommission()
        return 0

    def _decommission(self) -> None:
        """Leave Spark cleanly: the worker takes no new executors, running ones finish first
        (bounded by `decommission_s`), then the daemon stops."""
        daemon = self.daemon
        if daemon is None or daemon.proc is None or daemon.exited() is not None:
            return
        log.info("%s: decommissioning the Spark worker", self.ident)
        try:
            daemon.proc.send_signal(signal.SIGPWR)
        except ProcessLookupError:
            return
        ui = f"http://{self.s.advertise_ip}:{daemon.ui_port}/json/"

        def drained() -> bool:
            try:
                return not requests.get(ui, timeout=1).json().get("executors")
            except (requests.RequestException, ValueError):
                return daemon.exited() is not None
        if not wait_until(drained, self.s.decommission_s):
            log.warning("%s: executors still running after %ss; stopping anyway", self.ident, self.s.decommission_s)

    def _confirm_worker(self, master: dict[str, Any]) -> None:
        """A worker published not ready (the master did not list it within the wait of
        `_start_worker`: a slow master, a registry that failed then) turns ready as soon as the
        master lists it; until then the scaler counts it as starting (or lost)."""
        record = self.registration.record
        port = int((record.get("ports") or {}).get("spark") or 0)
        if port and self._listed_by(master, port):
            self._publish_ready(record, master)

    def _listed_by(self, master: dict[str, Any], port: int) -> bool:
        """The master's JSON page lists this container's worker (on `port`) ALIVE."""
        return worker_alive(master_json(master["ui_url"]), self.s.advertise_ip, port)

    def _publish_ready(self, record: dict[str, Any], master: dict[str, Any]) -> None:
        self.registration.publish(dict(record, ready=True))
        self._announce_host()
        log.info("%s: Spark worker registered with %s", self.ident, master["spark_url"])

    def _start_worker(self, master: dict[str, Any], prop_file: Path,
                      lookup: Callable[[], dict[str, Any] | None] | None = None) -> None:
        """`lookup`: where the worker's master is registered (default: the SIG's, `_master_record`;
        a pooled worker's is its skeleton's)."""
        find_master = lookup or self._master_record
        port, ui_port = free_port(self.s.advertise_ip), free_port(self.s.advertise_ip)
        self.daemon = SparkDaemon(ui_port=ui_port, argv=
            spark.worker_argv(self.env, host=self.s.advertise_ip, port=port, ui_port=ui_port,
                              cores=self.s.worker_cores, memory_mb=self.s.worker_memory_mb,
                              work_dir=self.cdir / "work", properties=prop_file, master_url=master["spark_url"],
                              **self._jvm("worker")),
            env=self._daemon_env(), log_path=self.cdir / "spark-worker.log", name="worker")
        self.daemon.start()
        record = self._record(ports={"spark": port, "ui": ui_port}, ui_url=f"http://{self.s.advertise_ip}:{ui_port}",
                              master=master["spark_url"])
        registered = False
        look_again = time.monotonic() + MASTER_RECHECK_S

        def settled() -> bool:
            """Registered, the daemon gone, or the SIG's master moved: a worker started against
            a master that died (its leased record outlives it by up to its TTL) never registers;
            `follow_master` then restarts it against the new one instead of waiting here."""
            nonlocal registered, look_again
            registered = self._listed_by(master, port)
            if registered or self.daemon is None or self.daemon.exited() is not None:
                return True
            if time.monotonic() >= look_again:
                look_again = time.monotonic() + MASTER_RECHECK_S
                with contextlib.suppress(TemporaryError):
                    current = find_master()
                    if current is not None and current.get("spark_url") != master["spark_url"]:
                        return True
            return False

        wait_until(settled, 120, interval_s=0.1, stop=self.stop)
        if registered and self.daemon is not None and self.daemon.exited() is None:
            self._publish_ready(record, master)
        else:
            self.registration.publish(dict(record, ready=False))
            log.warning("%s: Spark worker not registered with %s yet", self.ident, master["spark_url"])


# -- notebook (services/agent/notebook.py) -------------------------------------------------
def run_notebook(agent: Agent) -> int:
    """A user's JupyterLab server whose kernels' `spark` is connected to the SIG's master."""
    s = agent.s
    user, token = s.notebook_user, s.notebook_token
    if not user or not token:
        log.error("%s: a notebook container needs SPAAS_NOTEBOOK_USER and SPAAS_NOTEBOOK_TOKEN", agent.ident)
        return 2
    secret, sig_conf = agent._sig_inputs()
    master = agent.wait_for(agent._master_record, "the registry", 1.0)
    if master is None:
        return 0
    name = notebook.app_name(user)
    props = notebook.kernel_properties(secret, sig_conf, local_dir=agent.cdir / "kernel-local",
                                       driver_host=s.advertise_ip, python=agent.env.python, ui_base=agent.ui_base,
                                       app_name=name)
    notebook.write_kernel_files(agent._write_private, agent.env, cdir=agent.cdir, sig=s.sig,
                                master_url=master["spark_url"], properties_text=spark.render_properties(props),
                                local_ip=s.advertise_ip, app_name=name)
    root = SigStorage(s.storage_dir).notebook_dir(s.tenant, s.sig, user)
    port = free_port(s.advertise_ip)
    base = nb.base_url(s.tenant, s.sig, user)
    # Started in the user's folder: a kernel started without a notebook path (API clients) works there too.
    agent.daemon = SparkDaemon(notebook.server_argv(agent.env, ip=s.advertise_ip, port=port, base_url=base, root_dir=root),
                               env=notebook.server_env(child_env(), cdir=agent.cdir, token=token, env=agent.env),
                               log_path=agent.cdir / "jupyter.log", name="jupyter", cwd=root)
    agent.daemon.start()
    url = f"http://{s.advertise_ip}:{port}{base}"
    if not wait_until(lambda: notebook.server_status(url, token) is not None or agent.daemon.exited() is not None,
                      180, interval_s=0.5, stop=agent.stop) or agent.daemon.exited() is not None:
        log.error("%s: Jupyter did not come up; see jupyter.log", agent.ident)
        return 1
    record = agent._record(ports={"ui": port}, ui_url=url, user=nb.fold(user), ready=True)
    agent.registration.publish(record)
    agent._announce_host()
    log.info("%s: Jupyter server of %s ready at %s", agent.ident, nb.fold(user), url)
    last = 0.0
    while not agent.stop.wait(5):
        if agent.daemon.exited() is not None:
            log.error("%s: Jupyter exited with %s", agent.ident, agent.daemon.exited())
            return 1
        seen = notebook.activity(notebook.server_status(url, token),
                                 notebook.server_status(url, token, path=notebook.KERNELS_UNTRACKED), time.time())
        if seen is not None and seen > last + 1:
            last = seen
            try:
                agent.registration.publish(dict(record, last_activity=seen))
            except TemporaryError as exc:
                log.warning("%s: activity not recorded: %s", agent.ident, exc)
    return 0


class DemandReporter:
    """Reports the SIG's demand to the demand store; announces it on the bus when it changes."""

    def __init__(self, agent: Agent, controller: AppController, master_ui: str) -> None:
        self._agent = agent
        self._controller = controller
        self._master_ui = master_ui
        self._idle: dict[str, float] = {}
        # Last dynamic-allocation target seen per driver (its UI stops answering while it exits).
        self._targets: dict[str, int] = {}
        self._last_sig: tuple[Any, ...] | None = None
        self._last_at = 0.0

    def report(self) -> Demand | None:
        agent = self._agent
        if agent.demand is None:
            return None
        hosts = {}
        for rec in read_hosts(agent.store, agent.keys, agent.s.tenant, agent.s.sig):
            if rec.role == "worker" and rec.ports.get("spark"):
                hosts[(rec.ip, rec.ports["spark"])] = str(rec.host)
        drivers = []
        for d in self._controller.drivers.values():
            if d.poll() is not None:
                continue
            target = None
            if d.dynamic_allocation and d.spark_app_id:
                executors = dynamic_target_executors(d.ui_url)
                if executors is not None:
                    self._targets[d.app_id] = executors * (d.executor_cores or agent.s.worker_cores)
                target = self._targets.get(d.app_id)
            drivers.append(DriverDemand(spark_app_id=d.find_spark_app_id(), requested=d.requested_cores,
                                        dynamic_target=target))
        running = {d.app_id for d in self._controller.drivers.values()}
        self._targets = {k: v for k, v in self._targets.items() if k in running}
        now = time.time()
        demand, self._idle = compute(master_json(self._master_ui), drivers, hosts, self._idle,
                                     backlog=self._controller.backlog, cores_per_worker=agent.s.worker_cores, now=now)
        changed = demand.signature() != self._last_sig
        if changed or now - self._last_at > 10:
            agent.demand.report(agent.s.tenant, agent.s.sig, demand)
            self._last_at = now
        if changed:
            self._last_sig = demand.signature()
            try:
                agent.bus.publish(messages.DemandChanged(tenant=agent.s.tenant, sig=agent.s.sig))
            except TemporaryError as exc:
                log.warning("%s: demand change not announced: %s", agent.ident, exc)
        return demand
