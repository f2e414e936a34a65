"""A user's Jupyter server in a SIG container of role "notebook" (see spaas/notebooks.py).

The agent writes, beneath its container directory: the kernel's Spark properties (0600, the SIG's
secret, like a driver's), a kernel spec that overrides the default `python3` kernel with the SIG's
Python and Spark environment, and an IPython startup file that creates `spark` (and `sc`) on the
SIG's master. Then it runs JupyterLab with the SIG's Python, `base_url` under the proxy's path, the
scaler's token (from the environment, never on a command line) and the user's folder of the SIG's
storage as its root; registers the server (role "notebook", ready once `/api/status` answers) and
copies Jupyter's own `last_activity` (kernels busy, API calls) into its host record so the scaler
does not cull a server whose kernel is working. Stopping the agent stops Jupyter, which shuts its
kernels down, whose Spark applications end with them (and the runtime ends any leftovers).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from spaas.authz import fold

from services.agent import spark

log = logging.getLogger(__name__)

PROPERTIES = "drivers/notebook/driver.properties"  # removed with the agent's other secret files
KERNEL_DIR = "jupyter/data/kernels/python3"
STARTUP = "ipython/profile_default/startup/00-spark.py"


def startup_code(app_name: str) -> str:
    """The kernel's IPython startup file: `spark` is ready before the first cell runs."""
    return (
        "# Written by spaas: `spark` is a session on this SIG's master, with the SIG's conf and secret;\n"
        "# executors use the SIG's Python. It stops with the kernel.\n"
        "import atexit as _spaas_atexit\n"
        "from pyspark.sql import SparkSession as _SpaasSparkSession\n"
        f"spark = _SpaasSparkSession.builder.appName({app_name!r}).getOrCreate()\n"
        "sc = spark.sparkContext\n"
        "_spaas_atexit.register(spark.stop)\n"
    )


def kernel_spec(env: spark.SparkEnv, *, sig: str, master_url: str, properties: Path, ipython_dir: Path,
                local_ip: str, conf_dir: Path) -> dict[str, Any]:
    """A kernel spec named `python3` (so it replaces the default one) that runs the SIG's Python."""
    return {
        "argv": [str(env.python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"PySpark ({sig})",
        "language": "python",
        "metadata": {"debugger": True},
        "env": {
            "SPARK_HOME": str(env.spark_home),
            "PYSPARK_PYTHON": str(env.python),
            "PYSPARK_DRIVER_PYTHON": str(env.python),
            # pyspark starts its JVM with these: the master, and the properties file with the secret.
            "PYSPARK_SUBMIT_ARGS": f"--master {master_url} --properties-file {properties} pyspark-shell",
            "SPARK_LOCAL_IP": local_ip,
            "SPARK_CONF_DIR": str(conf_dir),
            "IPYTHONDIR": str(ipython_dir),
            "JUPYTER_TOKEN": "",  # the server's token is not the kernel's business
        },
    }


NOTEBOOK_CORES = "1"


def kernel_properties(secret: str, sig_conf: dict[str, str], *, local_dir: Path, driver_host: str, python: Path,
                      ui_base: str, app_name: str) -> dict[str, str]:
    """A driver's properties, as for any application of the SIG (spark.driver_properties)."""
    props = spark.driver_properties(secret, sig_conf, {}, local_dir=local_dir, driver_host=driver_host, ui_port=0,
                                    python=python, ui_base=ui_base)
    props["spark.app.name"] = app_name
    # A kernel's application lives as long as the kernel, idle most of the time: unless the SIG's conf
    # sizes it, it takes one core, so every user's kernel gets executors instead of the first one
    # holding the whole SIG (standalone otherwise grants an application every free core).
    if "spark.cores.max" not in sig_conf and sig_conf.get("spark.dynamicAllocation.enabled") != "true":
        props["spark.cores.max"] = NOTEBOOK_CORES
    return props


def server_argv(env: spark.SparkEnv, *, ip: str, port: int, base_url: str, root_dir: Path) -> list[str]:
    return [
        str(env.python), "-m", "jupyterlab", "--no-browser",
        f"--ServerApp.ip={ip}", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={base_url}", f"--ServerApp.root_dir={root_dir}",
        # Reached only through services/proxy, which authenticates the user, injects the token and
        # checks the Origin of cookie-authenticated changes and WebSockets itself.
        "--ServerApp.allow_remote_access=True", "--ServerApp.allow_origin=*", "--ServerApp.allow_root=True",
        # The kernel connects its Spark session before it answers; a loaded machine needs time.
        "--MappingKernelManager.kernel_info_timeout=300",
    ]


def server_env(base: dict[str, str], *, cdir: Path, token: str, env: spark.SparkEnv) -> dict[str, str]:
    out = dict(base)
    out.update({
        "JUPYTER_TOKEN": token,
        "JUPYTER_CONFIG_DIR": str(cdir / "jupyter" / "config"),
        "JUPYTER_DATA_DIR": str(cdir / "jupyter" / "data"),
        # First on Jupyter's search path, so its `python3` kernel spec wins over the one ipykernel
        # installed into the environment (which jupyter_core prefers to the user's data dir in a venv).
        "JUPYTER_PATH": str(cdir / "jupyter" / "data"),
        "JUPYTER_RUNTIME_DIR": str(cdir / "jupyter" / "runtime"),
        "IPYTHONDIR": str(cdir / "ipython"),
        "SPARK_HOME": str(env.spark_home),
        "PYSPARK_PYTHON": str(env.python),
    })
    return out


def parse_activity(status: dict[str, Any] | None) -> float | None:
    """Jupyter's `/api/status` `last_activity` (ISO 8601) as epoch seconds."""
    text = (status or {}).get("last_activity")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# The kernel listing without counting as activity: Jupyter records every tracked API request in
# `last_activity`, so polling `/api/kernels` plainly would keep every server alive for ever.
KERNELS_UNTRACKED = "api/kernels?no_track_activity=1"


def server_status(url: str, token: str, timeout_s: float = 2.0, *, path: str = "api/status") -> Any:
    """Jupyter's `/api/status` (or another API path); None while it does not answer."""
    try:
        resp = requests.get(url.rstrip("/") + "/" + path, headers={"Authorization": f"token {token}"},
                            timeout=timeout_s)
        return resp.json() if resp.status_code == 200 else None
    except (requests.RequestException, ValueError):
        return None


# How long a kernel that has not answered yet counts as in use (it connects its Spark session
# first, which takes minutes on a loaded machine; a client's WebSocket handshake waits for it).
STARTING_GRACE_S = 600.0


def activity(status: dict[str, Any] | None, kernels: Any, now: float) -> float | None:
    """When the server was last in use: now while a kernel is busy, starting (for at most
    STARTING_GRACE_S since it was started) or has a client connected (an open notebook tab, a
    running cell: as Jupyter's own culler, connected kernels are not idle), else Jupyter's
    `last_activity`."""
    for kernel in kernels if isinstance(kernels, list) else []:
        if not isinstance(kernel, dict):
            continue
        if kernel.get("execution_state") == "busy" or int(kernel.get("connections") or 0) > 0:
            return now
        if kernel.get("execution_state") == "starting":
            started = parse_activity(kernel)
            if started is None or now - started < STARTING_GRACE_S:
                return now
    return parse_activity(status)


def write_kernel_files(write: Any, env: spark.SparkEnv, *, cdir: Path, sig: str, master_url: str,
                       properties_text: str, local_ip: str, app_name: str) -> None:
    """`write(rel, text)` writes a private file beneath the container directory (Agent._write_private)."""
    prop_file = write(PROPERTIES, properties_text)
    write(STARTUP, startup_code(app_name))
    spec = kernel_spec(env, sig=sig, master_url=master_url, properties=prop_file, ipython_dir=cdir / "ipython",
                       local_ip=local_ip, conf_dir=prop_file.parent)
    write(f"{KERNEL_DIR}/kernel.json", json.dumps(spec, indent=1))


def app_name(user: str) -> str:
    return f"notebook-{fold(user)}"
