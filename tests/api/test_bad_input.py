"""Bad input never breaks the API: a table of malformed, invalid and misaddressed requests, each
answered with a 4xx and the documented JSON error body `{"error": {"code", "message", "field"?}}`."""

from __future__ import annotations

import io
import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.api.conftest import error_of, sig_body

T = "/api/v1/tenants/acme"
S = f"{T}/sigs/s1"
NOPE = "/api/v1/tenants/nope"
GHOST = f"{T}/sigs/ghost"
UNKNOWN_APP = "0000deadbeef00000000"


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # "{app}" is replaced by the id of an application that exists
    status: int
    field: str | None = None  # the expected error.field; None: not checked
    json: Any = None
    raw: str | bytes | None = None
    content_type: str = "application/json"
    upload: tuple[str, int] | None = None  # multipart "file" part: (file name, size in bytes)
    form: dict[str, str] = dataclasses.field(default_factory=dict)  # other multipart fields
    query: dict[str, str] = dataclasses.field(default_factory=dict)
    says: tuple[str, ...] = ()  # substrings the error message must contain


def case(case_id: str, method: str, path: str, status: int, field: str | None = None, **kw: Any) -> Any:
    return pytest.param(Case(method, path, status, field, **kw), id=case_id)


def sig_with(**fields: Any) -> dict[str, Any]:
    """A valid new SIG ("s2") body, with `fields` replacing or adding to it."""
    return {**sig_body("s2"), **fields}


APP = {"file": "files/job.py"}
TABLE: list[Any] = [
    # -- bodies that are not a JSON object ------------------------------------------------------
    case("tenant-not-json", "POST", "/api/v1/tenants", 400, "body", raw="name=acme", content_type="text/plain"),
    case("tenant-json-array", "POST", "/api/v1/tenants", 400, "body", json=[{"name": "acme"}]),
    case("tenant-json-string", "POST", "/api/v1/tenants", 400, "body", json="acme"),
    case("tenant-json-null", "POST", "/api/v1/tenants", 400, "body", raw="null"),
    case("tenant-empty-body", "POST", "/api/v1/tenants", 400, "body", raw=""),
    case("tenant-bad-utf8", "POST", "/api/v1/tenants", 400, "body", raw=b'{"name": "\xff"}'),
    case("sig-not-json", "POST", f"{T}/sigs", 400, "body", raw="{name: s2", content_type="text/plain"),
    case("sig-put-json-array", "PUT", S, 400, "body", json=[]),
    case("app-not-json", "POST", f"{S}/applications", 400, "body", raw="file=job.py"),
    case("tenant-body-too-large", "POST", "/api/v1/tenants", 413, json={"name": "x" * 1_100_000}),
    # -- tenant fields -------------------------------------------------------------------------
    case("tenant-missing-name", "POST", "/api/v1/tenants", 422, "name", json={"quota": {}}),
    case("tenant-name-int", "POST", "/api/v1/tenants", 422, "name", json={"name": 5}),
    case("tenant-name-300", "POST", "/api/v1/tenants", 422, "name", json={"name": "a" * 300}),
    case("tenant-name-25", "POST", "/api/v1/tenants", 422, "name", json={"name": "a" * 25}),
    case("tenant-name-upper", "POST", "/api/v1/tenants", 422, "name", json={"name": "Acme"}),
    case("tenant-name-underscore", "POST", "/api/v1/tenants", 422, "name", json={"name": "my_team"}),
    case("tenant-name-leading-dash", "POST", "/api/v1/tenants", 422, "name", json={"name": "-acme"}),
    case("tenant-name-empty", "POST", "/api/v1/tenants", 422, "name", json={"name": ""}),
    case("tenant-quota-cores-str", "POST", "/api/v1/tenants", 422, "quota.cores",
         json={"name": "beta", "quota": {"cores": "lots"}}),
    case("tenant-quota-negative", "POST", "/api/v1/tenants", 422, "quota.max_containers",
         json={"name": "beta", "quota": {"max_containers": -1}}),
    case("tenant-quota-nan", "POST", "/api/v1/tenants", 422, "quota.cores",
         raw='{"name": "beta", "quota": {"cores": NaN}}'),
    case("tenant-unknown-field", "POST", "/api/v1/tenants", 422, "colour", json={"name": "beta", "colour": "red"}),
    case("tenant-quota-unknown-field", "POST", "/api/v1/tenants", 422, "quota.cpus",
         json={"name": "beta", "quota": {"cpus": 4}}),
    # -- SIG fields ----------------------------------------------------------------------------
    case("sig-missing-name", "POST", f"{T}/sigs", 422, "name", json={"spark_version": "3.5.9"}),
    case("sig-missing-version", "POST", f"{T}/sigs", 422, "spark_version", json={"name": "s2"}),
    case("sig-name-int", "POST", f"{T}/sigs", 422, "name", json=sig_with(name=5)),
    case("sig-name-300", "POST", f"{T}/sigs", 422, "name", json=sig_with(name="s" * 300)),
    case("sig-name-25", "POST", f"{T}/sigs", 422, "name", json=sig_with(name="s" * 25)),
    case("sig-name-upper", "POST", f"{T}/sigs", 422, "name", json=sig_with(name="Sig")),
    case("sig-name-underscore", "POST", f"{T}/sigs", 422, "name", json=sig_with(name="my_sig")),
    case("sig-cpu-str", "POST", f"{T}/sigs", 422, "resources.cpu", json=sig_with(resources={"cpu": "x"})),
    case("sig-limit-below-request", "POST", f"{T}/sigs", 422, "resources",
         json=sig_with(resources={"cpu": 8, "max_cpu": 4})),
    case("sig-min-workers-negative", "POST", f"{T}/sigs", 422, "scaling.min_workers",
         json=sig_with(scaling={"min_workers": -1})),
    case("sig-max-below-min", "POST", f"{T}/sigs", 422, "scaling",
         json=sig_with(scaling={"min_workers": 3, "max_workers": 2})),
    case("sig-packages-not-list", "POST", f"{T}/sigs", 422, "python_packages", json=sig_with(python_packages="numpy")),
    case("sig-packages-pip-option", "POST", f"{T}/sigs", 422, "python_packages",
         json=sig_with(python_packages=["-e ."])),
    case("sig-packages-url", "POST", f"{T}/sigs", 422, "python_packages",
         json=sig_with(python_packages=["numpy", "x @ https://evil/x.whl"])),
    case("sig-unknown-field", "POST", f"{T}/sigs", 422, "notebook", json=sig_with(notebook="jupyter")),
    case("sig-notebooks-not-object", "POST", f"{T}/sigs", 422, "notebooks", json=sig_with(notebooks="jupyter")),
    case("sig-notebooks-unknown-edition", "POST", f"{T}/sigs", 422, "notebooks.zeppelin",
         json=sig_with(notebooks={"zeppelin": {"enabled": True}})),
    case("sig-notebooks-enabled-str", "POST", f"{T}/sigs", 422, "notebooks.jupyter.enabled",
         json=sig_with(notebooks={"jupyter": {"enabled": "perhaps"}})),
    case("sig-notebooks-idle-too-short", "POST", f"{T}/sigs", 422, "notebooks.jupyter.idle_timeout_s",
         json=sig_with(notebooks={"jupyter": {"enabled": True, "idle_timeout_s": 1}})),
    case("sig-unknown-version", "POST", f"{T}/sigs", 422, "spark_version", json=sig_with(spark_version="9.9.9"),
         says=("9.9.9", "3.5.9", "4.1.4")),
    case("sig-version-not-semver", "POST", f"{T}/sigs", 422, "spark_version", json=sig_with(spark_version="latest")),
    case("sig-conf-master", "POST", f"{T}/sigs", 422, "spark_conf.spark.master",
         json=sig_with(spark_conf={"spark.master": "spark://evil:7077"}), says=("spark.master",)),
    case("sig-conf-value-int", "POST", f"{T}/sigs", 422, "spark_conf.spark.executor.cores",
         json=sig_with(spark_conf={"spark.executor.cores": 2})),
    case("sig-put-bad-version", "PUT", S, 422, "spark_version", json=sig_body(spark_version="9.9.9")),
    case("sig-put-conf-authenticate", "PUT", S, 422, "spark_conf.spark.authenticate",
         json=sig_body(spark_conf={"spark.authenticate": "false"})),
    # -- unknown tenant, on every tenant-scoped route ------------------------------------------
    case("nope-tenant-get", "GET", NOPE, 404, "tenant"),
    case("nope-tenant-delete", "DELETE", NOPE, 404, "tenant"),
    case("nope-sigs-list", "GET", f"{NOPE}/sigs", 404, "tenant"),
    case("nope-sigs-create", "POST", f"{NOPE}/sigs", 404, "tenant", json=sig_with()),
    case("nope-sig-get", "GET", f"{NOPE}/sigs/s1", 404, "tenant"),
    case("nope-sig-put", "PUT", f"{NOPE}/sigs/s1", 404, "tenant", json=sig_body()),
    case("nope-sig-delete", "DELETE", f"{NOPE}/sigs/s1", 404, "tenant"),
    case("nope-build-log", "GET", f"{NOPE}/sigs/s1/build/log", 404, "tenant"),
    case("nope-files", "POST", f"{NOPE}/sigs/s1/files", 404, "tenant", upload=("job.py", 10)),
    case("nope-apps-list", "GET", f"{NOPE}/sigs/s1/applications", 404, "tenant"),
    case("nope-apps-submit", "POST", f"{NOPE}/sigs/s1/applications", 404, "tenant", json=APP),
    case("nope-app-get", "GET", f"{NOPE}/sigs/s1/applications/{{app}}", 404, "tenant"),
    case("nope-app-log", "GET", f"{NOPE}/sigs/s1/applications/{{app}}/log", 404, "tenant"),
    case("nope-app-delete", "DELETE", f"{NOPE}/sigs/s1/applications/{{app}}", 404, "tenant"),
    # -- unknown SIG, unknown application --------------------------------------------------------
    case("ghost-sig-get", "GET", GHOST, 404, "sig"),
    case("ghost-sig-put", "PUT", GHOST, 404, "sig", json=sig_body("ghost")),
    case("ghost-sig-delete", "DELETE", GHOST, 404, "sig"),
    case("ghost-build-log", "GET", f"{GHOST}/build/log", 404, "sig"),
    case("ghost-files", "POST", f"{GHOST}/files", 404, "sig", upload=("job.py", 10)),
    case("ghost-apps-list", "GET", f"{GHOST}/applications", 404, "sig"),
    case("ghost-apps-submit", "POST", f"{GHOST}/applications", 404, "sig", json=APP),
    case("ghost-app-get", "GET", f"{GHOST}/applications/{{app}}", 404, "sig"),
    case("unknown-app-get", "GET", f"{S}/applications/{UNKNOWN_APP}", 404, "id"),
    case("unknown-app-log", "GET", f"{S}/applications/{UNKNOWN_APP}/log", 404, "id"),
    case("unknown-app-delete", "DELETE", f"{S}/applications/{UNKNOWN_APP}", 404, "id"),
    # -- paging parameters ---------------------------------------------------------------------
    case("app-log-from-negative", "GET", f"{S}/applications/{{app}}/log", 422, "from", query={"from": "-1"}),
    case("app-log-size-abc", "GET", f"{S}/applications/{{app}}/log", 422, "size", query={"size": "abc"}),
    case("app-log-size-zero", "GET", f"{S}/applications/{{app}}/log", 422, "size", query={"size": "0"}),
    case("build-log-from-negative", "GET", f"{S}/build/log", 422, "from", query={"from": "-1"}),
    case("build-log-size-abc", "GET", f"{S}/build/log", 422, "size", query={"size": "abc"}),
    case("build-log-generation-zero", "GET", f"{S}/build/log", 422, "generation", query={"generation": "0"}),
    # -- uploads -------------------------------------------------------------------------------
    case("upload-no-file-part", "POST", f"{S}/files", 422, "file", form={"other": "x"}),
    case("upload-not-multipart", "POST", f"{S}/files", 422, "file", raw="print(1)", content_type="text/plain"),
    case("upload-traversal-name", "POST", f"{S}/files", 422, "file", upload=("../../etc/passwd", 10),
         ),
    case("upload-hidden-name", "POST", f"{S}/files", 422, "file", upload=(".hidden", 10)),
    case("upload-too-large", "POST", f"{S}/files", 413, upload=("big.py", 1_000_001)),
    # -- applications --------------------------------------------------------------------------
    case("app-missing-file", "POST", f"{S}/applications", 422, "file", json={"className": "x.Main"}),
    case("app-file-not-uploaded", "POST", f"{S}/applications", 422, "file", json={"file": "files/missing.py"}),
    case("app-file-escapes", "POST", f"{S}/applications", 422, "file", json={"file": "../../x.py"}),
    case("app-file-absolute", "POST", f"{S}/applications", 422, "file", json={"file": "/etc/passwd"}),
    case("app-file-is-dir", "POST", f"{S}/applications", 422, "file", json={"file": "files"}),
    case("app-pyfiles-escape", "POST", f"{S}/applications", 422, "pyFiles.0", json={**APP, "pyFiles": ["../../x.py"]}),
    case("app-conf-authenticate", "POST", f"{S}/applications", 422, "conf.spark.authenticate",
         json={**APP, "conf": {"spark.authenticate": "false"}}),
    case("app-conf-master", "POST", f"{S}/applications", 422, "conf.spark.master",
         json={**APP, "conf": {"spark.master": "local[*]"}}),
    case("app-driver-memory-lots", "POST", f"{S}/applications", 422, "driverMemory",
         json={**APP, "driverMemory": "lots"}),
    case("app-executor-cores-zero", "POST", f"{S}/applications", 422, "executorCores",
         json={**APP, "executorCores": 0}),
    case("app-args-not-list", "POST", f"{S}/applications", 422, "args", json={**APP, "args": "--fast"}),
    case("app-unknown-field", "POST", f"{S}/applications", 422, "proxyUser", json={**APP, "proxyUser": "root"}),
    # -- NUL bytes and other control characters, anywhere: 422 naming where -----------------------
    case("nul-tenant-name", "POST", "/api/v1/tenants", 422, "name", json={"name": "ac\x00me"}),
    case("nul-sig-conf-key", "POST", f"{T}/sigs", 422, "spark_conf", json=sig_with(spark_conf={"spark.x\x00": "1"})),
    case("nul-sig-conf-value", "POST", f"{T}/sigs", 422, "spark_conf.spark.app.name",
         json=sig_with(spark_conf={"spark.app.name": "a\x00"})),
    case("nul-app-file", "POST", f"{S}/applications", 422, "file", json={"file": "files/job.py\x00.txt"}),
    case("nul-app-arg", "POST", f"{S}/applications", 422, "args.1", json={**APP, "args": ["ok", "a\x00b"]}),
    case("escape-app-conf", "POST", f"{S}/applications", 422, "conf.spark.app.name",
         json={**APP, "conf": {"spark.app.name": "x\x1b[31m"}}),
    case("nul-raw-json-escape", "POST", "/api/v1/tenants", 422, "name", raw='{"name": "a\\u0000b"}'),
    case("nul-in-path-tenant", "GET", f"{T}%00/sigs", 422, "path"),
    case("nul-in-path-sig", "PUT", f"{T}/sigs/s1%00", 422, "path", json=sig_body()),
    case("nul-in-path-app", "GET", f"{S}/applications/{{app}}%00/log", 422, "path"),
    case("nul-in-path-member", "PUT", f"{T}/members/user/al%00ice", 422, "path", json={"roles": ["user"]}),
    case("newline-in-path", "DELETE", f"{T}/members/user/alice%0A", 422, "path"),
    case("nul-in-query-value", "GET", f"{S}/applications/{{app}}/log", 422, "from", query={"from": "1\x00"}),
    case("nul-in-query-name", "GET", f"{S}/build/log", 422, "query", query={"si\x00ze": "1"}),
    case("nul-login-name", "POST", "/api/v1/login", 422, "username", json={"username": "alice\x00", "password": "x"}),
    case("escape-login-name", "POST", "/api/v1/login", 422, "username", json={"username": "\x1balice", "password": "x"}),
    case("format-char-login-name", "POST", "/api/v1/login", 422, "username",
         json={"username": "ali\u200bce", "password": "x"}),
    case("nul-token-name", "POST", "/api/v1/tokens", 422, "name", json={"name": "ci\x00"}),
    # -- routing -------------------------------------------------------------------------------
    case("unknown-route", "GET", "/api/v1/nothing", 404),
    case("sig-patch", "PATCH", S, 405, json=sig_body()),
    case("tenants-put", "PUT", "/api/v1/tenants", 405, json={"name": "acme"}),
]


@pytest.fixture
def app_id(client: FlaskClient, sig: str) -> str:
    """An uploaded files/job.py and one application on acme/s1, so only the broken part is wrong."""
    upload = client.post(f"{S}/files", data={"file": (io.BytesIO(b"print(1)\n"), "job.py")},
                         content_type="multipart/form-data")
    assert upload.status_code == 201, upload.get_json()
    submitted = client.post(f"{S}/applications", json=APP)
    assert submitted.status_code == 201, submitted.get_json()
    return str(submitted.get_json()["id"])


def send(client: FlaskClient, c: Case, app_id: str) -> TestResponse:
    kw: dict[str, Any] = {"method": c.method, "query_string": c.query}
    if c.upload is not None or c.form:
        data: dict[str, Any] = dict(c.form)
        if c.upload is not None:
            name, size = c.upload
            data["file"] = (io.BytesIO(b"x" * size), name)
        kw.update(data=data, content_type="multipart/form-data")
    elif c.raw is not None:
        kw.update(data=c.raw, content_type=c.content_type)
    elif c.json is not None:
        kw["json"] = c.json
    return client.open(c.path.format(app=app_id), **kw)


@pytest.mark.parametrize("c", TABLE)
def test_bad_request_gets_a_4xx_json_error(client: FlaskClient, app_id: str, c: Case) -> None:
    resp = send(client, c, app_id)
    assert resp.status_code == c.status, resp.get_json()
    assert resp.is_json
    error = error_of(resp.get_json())
    if c.field is not None:
        assert error.get("field") == c.field, error
    for text in c.says:
        assert text in error["message"], error


def test_no_request_in_the_table_is_a_server_error(client: FlaskClient, app_id: str) -> None:
    seen = []
    for param in TABLE:
        c: Case = param.values[0]
        resp = send(client, c, app_id)
        seen.append((param.id, resp.status_code))
        assert resp.status_code < 500, (param.id, resp.get_json())
        assert resp.is_json and isinstance(resp.get_json(), dict), param.id
    assert len(seen) == len(TABLE)
    # The rejected requests above created nothing.
    tenants = [t["name"] for t in client.get("/api/v1/tenants").get_json()["tenants"]]
    assert tenants == ["acme"]
    assert [s["name"] for s in client.get(f"{T}/sigs").get_json()["sigs"]] == ["s1"]
    assert [a["id"] for a in client.get(f"{S}/applications").get_json()["applications"]] == [app_id]


def test_unknown_route_and_wrong_method_are_json(client: FlaskClient, tenant: str) -> None:
    missing = client.get("/api/v1/nothing")
    assert missing.status_code == 404 and error_of(missing.get_json())["code"] == "NotFound"
    wrong = client.open(f"{T}/sigs/s1", method="PATCH", json={})
    assert wrong.status_code == 405 and error_of(wrong.get_json())["code"] == "MethodNotAllowed"


def test_wrong_method_names_the_allowed_methods(client: FlaskClient, sig: str) -> None:
    resp = client.open(S, method="PATCH", json={})
    assert resp.status_code == 405
    assert {"GET", "PUT", "DELETE"} <= {m.strip() for m in resp.headers.get("Allow", "").split(",")}


def test_deeply_nested_json_is_a_400_not_a_500(client: FlaskClient) -> None:
    resp = client.post("/api/v1/tenants", data="[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert resp.status_code == 400
    assert error_of(resp.get_json())["field"] == "body"


# One key per forbidden family of `spaas.sparkconf`: through the API, the 422 names the key, on a SIG
# (`spark_conf`) and on an application (`conf`).
FORBIDDEN_FAMILIES = [
    ("master", "spark.master"),
    ("rest-server", "spark.master.rest.enabled"),
    ("authenticate", "spark.authenticate.secret"),
    ("network-crypto", "spark.network.crypto.enabled"),
    ("submit", "spark.submit.deployMode"),
    ("ui-filters", "spark.ui.filters"),
    ("ui-proxy", "spark.ui.reverseProxy"),
    ("acls", "spark.acls.enable"),
    ("history", "spark.history.fs.logDirectory"),
    ("kerberos", "spark.kerberos.principal"),
    ("yarn", "spark.yarn.queue"),
    ("kubernetes", "spark.kubernetes.namespace"),
    ("deploy", "spark.deploy.recoveryMode"),
    ("worker", "spark.worker.cleanup.enabled"),
    ("ssl", "spark.ssl.enabled"),
    ("redaction", "spark.redaction.regex"),
    ("plugins", "spark.plugins"),
    ("listeners", "spark.extraListeners"),
    ("classpath", "spark.driver.extraClassPath"),
    ("ports-and-hosts", "spark.driver.host"),
    ("local-dir", "spark.local.dir"),
    ("python", "spark.pyspark.python"),
    ("jar-repos", "spark.jars.repositories"),
    ("class-key", "spark.serializer.class"),
    ("proxy-user", "spark.foo.proxyUser"),
    ("java-agent", "spark.executor.extraJavaOptions"),
    ("not-spark", "hadoop.security.authentication"),
]


@pytest.mark.parametrize(("family", "key"), FORBIDDEN_FAMILIES, ids=[f for f, _ in FORBIDDEN_FAMILIES])
def test_each_forbidden_conf_family_is_named_in_the_422(client: FlaskClient, app_id: str, family: str,
                                                         key: str) -> None:
    value = "-javaagent:/tmp/a.jar" if key.endswith("JavaOptions") else "x"
    for path, body, field in ((f"{T}/sigs", sig_with(spark_conf={key: value}), "spark_conf"),
                              (f"{S}/applications", {**APP, "conf": {key: value}}, "conf")):
        resp = client.post(path, json=body)
        assert resp.status_code == 422, (family, resp.get_json())
        error = error_of(resp.get_json())
        assert error["field"] == f"{field}.{key}" and key in error["message"], error


@pytest.mark.parametrize(("quota", "sig", "field", "says"), [
    ({"max_containers": 3}, {"scaling": {"min_workers": 3}}, "scaling.min_workers",
     ("needs 4 containers", "1 of 3")),
    ({"cores": 5}, {"resources": {"cpu": 2}, "scaling": {"min_workers": 1}}, "resources.cpu", ("needs 4 cores", "2 of 5")),
    ({"memory_mb": 5000}, {"scaling": {"min_workers": 1}}, "resources.memory_mb",
     ("needs 4096 memory_mb", "2048 of 5000")),
])
def test_quota_refusals_carry_the_numbers(client: FlaskClient, quota: dict[str, int], sig: dict[str, Any],
                                          field: str, says: tuple[str, ...]) -> None:
    assert client.post("/api/v1/tenants", json={"name": "small", "quota": quota}).status_code == 201
    first = client.post("/api/v1/tenants/small/sigs", json=sig_body("one", scaling={"min_workers": 0}))
    assert first.status_code == 202, first.get_json()
    resp = client.post("/api/v1/tenants/small/sigs", json=sig_body("two", **sig))
    assert resp.status_code == 422
    error = error_of(resp.get_json())
    assert error["field"] == field
    for text in says:
        assert text in error["message"], error
    # A change that would not fit is refused the same way.
    resp = client.put("/api/v1/tenants/small/sigs/one", json=sig_body("one", **{**sig, "scaling": {"min_workers": 5}}))
    assert resp.status_code == 422 and error_of(resp.get_json())["field"] == field


def test_tabs_and_newlines_in_json_values_are_accepted(client: FlaskClient, app_id: str) -> None:
    resp = client.post(f"{S}/applications", json={**APP, "args": ["line 1\nline 2", "a\tb\r\n"]})
    assert resp.status_code == 201, resp.get_json()
