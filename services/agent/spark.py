"""Pure functions that turn a SIG and an application into Spark properties and command lines."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
HISTORY_CLASS = "org.apache.spark.deploy.history.HistoryServer"


@dataclass(frozen=True)
class SparkEnv:
    """What the builder put in a SIG artifact (its `manifest.json`)."""

    spark_home: Path
    python: Path
    spark_version: str
    # The JVM and the daemons' class-data-sharing archives (services/builder/cds.py), when the
    # build made them; without them the daemons start through spark-class.
    java: str = ""
    cds_dir: Path | None = None

    @classmethod
    def load(cls, artifact_dir: Path) -> SparkEnv:
        data = json.loads((Path(artifact_dir) / "manifest.json").read_text())
        return cls(spark_home=Path(data["spark_home"]), python=Path(data["python"]), spark_version=data["spark_version"],
                   java=str(data.get("java") or ""), cds_dir=Path(data["cds_dir"]) if data.get("cds_dir") else None)

    def launch(self, role: str) -> DaemonLaunch | None:
        """How to start a daemon role ("master", "worker") with class-data sharing, if the
        build made it (services/builder/cds.py); None: through spark-class."""
        if not (self.java and self.cds_dir and (self.cds_dir / ".complete").is_file()):
            return None
        try:
            data = json.loads((self.cds_dir / f"{role}.json").read_text())
            prefix, memory_flag = [str(a) for a in data["prefix"]], str(data["memory_flag"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        archive = self.cds_dir / f"{role}.jsa"
        if not archive.is_file() or not prefix or not Path(prefix[0]).exists():
            return None
        return DaemonLaunch(prefix=tuple(prefix), memory_flag=memory_flag, archive=archive)

    @property
    def spark_class(self) -> str:
        return str(self.spark_home / "bin" / "spark-class")

    @property
    def spark_submit(self) -> str:
        return str(self.spark_home / "bin" / "spark-submit")


@dataclass(frozen=True)
class DaemonLaunch:
    """The JVM command Spark's launcher built for a daemon at build time (up to the main class),
    the heap flag in it, and the class-data-sharing archive dumped with that very command."""

    prefix: tuple[str, ...]
    memory_flag: str
    archive: Path


def ui_proxy_base(tenant: str, sig: str) -> str:
    """The public path of a SIG's Spark UIs behind services/proxy."""
    return f"/sig/{tenant}/{sig}/"


def history_proxy_base(tenant: str, sig: str) -> str:
    """The public path of a SIG's history server behind services/proxy (no trailing slash: the
    proxy sends it as `X-Forwarded-Context`, which Spark prepends to every link)."""
    return f"/sig/{tenant}/{sig}/history"


def version_tuple(version: str) -> tuple[int, ...]:
    """"3.5.9" -> (3, 5, 9); anything unparsable sorts lowest."""
    try:
        return tuple(int(p) for p in version.split(".")[:3])
    except ValueError:
        return (0,)


def _file_uri(path: Path) -> str:
    # abspath, not resolve(): the directory is checked link-free where it is made; never follow one here.
    return Path(os.path.abspath(path)).as_uri()


def event_log_properties(event_log_dir: Path) -> dict[str, str]:
    """Every driver writes its event log into its SIG's own directory (platform-owned keys:
    `spaas.sparkconf` refuses `spark.eventLog.*` from tenants)."""
    return {"spark.eventLog.enabled": "true", "spark.eventLog.dir": _file_uri(event_log_dir)}


def master_history_properties(spark_version: str, history_base: str) -> dict[str, str]:
    """Spark 4 masters link finished applications to a history server (`spark.master.ui.
    historyServerUrl`, unknown before 4.0): the SIG's own, through the proxy."""
    if version_tuple(spark_version) >= (4, 0) and history_base:
        return {"spark.master.ui.historyServerUrl": history_base}
    return {}


def history_properties(*, event_log_dir: Path, ui_port: int, update_interval_s: int = 5) -> dict[str, str]:
    """The SIG's history server: reads only its SIG's event logs. No `spark.ui.proxyBase`: the
    proxy sends the public prefix per request (`X-Forwarded-Context`), so the server's own
    address still serves plain links (forward mode). Old logs are cleaned after Spark's default
    7 days; the listing is kept in memory (rebuilt from the logs on a restart). It needs no Spark
    secret (it joins no cluster)."""
    return {
        "spark.history.fs.logDirectory": _file_uri(event_log_dir),
        "spark.history.ui.port": str(ui_port),
        "spark.history.fs.update.interval": f"{update_interval_s}s",
        "spark.history.fs.cleaner.enabled": "true",
        "spark.ui.killEnabled": "false",
    }


def platform_properties(secret: str, *, local_dir: Path, ui_base: str = "") -> dict[str, str]:
    """Properties the platform owns in every daemon and driver of a SIG.

    With `ui_base` (see `ui_proxy_base`) the master reverse-proxies its workers' and drivers'
    UIs (`/proxy/<id>/`) and every UI writes its links under that path, which the proxy serves.
    """
    props = {
        "spark.authenticate": "true",
        "spark.authenticate.secret": secret,
        "spark.master.rest.enabled": "false",
        "spark.local.dir": str(local_dir),
        "spark.ui.killEnabled": "false",
    }
    if ui_base:
        props.update({"spark.ui.reverseProxy": "true", "spark.ui.reverseProxyUrl": ui_base})
    return props


def daemon_properties(secret: str, sig_conf: Mapping[str, str], *, local_dir: Path, ui_base: str = "") -> dict[str, str]:
    props = dict(sig_conf)
    props.update(platform_properties(secret, local_dir=local_dir, ui_base=ui_base))
    # A dead worker leaves the master's list quickly, so a replaced container is not double-counted.
    props["spark.worker.timeout"] = "15"
    # Scale-in decommissions a worker (SIGPWR) so no new executor lands on it while it goes.
    props["spark.decommission.enabled"] = "true"
    return props


def requested_cores(app: Mapping[str, Any], conf: Mapping[str, str]) -> int:
    """Cores an application asks for up front; 0 when it leaves it to Spark."""
    if app.get("numExecutors"):
        return int(app["numExecutors"]) * int(app.get("executorCores") or conf.get("spark.executor.cores") or 1)
    if conf.get("spark.dynamicAllocation.enabled", "").lower() == "true":
        initial = conf.get("spark.dynamicAllocation.initialExecutors") or conf.get("spark.dynamicAllocation.minExecutors")
        if initial and initial.isdigit():
            return int(initial) * int(app.get("executorCores") or conf.get("spark.executor.cores") or 1)
        return 0
    cores_max = conf.get("spark.cores.max", "")
    return int(cores_max) if cores_max.isdigit() else 0


def driver_properties(
    secret: str,
    sig_conf: Mapping[str, str],
    app_conf: Mapping[str, str],
    *,
    local_dir: Path,
    driver_host: str,
    ui_port: int,
    python: Path,
    ui_base: str = "",
    event_log_dir: Path | None = None,
) -> dict[str, str]:
    """SIG conf, then the application's conf, then what the platform enforces (last wins)."""
    props = dict(sig_conf)
    props.update(app_conf)
    props.update(platform_properties(secret, local_dir=local_dir, ui_base=ui_base))
    if event_log_dir is not None:
        props.update(event_log_properties(event_log_dir))
    props.update({
        "spark.driver.host": driver_host,
        "spark.driver.bindAddress": driver_host,
        "spark.ui.port": str(ui_port),
        "spark.pyspark.python": str(python),
        "spark.pyspark.driver.python": str(python),
        "spark.submit.deployMode": "client",
    })
    return props


def render_properties(props: Mapping[str, str]) -> str:
    """A Java properties file; values are escaped so no value can inject another key."""

    def esc(text: str) -> str:
        out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return out.replace("=", "\\=").replace(":", "\\:")

    return "".join(f"{esc(k)}={esc(v)}\n" for k, v in sorted(props.items()))


def launch_env(env: SparkEnv) -> dict[str, str]:
    """What `spark-class` (its load-spark-env.sh) exports for a daemon and the daemon relies on
    when it is started without it: a worker's executors are built by Spark's launcher library,
    which needs SPARK_SCALA_VERSION (2.12 unless the home is a 2.13 source build, as the script)."""
    scala = "2.13" if (env.spark_home / "assembly" / "target" / "scala-2.13").is_dir() else "2.12"
    return {"SPARK_ENV_LOADED": "1", "SPARK_SCALA_VERSION": scala}


def daemon_argv(env: SparkEnv, main_class: str, args: list[str], *, launch: DaemonLaunch | None = None,
                memory: str = "", java_opts: str = "") -> list[str]:
    """With a launch from the build: the JVM directly, with the command Spark's launcher makes
    for a daemon (class path, module options; `-Xmx` set to SPARK_DAEMON_MEMORY) plus
    $SPARK_DAEMON_JAVA_OPTS and the class-data-sharing archive. That saves the launcher JVM
    spark-class runs first and most class loading; the JVM ignores an archive that does not
    fit (`-Xshare:auto`). Without one: `spark-class`."""
    if launch is None:
        return [env.spark_class, main_class, *args]
    prefix = [f"-Xmx{memory}" if memory and a == launch.memory_flag else a for a in launch.prefix]
    return [*prefix, *shlex.split(java_opts), f"-XX:SharedArchiveFile={launch.archive}", "-Xshare:auto",
            "-Xlog:cds=off", "-Xlog:cds+dynamic=off", main_class, *args]


def master_argv(env: SparkEnv, *, host: str, port: int, ui_port: int, properties: Path,
                launch: DaemonLaunch | None = None, memory: str = "", java_opts: str = "") -> list[str]:
    return daemon_argv(env, MASTER_CLASS, ["--host", host, "--port", str(port), "--webui-port", str(ui_port),
                                           "--properties-file", str(properties)],
                       launch=launch, memory=memory, java_opts=java_opts)


def history_argv(env: SparkEnv, *, properties: Path) -> list[str]:
    return [env.spark_class, HISTORY_CLASS, "--properties-file", str(properties)]


def worker_argv(env: SparkEnv, *, host: str, port: int, ui_port: int, cores: int, memory_mb: int,
                work_dir: Path, properties: Path, master_url: str, launch: DaemonLaunch | None = None,
                memory: str = "", java_opts: str = "") -> list[str]:
    return daemon_argv(env, WORKER_CLASS, ["--host", host, "--port", str(port), "--webui-port", str(ui_port),
                                           "--cores", str(cores), "--memory", f"{memory_mb}m", "--work-dir",
                                           str(work_dir), "--properties-file", str(properties), master_url],
                       launch=launch, memory=memory, java_opts=java_opts)


def submit_argv(env: SparkEnv, app: Mapping[str, Any], *, master_url: str, properties: Path,
                file: Path, py_files: list[Path]) -> list[str]:
    """`spark-submit` in client mode for a Livy-shaped application."""
    argv = [env.spark_submit, "--master", master_url, "--deploy-mode", "client", "--properties-file", str(properties)]
    if app.get("name"):
        argv += ["--name", str(app["name"])]
    if app.get("className"):
        argv += ["--class", str(app["className"])]
    if app.get("driverMemory"):
        argv += ["--driver-memory", str(app["driverMemory"])]
    if app.get("executorMemory"):
        argv += ["--executor-memory", str(app["executorMemory"])]
    if app.get("executorCores"):
        argv += ["--executor-cores", str(app["executorCores"])]
    if app.get("numExecutors"):
        # Standalone has no executor count; cap total cores at executors x cores per executor.
        argv += ["--total-executor-cores", str(int(app["numExecutors"]) * int(app.get("executorCores") or 1))]
    if py_files:
        argv += ["--py-files", ",".join(str(p) for p in py_files)]
    argv.append(str(file))
    argv += [str(a) for a in app.get("args", [])]
    return argv
