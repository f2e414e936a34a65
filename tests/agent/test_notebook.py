"""The notebook container's pure parts (services/agent/notebook.py): the kernel gets the SIG's
Python, master, conf and secret (in a properties file, never in the spec or argv), Jupyter its
base_url and root, and the token stays off every command line."""

from __future__ import annotations

from pathlib import Path

from services.agent import notebook
from services.agent.spark import SparkEnv

ENV = SparkEnv(spark_home=Path("/env/pyspark"), python=Path("/env/bin/python"), spark_version="3.5.9")


def test_kernel_spec_runs_the_sigs_python_against_its_master() -> None:
    spec = notebook.kernel_spec(ENV, sig="etl", master_url="spark://10.0.0.2:7077", properties=Path("/c/p.properties"),
                                ipython_dir=Path("/c/ipython"), local_ip="10.0.0.5", conf_dir=Path("/c"))
    assert spec["argv"][:3] == ["/env/bin/python", "-m", "ipykernel_launcher"]
    env = spec["env"]
    assert env["PYSPARK_SUBMIT_ARGS"] == "--master spark://10.0.0.2:7077 --properties-file /c/p.properties pyspark-shell"
    assert env["PYSPARK_PYTHON"] == "/env/bin/python" and env["IPYTHONDIR"] == "/c/ipython"
    assert env["JUPYTER_TOKEN"] == ""


def test_kernel_properties_carry_the_sigs_conf_and_secret_and_the_platform_wins() -> None:
    props = notebook.kernel_properties("s3cret", {"spark.executor.memory": "1g", "spark.authenticate": "false"},
                                       local_dir=Path("/c/local"), driver_host="10.0.0.5", python=ENV.python,
                                       ui_base="/sig/t/s/", app_name="notebook-alice")
    assert props["spark.executor.memory"] == "1g"
    assert props["spark.authenticate"] == "true" and props["spark.authenticate.secret"] == "s3cret"
    assert props["spark.pyspark.python"] == "/env/bin/python" and props["spark.driver.host"] == "10.0.0.5"
    assert props["spark.app.name"] == "notebook-alice" and props["spark.ui.reverseProxyUrl"] == "/sig/t/s/"


def test_startup_file_defines_spark_and_stops_it_with_the_kernel() -> None:
    code = notebook.startup_code("notebook-alice")
    scope: dict[str, object] = {}
    compile(code, "startup", "exec")
    assert "appName('notebook-alice')" in code and "atexit.register(spark.stop)" in code
    assert "spark =" in code and "sc = spark.sparkContext" in code and not scope


def test_server_runs_under_its_base_url_with_the_token_only_in_the_environment() -> None:
    argv = notebook.server_argv(ENV, ip="10.0.0.5", port=8888, base_url="/sig/t/s/notebooks/alice/",
                                root_dir=Path("/storage/t/s/notebooks/alice"))
    assert argv[:3] == ["/env/bin/python", "-m", "jupyterlab"]
    assert "--ServerApp.base_url=/sig/t/s/notebooks/alice/" in argv
    assert "--ServerApp.root_dir=/storage/t/s/notebooks/alice" in argv
    env = notebook.server_env({"PATH": "/bin"}, cdir=Path("/c"), token="tok", env=ENV)
    assert env["JUPYTER_PATH"] == "/c/jupyter/data"  # our kernel spec first
    assert env["JUPYTER_TOKEN"] == "tok" and not any(a == "tok" or "tok" in a.split("=")[-1:] for a in argv)


def test_jupyter_activity_is_read_as_epoch_seconds() -> None:
    assert notebook.parse_activity({"last_activity": "2026-01-01T00:00:00.000000Z"}) == 1767225600.0
    assert notebook.parse_activity({"last_activity": "garbage"}) is None
    assert notebook.parse_activity(None) is None


def test_a_server_with_a_busy_or_connected_kernel_is_in_use_now() -> None:
    status = {"last_activity": "2026-01-01T00:00:00Z"}
    assert notebook.activity(status, [{"execution_state": "idle", "connections": 0}], 5e9) == 1767225600.0
    assert notebook.activity(status, [{"execution_state": "busy", "connections": 0}], 5e9) == 5e9
    assert notebook.activity(status, [{"execution_state": "starting", "connections": 1}], 5e9) == 5e9
    assert notebook.activity(None, None, 5e9) is None
    # A kernel still connecting its Spark session is in use (a client's WebSocket handshake waits
    # for it), but not for ever.
    t0 = 1767225600.0
    starting = {"execution_state": "starting", "connections": 0, "last_activity": "2026-01-01T00:00:00Z"}
    assert notebook.activity(status, [starting], t0 + 120) == t0 + 120
    assert notebook.activity(status, [starting], t0 + notebook.STARTING_GRACE_S + 1) == t0


def test_a_kernel_takes_one_core_unless_the_sigs_conf_sizes_it() -> None:
    def props(conf: dict[str, str]) -> dict[str, str]:
        return notebook.kernel_properties("s3cret", conf, local_dir=Path("/l"), driver_host="127.0.0.1",
                                          python=Path("/env/bin/python"), ui_base="/sig/t/s/", app_name="notebook-a")
    assert props({})["spark.cores.max"] == "1"
    assert props({"spark.cores.max": "4"})["spark.cores.max"] == "4"
    assert "spark.cores.max" not in props({"spark.dynamicAllocation.enabled": "true"})
