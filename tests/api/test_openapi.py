"""The OpenAPI document: served publicly, complete (every Flask route and method is documented
and names its permission-table action), and honoured by the API: a derandomized schemathesis run
with a fixed example budget per operation finds no 5xx and no response that breaks the spec."""

from __future__ import annotations

import io
import re

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from spaas import authz

from services.api.openapi import document
from tests.api.conftest import ADMIN_TOKEN, sig_body

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
MAX_EXAMPLES = 30


def flask_rule_to_openapi(rule: str) -> str:
    rule = re.sub(r"<any\([^)]*\):(\w+)>", r"{\1}", rule)
    rule = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)
    return rule.replace("{app_id}", "{id}").replace("{token_id}", "{id}")


def test_spec_is_public_and_openapi_3(anon: FlaskClient) -> None:
    resp = anon.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    spec = resp.get_json()
    assert spec["openapi"].startswith("3.") and spec["paths"]
    assert spec["components"]["schemas"]["Error"]["properties"]["error"]["required"] == ["code", "message"]


def test_every_route_is_documented_with_its_action(app: Flask) -> None:
    spec = document()
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    # The console's HTML pages (/platform) are not part of the REST contract, but have actions too.
    routes = {(m, flask_rule_to_openapi(r.rule)) for r in app.url_map.iter_rules()
              for m in r.methods - {"HEAD", "OPTIONS"} if not r.rule.startswith("/platform")}
    assert routes == documented
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        action = getattr(view, "_spaas_action", None)
        assert action in authz.PERMISSIONS, rule.rule
        for m in rule.methods - {"HEAD", "OPTIONS"} if not rule.rule.startswith("/platform") else ():
            assert spec["paths"][flask_rule_to_openapi(rule.rule)][m.lower()]["x-spaas-action"] == action
    # Every action of the table is reachable by some route.
    assert {app.view_functions[r.endpoint]._spaas_action for r in app.url_map.iter_rules()} \
        == set(authz.PERMISSIONS)


@pytest.fixture
def api_schema(app: Flask, client: FlaskClient) -> schemathesis.BaseSchema:
    """The in-process app with tenant acme, SIG s1, files/job.py and one application, so the spec's
    examples (acme, s1) reach real resources and not only 404s."""
    assert client.post("/api/v1/tenants", json={"name": "acme"}).status_code == 201
    assert client.post("/api/v1/tenants/acme/sigs", json=sig_body()).status_code == 202
    assert client.post("/api/v1/tenants/acme/sigs/s1/files", data={"file": (io.BytesIO(b"print(1)\n"), "job.py")},
                       content_type="multipart/form-data").status_code == 201
    assert client.post("/api/v1/tenants/acme/sigs/s1/applications", json={"file": "files/job.py"}).status_code == 201
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck),
          database=None)
def test_api_honours_its_spec(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, checks=CHECKS)
