"""The isolation matrix: every API route x every role x own / foreign tenant, one expected status
per cell. Principals are real LDAP users who log in through the API; their roles come from grants
to them or to their LDAP groups:

    cluster_admin   opsadmin  (group platform-ops is in SPAAS_CLUSTER_ADMIN_GROUPS)
    consumer_admin  alice     (group acme-admins -> consumer_admin in acme)
    sig_configure   erin      (user grant -> sig_configure in acme)
    user            bob       (posixGroup acme-devs -> user in acme); carol is in it too
    other_tenant    dave      (group beta-users -> user in beta)
    anonymous       no token

"own" is tenant acme, "foreign" is tenant beta (for dave it is the other way round, so his
"foreign" column is the view of a plain user in his own tenant). Each tenant has SIG s1 with two
applications: MINE (bob's in acme, dave's in beta) and THEIRS (carol's in acme, mallory's in beta).
Each cell gets a fresh world (its own etcd prefix), so mutating cells never affect each other.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from spaas.auth import Identity, Tokens, csrf_token
from spaas.keys import Keys
from spaas.store import Store

from tests.api.conftest import ADMIN_TOKEN, client_for, error_of, login, sig_body
from tests.ldap_fixture import Ldap

ROLES = ("cluster_admin", "consumer_admin", "sig_configure", "user", "other_tenant", "anonymous")
LOGIN = {"cluster_admin": "opsadmin", "consumer_admin": "alice", "sig_configure": "erin", "user": "bob",
         "other_tenant": "dave"}
# Who submitted each tenant's two applications, and that user's LDAP groups.
APP_OWNERS = {"acme": {"mine": ("bob", {"acme-devs"}), "theirs": ("carol", {"acme-devs"})},
              "beta": {"mine": ("dave", {"beta-users"}), "theirs": ("mallory", set())}}
S = "/api/v1/tenants/{t}/sigs/s1"
APP = {"file": "files/job.py"}


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # {t} tenant, {mine} / {theirs} application ids, {token} a token id
    body: Any = None
    upload: bool = False
    form: bool = False  # a console form: the body as form fields, with the caller's CSRF token


C = "/platform/t/{t}"
CS = C + "/sigs/s1"
OWN_READ, FOREIGN_READ = (200, 200, 200, 200, 404, 401), (200, 404, 404, 404, 200, 401)


# Statuses in ROLES order: own tenant (acme) | foreign tenant (beta).
TABLE: dict[str, tuple[Row, tuple[int, ...], tuple[int, ...]]] = {
    "healthz": (Row("GET", "/api/v1/healthz"), (200, 200, 200, 200, 200, 200), (200, 200, 200, 200, 200, 200)),
    "openapi": (Row("GET", "/api/v1/openapi.json"), (200,) * 6, (200,) * 6),
    "tenants-list": (Row("GET", "/api/v1/tenants"), (200, 200, 200, 200, 200, 401), (200, 200, 200, 200, 200, 401)),
    "tenant-create": (Row("POST", "/api/v1/tenants", {"name": "gamma"}),
                      (201, 403, 403, 403, 403, 401), (201, 403, 403, 403, 403, 401)),
    "tenant-read": (Row("GET", "/api/v1/tenants/{t}"), (200, 200, 200, 200, 404, 401), (200, 404, 404, 404, 200, 401)),
    "tenant-delete": (Row("DELETE", "/api/v1/tenants/{t}"),
                      (409, 403, 403, 403, 404, 401), (409, 404, 404, 404, 403, 401)),
    "tenant-quota": (Row("PUT", "/api/v1/tenants/{t}/quota", {"max_containers": 20}),
                     (200, 403, 403, 403, 404, 401), (200, 404, 404, 404, 403, 401)),
    "members-list": (Row("GET", "/api/v1/tenants/{t}/members"),
                     (200, 200, 403, 403, 404, 401), (200, 404, 404, 404, 403, 401)),
    "member-put": (Row("PUT", "/api/v1/tenants/{t}/members/user/zed", {"roles": ["user"]}),
                   (200, 200, 403, 403, 404, 401), (200, 404, 404, 404, 403, 401)),
    "member-delete": (Row("DELETE", "/api/v1/tenants/{t}/members/user/victim"),
                      (200, 200, 403, 403, 404, 401), (200, 404, 404, 404, 403, 401)),
    "integrations-list": (Row("GET", "/api/v1/tenants/{t}/integrations"),
                          (200, 200, 403, 403, 404, 401), (200, 404, 404, 404, 403, 401)),
    "integration-create": (Row("POST", "/api/v1/tenants/{t}/integrations", {"name": "pipe"}),
                           (201, 201, 403, 403, 404, 401), (201, 404, 404, 404, 403, 401)),
    "integration-read": (Row("GET", "/api/v1/tenants/{t}/integrations/ci"),
                         (200, 200, 403, 403, 404, 401), (200, 404, 404, 404, 403, 401)),
    "integration-delete": (Row("DELETE", "/api/v1/tenants/{t}/integrations/ci"),
                           (200, 200, 403, 403, 404, 401), (200, 404, 404, 404, 403, 401)),
    "sigs-list": (Row("GET", "/api/v1/tenants/{t}/sigs"), (200, 200, 200, 200, 404, 401), (200, 404, 404, 404, 200, 401)),
    "sig-create": (Row("POST", "/api/v1/tenants/{t}/sigs", sig_body("s2")),
                   (202, 202, 202, 403, 404, 401), (202, 404, 404, 404, 403, 401)),
    "sig-read": (Row("GET", S), (200, 200, 200, 200, 404, 401), (200, 404, 404, 404, 200, 401)),
    "sig-update": (Row("PUT", S, sig_body(spark_conf={"spark.executor.cores": "1"})),
                   (202, 202, 202, 403, 404, 401), (202, 404, 404, 404, 403, 401)),
    "sig-delete": (Row("DELETE", S), (202, 202, 202, 403, 404, 401), (202, 404, 404, 404, 403, 401)),
    "build-log": (Row("GET", S + "/build/log"), (200, 200, 200, 200, 404, 401), (200, 404, 404, 404, 200, 401)),
    "scaling": (Row("GET", S + "/scaling"), (200, 200, 200, 200, 404, 401), (200, 404, 404, 404, 200, 401)),
    "file-upload": (Row("POST", S + "/files", upload=True), (201, 201, 201, 201, 404, 401),
                    (201, 404, 404, 404, 201, 401)),
    "files-list": (Row("GET", S + "/files"), OWN_READ, FOREIGN_READ),
    "file-delete": (Row("DELETE", S + "/files/job.py"), OWN_READ, FOREIGN_READ),
    "app-submit": (Row("POST", S + "/applications", APP), (201, 201, 201, 201, 404, 401),
                   (201, 404, 404, 404, 201, 401)),
    "apps-list": (Row("GET", S + "/applications"), (200, 200, 200, 200, 404, 401), (200, 404, 404, 404, 200, 401)),
    "my-app-read": (Row("GET", S + "/applications/{mine}"), (200, 200, 403, 200, 404, 401),
                    (200, 404, 404, 404, 200, 401)),
    "my-app-log": (Row("GET", S + "/applications/{mine}/log"), (200, 200, 403, 200, 404, 401),
                   (200, 404, 404, 404, 200, 401)),
    "my-app-kill": (Row("DELETE", S + "/applications/{mine}"), (202, 202, 403, 202, 404, 401),
                    (202, 404, 404, 404, 202, 401)),
    "their-app-read": (Row("GET", S + "/applications/{theirs}"), (200, 200, 403, 403, 404, 401),
                       (200, 404, 404, 404, 403, 401)),
    "their-app-log": (Row("GET", S + "/applications/{theirs}/log"), (200, 200, 403, 403, 404, 401),
                      (200, 404, 404, 404, 403, 401)),
    "their-app-kill": (Row("DELETE", S + "/applications/{theirs}"), (202, 202, 403, 403, 404, 401),
                       (202, 404, 404, 404, 403, 401)),
    # Notebook servers: bob has one in each tenant (a demand record); others see and stop only their own.
    "notebooks-list": (Row("GET", S + "/notebooks"), (200, 200, 200, 200, 404, 401), (200, 404, 404, 404, 200, 401)),
    "bobs-notebook-stop": (Row("DELETE", S + "/notebooks/bob"), (200, 200, 403, 200, 404, 401),
                           (200, 404, 404, 404, 403, 401)),
    "livy-version": (Row("GET", S + "/livy/version"), (200, 200, 200, 200, 404, 401), (200, 404, 404, 404, 200, 401)),
    "livy-batch-create": (Row("POST", S + "/livy/batches", APP), (201, 201, 201, 201, 404, 401),
                          (201, 404, 404, 404, 201, 401)),
    "livy-batches-list": (Row("GET", S + "/livy/batches"), (200, 200, 200, 200, 404, 401),
                          (200, 404, 404, 404, 200, 401)),
    "livy-my-batch-read": (Row("GET", S + "/livy/batches/{mine}"), (200, 200, 403, 200, 404, 401),
                           (200, 404, 404, 404, 200, 401)),
    "livy-my-batch-state": (Row("GET", S + "/livy/batches/{mine}/state"), (200, 200, 403, 200, 404, 401),
                            (200, 404, 404, 404, 200, 401)),
    "livy-my-batch-log": (Row("GET", S + "/livy/batches/{mine}/log"), (200, 200, 403, 200, 404, 401),
                          (200, 404, 404, 404, 200, 401)),
    "livy-my-batch-delete": (Row("DELETE", S + "/livy/batches/{mine}"), (200, 200, 403, 200, 404, 401),
                             (200, 404, 404, 404, 200, 401)),
    "livy-their-batch-read": (Row("GET", S + "/livy/batches/{theirs}"), (200, 200, 403, 403, 404, 401),
                              (200, 404, 404, 404, 403, 401)),
    "livy-their-batch-delete": (Row("DELETE", S + "/livy/batches/{theirs}"), (200, 200, 403, 403, 404, 401),
                                (200, 404, 404, 404, 403, 401)),
    "livy-session-create": (Row("POST", S + "/livy/sessions", {"kind": "pyspark"}), (201, 201, 201, 201, 404, 401),
                            (201, 404, 404, 404, 201, 401)),
    "livy-sessions-list": (Row("GET", S + "/livy/sessions"), (200, 200, 200, 200, 404, 401),
                           (200, 404, 404, 404, 200, 401)),
    "livy-my-session-read": (Row("GET", S + "/livy/sessions/{ms}"), (200, 200, 403, 200, 404, 401),
                             (200, 404, 404, 404, 200, 401)),
    "livy-my-session-state": (Row("GET", S + "/livy/sessions/{ms}/state"), (200, 200, 403, 200, 404, 401),
                              (200, 404, 404, 404, 200, 401)),
    "livy-my-session-log": (Row("GET", S + "/livy/sessions/{ms}/log"), (200, 200, 403, 200, 404, 401),
                            (200, 404, 404, 404, 200, 401)),
    "livy-my-session-delete": (Row("DELETE", S + "/livy/sessions/{ms}"), (200, 200, 403, 200, 404, 401),
                               (200, 404, 404, 404, 200, 401)),
    "livy-my-statements-list": (Row("GET", S + "/livy/sessions/{ms}/statements"), (200, 200, 403, 200, 404, 401),
                                (200, 404, 404, 404, 200, 401)),
    "livy-my-statement-create": (Row("POST", S + "/livy/sessions/{ms}/statements", {"code": "1 + 1"}),
                                 (201, 201, 403, 201, 404, 401), (201, 404, 404, 404, 201, 401)),
    "livy-my-statement-read": (Row("GET", S + "/livy/sessions/{ms}/statements/0"), (200, 200, 403, 200, 404, 401),
                               (200, 404, 404, 404, 200, 401)),
    "livy-my-statement-cancel": (Row("POST", S + "/livy/sessions/{ms}/statements/0/cancel"),
                                 (200, 200, 403, 200, 404, 401), (200, 404, 404, 404, 200, 401)),
    "livy-their-session-read": (Row("GET", S + "/livy/sessions/{ts}"), (200, 200, 403, 403, 404, 401),
                                (200, 404, 404, 404, 403, 401)),
    "livy-their-statement-create": (Row("POST", S + "/livy/sessions/{ts}/statements", {"code": "1 + 1"}),
                                    (201, 201, 403, 403, 404, 401), (201, 404, 404, 404, 403, 401)),
    "livy-their-statement-cancel": (Row("POST", S + "/livy/sessions/{ts}/statements/0/cancel"),
                                    (200, 200, 403, 403, 404, 401), (200, 404, 404, 404, 403, 401)),
    "audit": (Row("GET", "/api/v1/audit"), (200, 403, 403, 403, 403, 401), (200, 403, 403, 403, 403, 401)),
    "tokens-list": (Row("GET", "/api/v1/tokens"), (200, 200, 200, 200, 200, 401), (200, 200, 200, 200, 200, 401)),
    "token-create": (Row("POST", "/api/v1/tokens", {"name": "ci"}), (201,) * 5 + (401,), (201,) * 5 + (401,)),
    "token-delete-unknown": (Row("DELETE", "/api/v1/tokens/0123456789abcdef"), (404,) * 5 + (401,),
                             (404,) * 5 + (401,)),
    "login-wrong-password": (Row("POST", "/api/v1/login", {"username": "alice", "password": "wrong"}),
                             (401,) * 6, (401,) * 6),
    "logout": (Row("DELETE", "/api/v1/login"), (200,) * 5 + (401,), (200,) * 5 + (401,)),
    # The console's pages: what the API answers the caller, as a page (303 after a change it accepted).
    "console-home": (Row("GET", "/platform/"), (200,) * 5 + (401,), (200,) * 5 + (401,)),
    "console-tenant-create": (Row("POST", "/platform/tenants", {"name": "gamma"}, form=True),
                              (303, 403, 403, 403, 403, 401), (303, 403, 403, 403, 403, 401)),
    "console-tenant": (Row("GET", C + "/"), OWN_READ, FOREIGN_READ),
    "console-tenant-delete": (Row("POST", C + "/delete", {}, form=True),
                              (409, 403, 403, 403, 404, 401), (409, 404, 404, 404, 403, 401)),
    "console-tenant-quota": (Row("POST", C + "/quota", {"max_containers": "20"}, form=True),
                             (303, 403, 403, 403, 404, 401), (303, 404, 404, 404, 403, 401)),
    "console-member-grant": (Row("POST", C + "/members", {"kind": "user", "name": "zed", "roles": "user"}, form=True),
                             (303, 303, 403, 403, 404, 401), (303, 404, 404, 404, 403, 401)),
    "console-member-remove": (Row("POST", C + "/members/user/victim/delete", {}, form=True),
                              (303, 303, 403, 403, 404, 401), (303, 404, 404, 404, 403, 401)),
    "console-sig-new": (Row("GET", C + "/sigs/new"), (200, 200, 200, 403, 404, 401), (200, 404, 404, 404, 403, 401)),
    "console-sig-create": (Row("POST", C + "/sigs/new", {"name": "s2", "spark_version": "3.5.9"}, form=True),
                           (303, 303, 303, 403, 404, 401), (303, 404, 404, 404, 403, 401)),
    "console-sig-edit": (Row("GET", CS + "/edit"), (200, 200, 200, 403, 404, 401), (200, 404, 404, 404, 403, 401)),
    "console-sig-change": (Row("POST", CS + "/edit", {"spark_version": "3.5.9", "conf_key": "spark.executor.cores",
                                                      "conf_value": "1"}, form=True),
                           (303, 303, 303, 403, 404, 401), (303, 404, 404, 404, 403, 401)),
    "console-sig-delete": (Row("POST", CS + "/delete", {}, form=True),
                           (303, 303, 303, 403, 404, 401), (303, 404, 404, 404, 403, 401)),
    "console-sig": (Row("GET", CS + "/"), OWN_READ, FOREIGN_READ),
    "console-sig-live": (Row("GET", CS + "/live"), OWN_READ, FOREIGN_READ),
    "console-apps": (Row("GET", CS + "/apps"), OWN_READ, FOREIGN_READ),
    "console-app-submit": (Row("POST", CS + "/apps", {"path": "files/job.py"}, form=True),
                           (303, 303, 303, 303, 404, 401), (303, 404, 404, 404, 303, 401)),
    "console-my-app": (Row("GET", CS + "/apps/{mine}"), (200, 200, 403, 200, 404, 401), FOREIGN_READ),
    "console-their-app": (Row("GET", CS + "/apps/{theirs}"), (200, 200, 403, 403, 404, 401),
                          (200, 404, 404, 404, 403, 401)),
    "console-my-app-live": (Row("GET", CS + "/apps/{mine}/live"), (200, 200, 403, 200, 404, 401), FOREIGN_READ),
    "console-my-app-kill": (Row("POST", CS + "/apps/{mine}/kill", {}, form=True), (303, 303, 403, 303, 404, 401),
                            (303, 404, 404, 404, 303, 401)),
    "console-their-app-kill": (Row("POST", CS + "/apps/{theirs}/kill", {}, form=True),
                               (303, 303, 403, 403, 404, 401), (303, 404, 404, 404, 403, 401)),
    # The SIG page's notebook servers table and its Stop button (bob has a server in each tenant).
    "console-notebooks": (Row("GET", CS + "/notebooks"), OWN_READ, FOREIGN_READ),
    "console-bobs-notebook-stop": (Row("POST", CS + "/notebooks/bob/stop", {}, form=True),
                                   (303, 303, 403, 303, 404, 401), (303, 404, 404, 404, 403, 401)),
    "console-tokens": (Row("GET", "/platform/tokens"), (200,) * 5 + (401,), (200,) * 5 + (401,)),
    "console-token-create": (Row("POST", "/platform/tokens", {"name": "ci"}, form=True), (200,) * 5 + (401,),
                             (200,) * 5 + (401,)),
    "console-token-revoke-unknown": (Row("POST", "/platform/tokens/0123456789abcdef/delete", {}, form=True),
                                     (404,) * 5 + (401,), (404,) * 5 + (401,)),
}
CELLS = [pytest.param(name, role, tenant, id=f"{name}-{role}-{'own' if tenant == 'acme' else 'foreign'}")
         for name in TABLE for role in ROLES for tenant in ("acme", "beta")]


def build_world(admin: FlaskClient, store: Store, keys: Keys) -> dict[str, dict[str, str]]:
    """Tenants acme and beta, each with SIG s1, grants as in the module docstring, and two applications."""
    grants = {"acme": [("group", "acme-admins", ["consumer_admin"]), ("user", "erin", ["sig_configure"]),
                       ("group", "acme-devs", ["user"]), ("user", "victim", ["user"])],
              "beta": [("group", "beta-users", ["user"]), ("user", "mallory", ["user"]), ("user", "victim", ["user"])]}
    tokens = Tokens(store, keys)
    apps: dict[str, dict[str, str]] = {}
    for tenant, tenant_grants in grants.items():
        assert admin.post("/api/v1/tenants", json={"name": tenant}).status_code == 201
        for kind, name, roles in tenant_grants:
            assert admin.put(f"/api/v1/tenants/{tenant}/members/{kind}/{name}", json={"roles": roles}).status_code == 200
        assert admin.post(f"/api/v1/tenants/{tenant}/integrations", json={"name": "ci"}).status_code == 201
        sig = S.format(t=tenant)
        assert admin.post(f"/api/v1/tenants/{tenant}/sigs", json=sig_body()).status_code == 202
        assert admin.post(f"{sig}/files", data={"file": (io.BytesIO(b"print(1)\n"), "job.py")},
                          content_type="multipart/form-data").status_code == 201
        apps[tenant] = {}
        for which, (user, groups) in APP_OWNERS[tenant].items():
            # The submitters' tokens are minted directly (their logins are tested elsewhere).
            token = tokens.issue(Identity(user, frozenset(groups)), kind="session", ttl_s=600).token
            resp = admin.post(f"{sig}/applications", json=APP, headers={"Authorization": f"Bearer {token}"})
            assert resp.status_code == 201, resp.get_json()
            apps[tenant][which] = resp.get_json()["id"]
            # And a Livy session with one statement (no Spark runs here: it stays not_started).
            resp = admin.post(f"{sig}/livy/sessions", json={"kind": "pyspark"}, headers={"Authorization": f"Bearer {token}"})
            assert resp.status_code == 201, resp.get_json()
            session = resp.get_json()["id"]
            apps[tenant][which + "_session"] = session
            resp = admin.post(f"{sig}/livy/sessions/{session}/statements", json={"code": "1"},
                              headers={"Authorization": f"Bearer {token}"})
            assert resp.status_code == 201, resp.get_json()
        store.put(keys.notebook(tenant, "s1", "bob"), {"requested_at": 1.0, "last_activity": 2.0})
    return apps


@pytest.mark.parametrize(("name", "role", "tenant"), CELLS)
def test_cell(app: Flask, client: FlaskClient, anon: FlaskClient, store: Store, keys: Keys, ldap_server: Ldap,
              name: str, role: str, tenant: str) -> None:
    row, own, foreign = TABLE[name]
    expected = (own if tenant == "acme" else foreign)[ROLES.index(role)]
    apps = build_world(client, store, keys)
    token = ""
    if role == "anonymous":
        caller = anon
    else:
        user = LOGIN[role]
        token = login(app, user, ldap_server.passwords[user])
        caller = client_for(app, token)
    path = row.path.format(t=tenant, mine=apps[tenant]["mine"], theirs=apps[tenant]["theirs"],
                           ms=apps[tenant]["mine_session"], ts=apps[tenant]["theirs_session"])
    kw: dict[str, Any] = {"method": row.method}
    if row.upload:
        kw.update(data={"file": (io.BytesIO(b"print(2)\n"), "other.py")}, content_type="multipart/form-data")
    elif row.form:
        kw["data"] = dict(row.body, csrf_token=csrf_token(token))
    elif row.body is not None:
        kw["json"] = row.body
    resp = caller.open(path, **kw)
    assert resp.status_code == expected, (name, role, tenant, resp.get_json() or resp.get_data(as_text=True)[-800:])
    if row.path.startswith("/platform"):
        return  # pages: the status is the contract; the API's message is on the page
    body = resp.get_json()
    if expected >= 400 and "/livy/" in row.path:
        # Livy's error body, with the platform's error object next to it.
        assert body["msg"] == body["error"]["message"], body
        body = {"error": body["error"]}
    if expected >= 400:
        error_of(body)
    if expected == 404 and "{t}" in row.path:
        # An outsider's 404 is word for word the one of a tenant that does not exist.
        assert error_of(body) == {"code": "NotFound", "message": f"tenant {tenant!r} not found", "field": "tenant"}


def test_the_matrix_covers_every_route(app: Flask) -> None:
    """Every Flask route (method + rule) has a row in the table."""
    covered = set()
    for row, _, _ in TABLE.values():
        covered.add((row.method, row.path))
    rules = {(m, r.rule) for r in app.url_map.iter_rules() for m in r.methods - {"HEAD", "OPTIONS"}}
    normalized = {(m, p.replace("{t}", "<tenant>").replace("s1", "<sig>").replace("{mine}", "<app_id>")
                   .replace("{theirs}", "<app_id>").replace("/user/zed", "/<any(user, group):kind>/<name>")
                   .replace("/user/victim", "/<any(user, group):kind>/<name>")
                   .replace("/0123456789abcdef", "/<token_id>").replace("{ms}", "<app_id>").replace("{ts}", "<app_id>")
                   .replace("/statements/0", "/statements/<stmt>").replace("/files/job.py", "/files/<name>")
                   .replace("/integrations/ci", "/integrations/<name>").replace("/notebooks/bob", "/notebooks/<user>"))
                  for m, p in covered}
    normalized |= {(m, p.replace("/platform/t/acme", "/platform/t/<tenant>")) for m, p in normalized}
    missing = {(m, r) for m, r in rules if (m, r) not in normalized and r not in ("/metrics",)}
    assert not missing, missing


def test_tenant_list_shows_only_the_callers_tenants(app: Flask, client: FlaskClient, store: Store, keys: Keys,
                                                    ldap_server: Ldap) -> None:
    build_world(client, store, keys)
    seen = {}
    for role, user in LOGIN.items():
        c = client_for(app, login(app, user, ldap_server.passwords[user]))
        seen[role] = sorted(t["name"] for t in c.get("/api/v1/tenants").get_json()["tenants"])
    assert seen == {"cluster_admin": ["acme", "beta"], "consumer_admin": ["acme"], "sig_configure": ["acme"],
                    "user": ["acme"], "other_tenant": ["beta"]}


def test_users_list_only_their_own_applications(app: Flask, client: FlaskClient, store: Store, keys: Keys,
                                                ldap_server: Ldap) -> None:
    apps = build_world(client, store, keys)
    listing = {}
    for role in ("consumer_admin", "sig_configure", "user"):
        user = LOGIN[role]
        c = client_for(app, login(app, user, ldap_server.passwords[user]))
        listing[role] = sorted(a["id"] for a in c.get(S.format(t="acme") + "/applications").get_json()["applications"])
    assert listing == {"consumer_admin": sorted(apps["acme"].values()), "sig_configure": [],
                       "user": sorted([apps["acme"]["mine"], apps["acme"]["mine_session"]])}


def test_users_list_only_their_own_notebook_servers(app: Flask, client: FlaskClient, store: Store, keys: Keys,
                                                   ldap_server: Ldap) -> None:
    build_world(client, store, keys)
    store.put(keys.notebook("acme", "s1", "carol"), {"requested_at": 1.0})
    listing = {}
    for role in ("consumer_admin", "sig_configure", "user"):
        user = LOGIN[role]
        c = client_for(app, login(app, user, ldap_server.passwords[user]))
        body = c.get(S.format(t="acme") + "/notebooks").get_json()
        assert "token" not in str(body)
        listing[role] = [s["user"] for s in body["notebooks"]]
    assert listing == {"consumer_admin": ["bob", "carol"], "sig_configure": [], "user": ["bob"]}
    c = client_for(app, login(app, "bob", ldap_server.passwords["bob"]))
    assert c.delete(S.format(t="acme") + "/notebooks/carol").status_code == 403
    assert c.delete(S.format(t="acme") + "/notebooks/nobody").status_code == 404
    stopped = c.delete(S.format(t="acme") + "/notebooks/Bob")
    assert stopped.status_code == 200 and stopped.get_json()["state"] == "stopping"
    assert store.get(keys.notebook("acme", "s1", "bob")) is None  # the scaler stops it on its next pass
    assert store.get(keys.notebook("acme", "s1", "carol")) is not None


def test_admin_token_still_is_cluster_admin(client: FlaskClient, store: Store, keys: Keys) -> None:
    build_world(client, store, keys)
    assert client.get("/api/v1/audit").status_code == 200
    assert client.get(S.format(t="beta") + "/applications").status_code == 200
    assert ADMIN_TOKEN
