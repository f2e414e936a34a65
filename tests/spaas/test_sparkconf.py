"""Table tests for the tenant Spark conf filter (`spaas.sparkconf`): which keys a tenant may set
on a SIG or an application, and how a rejection is reported."""

from __future__ import annotations

import pytest

from spaas.errors import Invalid, SpaasError
from spaas.sparkconf import check, rejected_keys

REJECTED: list[tuple[str, str]] = [
    ("spark.master", "spark://evil:7077"),
    ("spark.MASTER", "spark://evil:7077"),
    ("spark.master.rest.enabled", "true"),
    ("spark.master.rest.port", "6066"),
    ("spark.authenticate", "false"),
    ("spark.authenticate.secret", "guess"),
    ("spark.authenticate.enableSaslEncryption", "false"),
    ("spark.network.crypto.enabled", "false"),
    ("spark.ui.filters", "com.evil.Filter"),
    ("spark.ui.proxyBase", "/other-tenant"),
    ("spark.ui.reverseProxy", "true"),
    ("spark.acls.enable", "false"),
    ("spark.admin.acls", "*"),
    ("spark.submit.deployMode", "cluster"),
    ("spark.driver.extraJavaOptions", "-javaagent:/tmp/agent.jar"),
    ("spark.executor.extraJavaOptions", "-XX:+UseG1GC -agentpath:/tmp/x.so"),
    ("spark.executor.extraJavaOptions", "-Dspark.authenticate=false"),
    ("spark.driver.extraJavaOptions", "-XX:OnOutOfMemoryError=/bin/sh"),
    ("spark.driver.extraClassPath", "/tmp/evil.jar"),
    ("spark.serializer.class", "com.evil.Serializer"),
    ("spark.sql.catalog.evil.class", "com.evil.Catalog"),
    ("spark.shuffle.io.SomeFactory", "com.evil.Factory"),
    ("spark.yarn.x", "1"),
    ("spark.kubernetes.x", "1"),
    ("spark.deploy.recoveryMode", "FILESYSTEM"),
    ("spark.worker.cleanup.enabled", "false"),
    ("spark.history.fs.logDirectory", "/"),
    # Event logs and the history server are the platform's: a tenant can neither stop logging,
    # nor send its logs elsewhere, nor point the master's history link anywhere.
    ("spark.eventLog.enabled", "false"),
    ("spark.eventLog.dir", "file:///var/lib/spaas/storage/other/sig/eventlog"),
    ("spark.EventLog.Dir", "hdfs://evil/"),
    ("spark.eventLog.compress", "true"),
    ("spark.history.ui.acls.enable", "false"),
    ("spark.history.ui.port", "80"),
    ("spark.master.ui.historyServerUrl", "https://evil.example/"),
    ("spark.ssl.enabled", "false"),
    ("spark.local.dir", "/"),
    ("spark.driver.host", "10.0.0.1"),
    ("spark.ui.port", "80"),
    ("spark.pyspark.python", "/bin/sh"),
    ("spark.plugins", "com.evil.Plugin"),
    ("spark.extraListeners", "com.evil.Listener"),
    ("spark.proxyUser", "root"),
    ("spark.yarn.proxy-user", "root"),
    ("spark.foo.proxyUser", "root"),
    ("spark.foo.proxy-user", "root"),
    ("spark.jars.repositories", "https://evil.example/maven"),
    ("foo", "bar"),
    ("hadoop.security.authentication", "simple"),
    ("sparkx.executor.memory", "1g"),
    ("spark.executor memory", "1g"),
    ("spark.executor.memory\nspark.master", "1g"),
    ("", "x"),
]

ALLOWED: list[tuple[str, str]] = [
    ("spark.executor.memory", "2g"),
    ("spark.executor.cores", "2"),
    ("spark.sql.shuffle.partitions", "200"),
    ("spark.executor.extraJavaOptions", "-XX:+UseG1GC"),
    ("spark.driver.extraJavaOptions", "-XX:+UseG1GC -Dio.netty.tryReflectionSetAccessible=true"),
    ("spark.dynamicAllocation.enabled", "true"),
    ("spark.sql.adaptive.enabled", "true"),
    ("spark.default.parallelism", "8"),
    ("spark.driver.memory", "1g"),
]


@pytest.mark.parametrize(("key", "value"), REJECTED)
def test_key_is_rejected(key: str, value: str) -> None:
    assert rejected_keys({key: value}) == [key]
    with pytest.raises(Invalid) as exc:
        check({key: value}, field="spark_conf")
    assert exc.value.field == f"spark_conf.{key}"
    assert key in exc.value.message


@pytest.mark.parametrize(("key", "value"), ALLOWED)
def test_key_is_allowed(key: str, value: str) -> None:
    assert rejected_keys({key: value}) == []
    check({key: value}, field="spark_conf")  # does not raise


def test_all_allowed_keys_together_pass() -> None:
    check(dict(ALLOWED), field="conf")


def test_check_names_every_bad_key_and_points_at_the_first() -> None:
    conf = {
        "spark.executor.memory": "2g",
        "spark.ui.filters": "com.evil.Filter",
        "spark.sql.shuffle.partitions": "10",
        "spark.master": "spark://evil:7077",
        "foo": "bar",
    }
    with pytest.raises(Invalid) as exc:
        check(conf, field="conf")
    err = exc.value
    assert isinstance(err, SpaasError) and err.code == "Invalid"
    assert err.field == "conf.spark.ui.filters"
    for bad in ("spark.ui.filters", "spark.master", "foo"):
        assert bad in err.message
    for good in ("spark.executor.memory", "spark.sql.shuffle.partitions"):
        assert good not in err.message
    assert str(err) == err.message
    assert rejected_keys(conf) == ["spark.ui.filters", "spark.master", "foo"]


@pytest.mark.parametrize("field", ["spark_conf", "conf"])
def test_field_prefix_is_the_callers(field: str) -> None:
    with pytest.raises(Invalid) as exc:
        check({"spark.authenticate": "false"}, field=field)
    assert exc.value.field == f"{field}.spark.authenticate"


def test_empty_conf_passes() -> None:
    assert rejected_keys({}) == []
    check({}, field="spark_conf")


@pytest.mark.parametrize(("key", "value"), [
    ("spark.driver.defaultJavaOptions", "-javaagent:/tmp/agent.jar"),
    ("spark.executor.defaultJavaOptions", "-Dspark.authenticate=false"),
])
def test_default_java_options_are_filtered_like_extra_java_options(key: str, value: str) -> None:
    assert rejected_keys({key: value}) == [key]
