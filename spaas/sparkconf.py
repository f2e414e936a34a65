"""The filter every tenant-supplied Spark conf passes (SIG `spark_conf`, application `conf`).

Tenants may tune Spark, but not escape their SIG: no pointing at another master, no turning
off or reading authentication, no loading arbitrary classes into daemons, no UI filters, no
proxy users, no REST submission server (CVE-2018-11770). Rejected keys are named in the error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from spaas.errors import Invalid

# Exact keys or prefixes (ending in ".") that the platform owns.
DENIED_PREFIXES = (
    "spark.authenticate",  # the SIG secret and its switch
    "spark.network.crypto.",
    "spark.io.encryption.keygen",
    "spark.master",  # includes spark.master.rest.*
    "spark.submit.",
    "spark.ui.filters",
    "spark.ui.proxyBase",
    "spark.ui.reverseProxy",
    "spark.ui.allowFramingFrom",
    "spark.acls.",
    "spark.admin.acls",
    "spark.modify.acls",
    "spark.ui.view.acls",
    "spark.history.",
    "spark.eventLog.",  # every driver logs into its SIG's own directory, read by its history server
    "spark.kerberos.",
    "spark.yarn.",
    "spark.kubernetes.",
    "spark.deploy.",
    "spark.worker.",
    "spark.ssl.",
    "spark.redaction.",
    "spark.plugins",
    "spark.extraListeners",
    "spark.driver.extraClassPath",
    "spark.executor.extraClassPath",
    "spark.driver.extraLibraryPath",
    "spark.executor.extraLibraryPath",
    "spark.driver.host",
    "spark.driver.bindAddress",
    "spark.driver.port",
    "spark.blockManager.port",
    "spark.ui.port",
    "spark.local.dir",
    "spark.pyspark.python",
    "spark.pyspark.driver.python",
    "spark.proxy",
    "spark.jars.ivySettings",
    "spark.jars.repositories",
    "spark.r.command",
    "spark.r.driver.command",
)
# Keys naming a class to load ("...Class", "...class", "....classes"), anywhere in the tree.
CLASS_KEY = re.compile(r"(?i)(class|classes|provider|factory)$")
# JVM options that load agents or change security.
DANGEROUS_JAVA_OPTION = re.compile(r"(?i)(-javaagent|-agentpath|-agentlib|-Xbootclasspath|-Djava\.security|-Dspark\.|-XX:OnError|-XX:OnOutOfMemoryError)")
KEY_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")


def rejected_keys(conf: Mapping[str, str]) -> list[str]:
    """The keys of `conf` a tenant may not set, in order."""
    bad = []
    for key, value in conf.items():
        lowered = key.lower()
        if not KEY_RE.match(key) or not lowered.startswith("spark."):
            bad.append(key)
        elif any(lowered == p.lower().rstrip(".") or lowered.startswith(p.lower()) for p in DENIED_PREFIXES):
            bad.append(key)
        elif CLASS_KEY.search(key) or "proxyuser" in lowered or "proxy-user" in lowered:
            bad.append(key)
        elif lowered.endswith("javaoptions") and DANGEROUS_JAVA_OPTION.search(str(value)):
            bad.append(key)
    return bad


def check(conf: Mapping[str, str], *, field: str) -> None:
    """Raise `Invalid` naming every forbidden key (the first in `field`)."""
    bad = rejected_keys(conf)
    if bad:
        raise Invalid(
            f"these Spark conf keys may not be set by tenants: {', '.join(sorted(bad))}",
            field=f"{field}.{bad[0]}",
        )


# Keys the platform reads as numbers (demand, executor sizing): each must be a whole number in
# range, so a value like "x" or 10**12 is refused at the API and makes a stored record invalid
# instead of breaking a controller's pass.
NUMERIC_KEYS: dict[str, tuple[int, int]] = {
    "spark.executor.cores": (1, 256),
    "spark.driver.cores": (1, 256),
    "spark.task.cpus": (1, 256),
    "spark.cores.max": (1, 100_000),
    "spark.executor.instances": (0, 10_000),
    "spark.dynamicAllocation.minExecutors": (0, 10_000),
    "spark.dynamicAllocation.initialExecutors": (0, 10_000),
    "spark.dynamicAllocation.maxExecutors": (0, 1_000_000),
}


def numeric_errors(conf: Mapping[str, str]) -> list[str]:
    """One message per key of NUMERIC_KEYS whose value is not a whole number in its range."""
    errors = []
    for key, (lo, hi) in NUMERIC_KEYS.items():
        if key in conf:
            raw = str(conf[key]).strip()
            if not raw.isdigit() or not lo <= int(raw[:12]) <= hi:
                errors.append(f"{key} must be a whole number from {lo} to {hi}, not {str(conf[key])[:40]!r}")
    return errors
