"""Tests for the agent's Spark rendering (`services.agent.spark`): the properties files daemons and
drivers start with, and the `spark-submit` command line built from a Livy-shaped application."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from services.agent.spark import (DaemonLaunch, SparkEnv, daemon_properties, driver_properties, history_argv,
                                  history_properties, history_proxy_base, launch_env, master_argv,
                                  master_history_properties, render_properties, submit_argv, worker_argv)

ENV = SparkEnv(spark_home=Path("/opt/spark"), python=Path("/env/bin/python"), spark_version="3.5.1")
SUBMIT = "/opt/spark/bin/spark-submit"
PROPS = Path("/work/app-1/spark.properties")
MASTER_URL = "spark://10.0.0.5:7077"


# -- a small reader with java.util.Properties#load semantics -------------------------------------

def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 == len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u":
            out.append(chr(int(text[i + 2:i + 6], 16)))
            i += 6
            continue
        out.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(nxt, nxt))
        i += 2
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """Logical lines (odd trailing backslashes continue), comments, first unescaped `=`, `:` or blank."""
    props: dict[str, str] = {}
    natural = re.split(r"\r\n|\r|\n", text)
    i = 0
    while i < len(natural):
        line = natural[i].lstrip(" \t\f")
        i += 1
        if not line or line[0] in "#!":
            continue
        while (len(line) - len(line.rstrip("\\"))) % 2 == 1 and i < len(natural):
            line = line[:-1] + natural[i].lstrip(" \t\f")
            i += 1
        j, escaped = 0, False
        while j < len(line):
            if escaped:
                escaped = False
            elif line[j] == "\\":
                escaped = True
            elif line[j] in "=: \t\f":
                break
            j += 1
        key, rest = line[:j], line[j:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        props[_unescape(key)] = _unescape(rest)
    return props


def test_reader_follows_java_rules() -> None:
    assert parse_properties("# c\n! c\na=1\nb : 2\nc 3\nd=x\\\n   y\ne=\\u0041\\=\n") == {
        "a": "1", "b": "2", "c": "3", "d": "xy", "e": "A="}


# -- render_properties ---------------------------------------------------------------------------

HOSTILE = [
    "1g\nspark.authenticate=false",
    "1g\r\nspark.master=spark://evil:7077",
    "1g\rspark.master.rest.enabled=true",
    "a=b:c",
    "C:\\temp\\",
    "ends with a backslash\\",
    "\\\nspark.authenticate=false",
    "\\u0041 is not A",
    "#not a comment",
    "x\n#y\n!z",
    "tab\there",
    "ünïcødé",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_rendered_values_cannot_inject_keys(value: str) -> None:
    props = {"spark.authenticate": "true", "spark.executor.memory": value, "spark.sql.x": "1"}
    text = render_properties(props)
    assert text.count("\n") == 3 and "\r" not in text
    assert parse_properties(text) == props


@pytest.mark.parametrize("key", ["spark.a=b", "spark.a:b", "spark.a\\b", "spark.a\nspark.b"])
def test_rendered_keys_round_trip(key: str) -> None:
    props = {key: "v=1:2", "spark.z": "ok"}
    assert parse_properties(render_properties(props)) == props


def test_rendered_file_is_sorted_and_stable() -> None:
    props = {"spark.b": "2", "spark.a": "1"}
    assert render_properties(props) == "spark.a=1\nspark.b=2\n"
    assert render_properties(dict(reversed(list(props.items())))) == render_properties(props)


def test_empty_properties_render_empty() -> None:
    assert render_properties({}) == ""


# -- daemon and driver properties ----------------------------------------------------------------

def driver(sig_conf: dict[str, str], app_conf: dict[str, str]) -> dict[str, str]:
    return driver_properties("s3cret", sig_conf, app_conf, local_dir=Path("/scratch"), driver_host="10.0.0.5",
                             ui_port=4041, python=Path("/env/bin/python"))


PLATFORM = {
    "spark.authenticate": "true",
    "spark.authenticate.secret": "s3cret",
    "spark.master.rest.enabled": "false",
    "spark.local.dir": "/scratch",
    "spark.ui.killEnabled": "false",
    "spark.driver.host": "10.0.0.5",
    "spark.driver.bindAddress": "10.0.0.5",
    "spark.ui.port": "4041",
    "spark.pyspark.python": "/env/bin/python",
    "spark.pyspark.driver.python": "/env/bin/python",
    "spark.submit.deployMode": "client",
}


@pytest.mark.parametrize(("key", "expected"), sorted(PLATFORM.items()))
def test_platform_keys_win_over_tenant_conf(key: str, expected: str) -> None:
    hostile = {k: "tenant-value" for k in PLATFORM}
    hostile.update({"spark.authenticate": "false", "spark.master.rest.enabled": "true"})
    assert driver(hostile, hostile)[key] == expected
    assert driver({}, {})[key] == expected


@pytest.mark.parametrize(
    ("sig_conf", "app_conf", "expected"),
    [
        ({"spark.executor.memory": "1g"}, {}, "1g"),
        ({}, {"spark.executor.memory": "2g"}, "2g"),
        ({"spark.executor.memory": "1g"}, {"spark.executor.memory": "2g"}, "2g"),
    ],
    ids=["sig-only", "app-only", "app-overrides-sig"],
)
def test_app_conf_overrides_sig_conf(sig_conf: dict[str, str], app_conf: dict[str, str], expected: str) -> None:
    props = driver(sig_conf, app_conf)
    assert props["spark.executor.memory"] == expected
    assert {k: props[k] for k in PLATFORM} == PLATFORM


def test_daemon_properties_enforce_platform_keys() -> None:
    props = daemon_properties("s3cret", {"spark.authenticate": "false", "spark.master.rest.enabled": "true",
                                         "spark.sql.shuffle.partitions": "8"}, local_dir=Path("/scratch"))
    assert props["spark.authenticate"] == "true" and props["spark.authenticate.secret"] == "s3cret"
    assert props["spark.master.rest.enabled"] == "false"
    assert props["spark.sql.shuffle.partitions"] == "8"


# -- submit_argv ---------------------------------------------------------------------------------

def submit(app: dict[str, Any], py_files: list[Path] | None = None) -> list[str]:
    return submit_argv(ENV, app, master_url=MASTER_URL, properties=PROPS, file=Path("/work/app-1/job.py"),
                       py_files=py_files or [])


COMMON = [SUBMIT, "--master", MASTER_URL, "--deploy-mode", "client", "--properties-file", str(PROPS)]


def test_minimal_application() -> None:
    assert submit({"file": "job.py"}) == COMMON + ["/work/app-1/job.py"]


def test_full_application() -> None:
    app = {"file": "job.py", "name": "nightly etl", "className": "com.acme.Etl", "driverMemory": "1g",
           "executorMemory": "2g", "executorCores": 2, "numExecutors": 3, "args": ["--date", "2024-01-01"]}
    assert submit(app, [Path("/work/app-1/a.py"), Path("/work/app-1/b.zip")]) == COMMON + [
        "--name", "nightly etl", "--class", "com.acme.Etl", "--driver-memory", "1g", "--executor-memory", "2g",
        "--executor-cores", "2", "--total-executor-cores", "6", "--py-files", "/work/app-1/a.py,/work/app-1/b.zip",
        "/work/app-1/job.py", "--date", "2024-01-01"]


@pytest.mark.parametrize(
    ("fields", "flag", "value"),
    [
        ({"name": "etl"}, "--name", "etl"),
        ({"className": "com.acme.Main"}, "--class", "com.acme.Main"),
        ({"driverMemory": "4g"}, "--driver-memory", "4g"),
        ({"executorMemory": "3g"}, "--executor-memory", "3g"),
        ({"executorCores": 4}, "--executor-cores", "4"),
        ({"numExecutors": 5, "executorCores": 2}, "--total-executor-cores", "10"),
        ({"numExecutors": 5}, "--total-executor-cores", "5"),
    ],
)
def test_livy_fields_map_to_flags(fields: dict[str, Any], flag: str, value: str) -> None:
    argv = submit({"file": "job.py", **fields})
    file_at = argv.index("/work/app-1/job.py")
    assert argv.count(flag) == 1 and argv.index(flag) < file_at
    assert argv[argv.index(flag) + 1] == value


def test_file_then_args_come_last_even_if_args_look_like_flags() -> None:
    argv = submit({"file": "job.py", "args": ["--master", "local[*]", "x y"], "name": "n"})
    assert argv[-4:] == ["/work/app-1/job.py", "--master", "local[*]", "x y"]
    assert argv[:3] == [SUBMIT, "--master", MASTER_URL]
    assert argv[argv.index("--deploy-mode") + 1] == "client"


def test_total_cores_absent_without_num_executors() -> None:
    assert "--total-executor-cores" not in submit({"file": "job.py", "executorCores": 4})


def test_every_ui_of_a_sig_runs_behind_the_proxy_path() -> None:
    from services.agent.spark import ui_proxy_base
    base = ui_proxy_base("acme", "etl")
    assert base == "/sig/acme/etl/"
    tenant_tries = {"spark.ui.reverseProxy": "false", "spark.ui.reverseProxyUrl": "http://evil/", "spark.ui.killEnabled": "true"}
    for props in (daemon_properties("s", tenant_tries, local_dir=Path("/l"), ui_base=base),
                  driver_properties("s", tenant_tries, tenant_tries, local_dir=Path("/l"), driver_host="h", ui_port=1,
                                    python=Path("/py"), ui_base=base)):
        assert props["spark.ui.reverseProxy"] == "true"
        assert props["spark.ui.reverseProxyUrl"] == "/sig/acme/etl/"
        assert props["spark.ui.killEnabled"] == "false"


# -- event logs and the history server -------------------------------------------------------------

def test_every_driver_logs_events_into_its_sigs_directory_whatever_the_tenant_says() -> None:
    hostile = {"spark.eventLog.enabled": "false", "spark.eventLog.dir": "file:///elsewhere"}
    props = driver_properties("s3cret", hostile, hostile, local_dir=Path("/scratch"), driver_host="10.0.0.5",
                              ui_port=4041, python=Path("/env/bin/python"),
                              event_log_dir=Path("/state/storage/acme/etl/eventlog"))
    assert props["spark.eventLog.enabled"] == "true"
    assert props["spark.eventLog.dir"] == "file:///state/storage/acme/etl/eventlog"


def test_history_server_reads_its_sigs_event_logs_on_its_own_port() -> None:
    props = history_properties(event_log_dir=Path("/state/storage/acme/etl/eventlog"), ui_port=18081)
    assert props["spark.history.fs.logDirectory"] == "file:///state/storage/acme/etl/eventlog"
    assert props["spark.history.ui.port"] == "18081"
    assert "spark.ui.proxyBase" not in props  # the proxy sends X-Forwarded-Context per request
    assert history_argv(ENV, properties=PROPS) == [
        "/opt/spark/bin/spark-class", "org.apache.spark.deploy.history.HistoryServer", "--properties-file", str(PROPS)]


@pytest.mark.parametrize(("version", "expected"), [
    ("3.5.9", {}),
    ("4.0.0", {"spark.master.ui.historyServerUrl": "/sig/acme/etl/history"}),
    ("4.1.4", {"spark.master.ui.historyServerUrl": "/sig/acme/etl/history"}),
    ("x.y", {}),
])
def test_only_spark_4_masters_link_the_history_server(version: str, expected: dict[str, str]) -> None:
    assert master_history_properties(version, history_proxy_base("acme", "etl")) == expected


# -- daemon command lines: class-data sharing when the build made an archive ----------------------

def test_daemons_start_through_spark_class_without_an_archive() -> None:
    argv = master_argv(ENV, host="10.0.0.5", port=7077, ui_port=8080, properties=PROPS)
    assert argv == ["/opt/spark/bin/spark-class", "org.apache.spark.deploy.master.Master", "--host", "10.0.0.5",
                    "--port", "7077", "--webui-port", "8080", "--properties-file", str(PROPS)]


def test_daemons_start_the_jvm_directly_with_the_launchers_command_and_the_archive() -> None:
    launch = DaemonLaunch(prefix=("/usr/bin/java", "-cp", "/cds/conf/:/opt/spark/jars/*", "-Xmx512m", "--add-opens=x"),
                          memory_flag="-Xmx512m", archive=Path("/cds/worker.jsa"))
    argv = worker_argv(ENV, host="10.0.0.6", port=4000, ui_port=4001, cores=2, memory_mb=2048, work_dir=Path("/w"),
                       properties=PROPS, master_url=MASTER_URL, launch=launch, memory="1g",
                       java_opts="-Dfoo=1 -Dbar='a b'")
    assert argv[:7] == ["/usr/bin/java", "-cp", "/cds/conf/:/opt/spark/jars/*", "-Xmx1g", "--add-opens=x", "-Dfoo=1",
                        "-Dbar=a b"]
    assert "-XX:SharedArchiveFile=/cds/worker.jsa" in argv
    assert "-Xshare:auto" in argv  # an unusable archive falls back to ordinary class loading
    cls = argv.index("org.apache.spark.deploy.worker.Worker")
    assert argv[cls + 1:] == ["--host", "10.0.0.6", "--port", "4000", "--webui-port", "4001", "--cores", "2",
                              "--memory", "2048m", "--work-dir", "/w", "--properties-file", str(PROPS), MASTER_URL]


def test_a_launch_counts_only_when_the_build_completed_it(tmp_path: Path) -> None:
    java = tmp_path / "java"
    java.write_text("")
    env = SparkEnv(spark_home=Path("/opt/spark"), python=Path("/p"), spark_version="3.5.1", java=str(java),
                   cds_dir=tmp_path)
    (tmp_path / "master.json").write_text(json.dumps({"prefix": [str(java), "-Xmx512m"], "memory_flag": "-Xmx512m"}))
    (tmp_path / "master.jsa").write_bytes(b"x")
    assert env.launch("master") is None  # no .complete marker yet
    (tmp_path / ".complete").write_text("")
    assert env.launch("master") == DaemonLaunch(prefix=(str(java), "-Xmx512m"), memory_flag="-Xmx512m",
                                                archive=tmp_path / "master.jsa")
    assert env.launch("worker") is None and ENV.launch("master") is None
    (tmp_path / "master.json").write_text("{not json")
    assert env.launch("master") is None


def test_a_daemon_started_without_spark_class_gets_what_its_scripts_export(tmp_path: Path) -> None:
    # A worker launches executors through Spark's launcher library, which fails without these.
    env = SparkEnv(spark_home=tmp_path, python=Path("/p"), spark_version="3.5.1")
    assert launch_env(env) == {"SPARK_ENV_LOADED": "1", "SPARK_SCALA_VERSION": "2.12"}
    (tmp_path / "assembly" / "target" / "scala-2.13").mkdir(parents=True)
    assert launch_env(env)["SPARK_SCALA_VERSION"] == "2.13"
