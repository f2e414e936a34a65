"""`spaas.client`: the typed Python client of the spaas REST API (`/api/v1`).

    from spaas.client import Client, ApiError
    c = Client("http://127.0.0.1:8080", user="alice", password="...")   # or token="..."
    c.create_sig("acme", {"name": "s1", "spark_version": "3.5.9"})
    c.wait_ready("acme", "s1", timeout=600)
    path = c.upload_file("acme", "s1", "job.py")["path"]
    app = c.submit_app("acme", "s1", {"file": path, "args": ["10"]})
    for line in c.follow_app_log("acme", "s1", app["id"]):
        print(line)
    print(c.wait_finished("acme", "s1", app["id"], timeout=600)["state"])

Every call is one HTTP request over one `requests.Session` (or the `session` a caller passes: its
adapters are the transport, e.g. the console's in-process WSGI adapter); an error answer raises `ApiError`
with the API's `{"error": {"code", "message", "field"}}`. Only reads are retried (on connection
errors and 503); a submit, create or delete is sent once. Specs are sent as given (a dict or one of
`spaas.model`'s models): the API validates them, so the rules live in one place. The tokens the
client holds are never part of its `repr` or of an error message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypedDict, cast
from urllib.parse import quote

import requests

if TYPE_CHECKING:
    from pydantic import BaseModel

READ_RETRIES = 3


class ApiError(Exception):
    """An error answer of the API (or no answer: status 0, code `ConnectionError`)."""

    def __init__(self, status: int, code: str, field: str | None, message: str) -> None:
        super().__init__(f"{status} {code}" + (f" ({field})" if field else "") + f": {message}")
        self.status, self.code, self.field, self.message = status, code, field, message


class SigFailed(Exception):
    """`wait_ready` saw the SIG go to FAILED; `view` is what the API said."""

    def __init__(self, view: SigView) -> None:
        status = view["status"]
        super().__init__(f"SIG {view['tenant']}/{view['name']} FAILED ({status.get('reason')}): {status.get('message')}")
        self.view = view


# What the API returns (services/api/records.py and routes/*); total=False where fields depend on state.
class Quota(TypedDict):
    max_containers: int
    cores: int
    memory_mb: int
    gpus: int


class TenantView(TypedDict, total=False):
    name: str
    quota: Quota | None
    created_at: float | None
    usage: dict[str, int]
    invalid: str


class SigStatus(TypedDict, total=False):
    phase: str
    reason: str | None
    message: str | None
    generation: int
    observed_generation: int
    build_key: str | None
    build: dict[str, Any]
    workers: dict[str, int]
    master_url: str | None
    ui_url: str | None
    since: float | None
    invalid_records: list[str]
    history: dict[str, Any]
    notebooks: dict[str, Any]
    usage: dict[str, Any]


class SigView(TypedDict):
    tenant: str
    name: str
    spec: dict[str, Any] | None
    generation: int
    created_at: float | None
    updated_at: float | None
    status: SigStatus


class AppView(TypedDict, total=False):
    id: str
    name: str | None
    state: str
    reason: str | None
    message: str | None
    exit_code: int | None
    spark_app_id: str | None
    ui_url: str | None
    history_url: str | None
    submitter: str | None
    submitted_at: float | None
    started_at: float | None
    finished_at: float | None
    kill_requested: bool
    request: dict[str, Any] | None


class LogPage(TypedDict, total=False):
    id: str
    generation: int
    key: str | None
    state: str | None
    total: int
    log: list[str]
    truncated: bool
    key_log: list[str]


class Member(TypedDict):
    kind: str
    name: str
    roles: list[str]


class Token(TypedDict, total=False):
    id: str
    name: str
    token: str  # only in the answer that creates it
    created_at: float
    expires_at: float


class UploadedFile(TypedDict):
    path: str
    size: int


class StoredFile(TypedDict):
    path: str
    size: int
    modified_at: float


class ScalingView(TypedDict):
    policy: dict[str, Any]
    workers: dict[str, int]
    phase: str
    reason: str | None
    message: str | None
    demand: dict[str, Any] | None
    decisions: list[dict[str, Any]]


class NotebookServer(TypedDict, total=False):
    user: str
    state: str  # requested, waiting, quota, starting, ready, stopping
    container: str
    url: str
    requested_at: float | None
    last_activity: float | None


def _body(spec: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    # Duck-typed: pydantic (and spaas.model) load only when a caller passes a model (a fast CLI start).
    dump = getattr(spec, "model_dump", None)
    return dict(dump(mode="json", exclude_unset=True)) if dump is not None else dict(spec)


def _q(part: str) -> str:
    return quote(part, safe="")


class Client:
    """One user's session with the API at `base_url` (the API itself or the proxy in front of it)."""

    def __init__(self, base_url: str, token: str | None = None, *, user: str | None = None,
                 password: str | None = None, timeout: float = 30.0, verify: bool | str = True,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 session: requests.Session | None = None, read_retries: int = READ_RETRIES) -> None:
        self.base_url = base_url.rstrip("/")
        self.api = self.base_url + "/api/v1"
        self.timeout = timeout
        # The transport: a caller may pass its own session, e.g. one whose adapter serves the requests
        # from a WSGI app in-process (services/api/console/api.py), instead of over HTTP.
        self.http = session if session is not None else requests.Session()
        if session is None:
            self.http.verify = verify
        self.read_retries = max(1, read_retries)
        self.http.headers["Accept"] = "application/json"
        self._sleep, self._clock = sleep, clock
        self._token: str | None = None
        if token:
            self.token = token
        elif user is not None and password is not None:
            self.login(user, password)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, token={'***' if self._token else None})"

    @property
    def token(self) -> str | None:
        return self._token

    @token.setter
    def token(self, value: str | None) -> None:
        self._token = value
        if value:
            self.http.headers["Authorization"] = f"Bearer {value}"
        else:
            self.http.headers.pop("Authorization", None)

    # -- transport -------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json_body: Any = None, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, files: Any = None, stream: bool = False,
                timeout: float | tuple[float, float] | None = None) -> requests.Response:
        """One call; raises `ApiError` unless the answer is 2xx. GETs are retried on connection errors and 503."""
        attempts = self.read_retries if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                resp = self.http.request(method, self.api + path, json=json_body, params=params, headers=headers,
                                         files=files, stream=stream, timeout=timeout or self.timeout)
            except requests.RequestException as exc:
                if attempt < attempts:
                    self._sleep(0.5 * attempt)
                    continue
                raise ApiError(0, "ConnectionError", None, f"{method} {self.api}{path}: {type(exc).__name__}") from None
            if resp.status_code == 503 and attempt < attempts:
                after = resp.headers.get("Retry-After", "")
                self._sleep(min(float(after) if after.isdigit() else 1.0, 5.0))
                continue
            if resp.status_code >= 400:
                raise self._error(resp)
            return resp
        raise AssertionError("unreachable")

    @staticmethod
    def _error(resp: requests.Response) -> ApiError:
        try:
            error = resp.json().get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        if not isinstance(error, dict):
            error = {}
        return ApiError(resp.status_code, str(error.get("code") or resp.reason or "HTTPError"), error.get("field"),
                        str(error.get("message") or resp.text[:200] or resp.reason))

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # -- login and tokens ------------------------------------------------------------------------

    def login(self, user: str, password: str) -> str:
        """Log in with an LDAP user name and password; the session token is used from now on and returned."""
        body = self._json("POST", "/login", json_body={"username": user, "password": password})
        self.token = str(body["token"])
        return self.token

    def logout(self) -> None:
        """Revoke the session token (and the API tokens minted with it)."""
        self._json("DELETE", "/login")
        self.token = None

    def create_token(self, name: str, *, expires_in_s: int | None = None) -> Token:
        """A personal API token for scripts; its secret is in this answer only."""
        body: dict[str, Any] = {"name": name}
        if expires_in_s is not None:
            body["expires_in_s"] = expires_in_s
        return cast(Token, self._json("POST", "/tokens", json_body=body))

    def list_tokens(self) -> list[Token]:
        return cast(list[Token], self._json("GET", "/tokens")["tokens"])

    def delete_token(self, token_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("DELETE", f"/tokens/{_q(token_id)}"))

    def healthz(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("GET", "/healthz"))

    # -- tenants ---------------------------------------------------------------------------------

    def list_tenants(self) -> list[TenantView]:
        return cast(list[TenantView], self._json("GET", "/tenants")["tenants"])

    def get_tenant(self, tenant: str) -> TenantView:
        return cast(TenantView, self._json("GET", f"/tenants/{_q(tenant)}"))

    def create_tenant(self, name: str, quota: Mapping[str, Any] | BaseModel | None = None) -> TenantView:
        body: dict[str, Any] = {"name": name}
        if quota is not None:
            body["quota"] = _body(quota)
        return cast(TenantView, self._json("POST", "/tenants", json_body=body))

    def set_quota(self, tenant: str, quota: Mapping[str, Any] | BaseModel) -> TenantView:
        return cast(TenantView, self._json("PUT", f"/tenants/{_q(tenant)}/quota", json_body=_body(quota)))

    def delete_tenant(self, tenant: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("DELETE", f"/tenants/{_q(tenant)}"))

    # -- members ---------------------------------------------------------------------------------

    def list_members(self, tenant: str) -> list[Member]:
        return cast(list[Member], self._json("GET", f"/tenants/{_q(tenant)}/members")["members"])

    def put_member(self, tenant: str, name: str, roles: list[str], *, kind: str = "user") -> Member:
        """Grant `roles` (replacing earlier ones) to a user or an LDAP group (`kind="group"`)."""
        return cast(Member, self._json("PUT", f"/tenants/{_q(tenant)}/members/{_q(kind)}/{_q(name)}",
                                       json_body={"roles": list(roles)}))

    def delete_member(self, tenant: str, name: str, *, kind: str = "user") -> dict[str, Any]:
        return cast(dict[str, Any], self._json("DELETE", f"/tenants/{_q(tenant)}/members/{_q(kind)}/{_q(name)}"))

    # -- SIGs ------------------------------------------------------------------------------------

    def _sig(self, tenant: str, sig: str) -> str:
        return f"/tenants/{_q(tenant)}/sigs/{_q(sig)}"

    def list_sigs(self, tenant: str) -> list[SigView]:
        return cast(list[SigView], self._json("GET", f"/tenants/{_q(tenant)}/sigs")["sigs"])

    def get_sig(self, tenant: str, sig: str) -> SigView:
        return cast(SigView, self._json("GET", self._sig(tenant, sig)))

    def create_sig(self, tenant: str, spec: Mapping[str, Any] | BaseModel) -> SigView:
        """Create a SIG from its spec (`spaas.model.SigSpec`'s fields); it then builds and deploys by itself."""
        return cast(SigView, self._json("POST", f"/tenants/{_q(tenant)}/sigs", json_body=_body(spec)))

    def update_sig(self, tenant: str, sig: str, spec: Mapping[str, Any] | BaseModel) -> SigView:
        """Replace the SIG's spec. The API applies it with compare-and-swap; a changed spec gets the next
        `generation` (and is rebuilt and rolled out), an unchanged one keeps its generation."""
        return cast(SigView, self._json("PUT", self._sig(tenant, sig), json_body=_body(spec)))

    def delete_sig(self, tenant: str, sig: str) -> SigView:
        return cast(SigView, self._json("DELETE", self._sig(tenant, sig)))

    def scaling(self, tenant: str, sig: str, *, limit: int = 50) -> ScalingView:
        """The SIG's scaling policy, workers, latest demand and its last `limit` decisions (with reasons)."""
        return cast(ScalingView, self._json("GET", self._sig(tenant, sig) + "/scaling", params={"limit": limit}))

    def livy_url(self, tenant: str, sig: str) -> str:
        """The SIG's Livy-compatible endpoint (for livy/sparkmagic clients; authenticate with a token)."""
        return f"{self.api}{self._sig(tenant, sig)}/livy"

    # -- builds ----------------------------------------------------------------------------------

    def build_status(self, tenant: str, sig: str) -> dict[str, Any]:
        """The build of the SIG's current generation: key, state, cache_hit, joined, times, message."""
        return dict(self.get_sig(tenant, sig)["status"].get("build") or {})

    def build_log(self, tenant: str, sig: str, *, generation: int | None = None, start: int = 0,
                  size: int = 1000) -> LogPage:
        params: dict[str, Any] = {"from": start, "size": size}
        if generation is not None:
            params["generation"] = generation
        return cast(LogPage, self._json("GET", self._sig(tenant, sig) + "/build/log", params=params))

    def follow_build_log(self, tenant: str, sig: str, *, generation: int | None = None, start: int = 0,
                         timeout: float | None = None) -> Iterator[str]:
        """The build log's lines as they are written, until the build is over (or `timeout` seconds)."""
        params: dict[str, Any] = {} if generation is None else {"generation": generation}
        return self._follow(self._sig(tenant, sig) + "/build/log", params, start, timeout)

    # -- files -----------------------------------------------------------------------------------

    def upload_file(self, tenant: str, sig: str, file: str | Path | IO[bytes], *, name: str | None = None) -> UploadedFile:
        """Store a file in the SIG's storage; `path` in the answer (`files/<name>`) is what applications name."""
        if isinstance(file, (str, Path)):
            with open(file, "rb") as fh:
                data = fh.read()
            name = name or Path(file).name
        else:
            data = file.read()
            name = name or Path(getattr(file, "name", "file")).name
        return cast(UploadedFile, self._json("POST", self._sig(tenant, sig) + "/files", files={"file": (name, data)}))

    def list_files(self, tenant: str, sig: str) -> list[StoredFile]:
        return cast(list[StoredFile], self._json("GET", self._sig(tenant, sig) + "/files")["files"])

    def delete_file(self, tenant: str, sig: str, name: str) -> dict[str, Any]:
        """Delete `files/<name>` (the `files/` prefix may be given)."""
        name = name.removeprefix("files/")
        return cast(dict[str, Any], self._json("DELETE", self._sig(tenant, sig) + f"/files/{_q(name)}"))

    # -- notebook servers --------------------------------------------------------------------------

    def list_notebooks(self, tenant: str, sig: str) -> list[NotebookServer]:
        """The SIG's per-user Jupyter servers: all of them for tenant and cluster admins, else the caller's own."""
        return cast(list[NotebookServer], self._json("GET", self._sig(tenant, sig) + "/notebooks")["notebooks"])

    def stop_notebook(self, tenant: str, sig: str, user: str) -> NotebookServer:
        """Stop a user's Jupyter server (the caller's own, or anyone's for admins); the next visit starts a new one."""
        return cast(NotebookServer, self._json("DELETE", self._sig(tenant, sig) + f"/notebooks/{_q(user)}"))

    # -- applications ----------------------------------------------------------------------------

    def _app(self, tenant: str, sig: str, app_id: str = "") -> str:
        return self._sig(tenant, sig) + "/applications" + (f"/{_q(app_id)}" if app_id else "")

    def submit_app(self, tenant: str, sig: str, request: Mapping[str, Any] | BaseModel, *,
                   idempotency_key: str | None = None) -> dict[str, Any]:
        """Submit a batch application (`spaas.model.Application`'s Livy-shaped fields); returns `{id, state}`.
        Sent once, never retried: pass `idempotency_key` (sent as `Idempotency-Key`) to make retries safe
        where the API honours it."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return cast(dict[str, Any], self._json("POST", self._app(tenant, sig), json_body=_body(request), headers=headers))

    def list_apps(self, tenant: str, sig: str) -> list[AppView]:
        return cast(list[AppView], self._json("GET", self._app(tenant, sig))["applications"])

    def get_app(self, tenant: str, sig: str, app_id: str) -> AppView:
        return cast(AppView, self._json("GET", self._app(tenant, sig, app_id)))

    def kill_app(self, tenant: str, sig: str, app_id: str) -> AppView:
        """Ask for the application to be killed (an already finished one is left as it is)."""
        return cast(AppView, self._json("DELETE", self._app(tenant, sig, app_id)))

    def app_log(self, tenant: str, sig: str, app_id: str, *, start: int = 0, size: int = 1000) -> LogPage:
        return cast(LogPage, self._json("GET", self._app(tenant, sig, app_id) + "/log",
                                        params={"from": start, "size": size}))

    def follow_app_log(self, tenant: str, sig: str, app_id: str, *, start: int = 0,
                       timeout: float | None = None) -> Iterator[str]:
        """The driver log's lines as they are written, until the application is over (or `timeout` seconds)."""
        return self._follow(self._app(tenant, sig, app_id) + "/log", {}, start, timeout)

    # -- waiting ---------------------------------------------------------------------------------

    def wait_ready(self, tenant: str, sig: str, timeout: float = 600.0, *, interval: float = 1.0,
                   on_poll: Callable[[SigView], None] | None = None) -> SigView:
        """Poll until the SIG is READY at its current generation. `SigFailed` if it fails, `TimeoutError`
        (naming the last phase) after `timeout` seconds; `on_poll` sees every view (for progress)."""
        from spaas.model import Phase

        deadline = self._clock() + timeout
        last = "unknown"
        while True:
            view = self.get_sig(tenant, sig)
            if on_poll is not None:
                on_poll(view)
            status = view["status"]
            last = f"{status.get('phase')} ({status.get('reason') or '-'}: {status.get('message') or '-'})"
            if status.get("phase") == Phase.FAILED.value:
                raise SigFailed(view)
            if status.get("phase") == Phase.READY.value and status.get("observed_generation", 0) >= view["generation"]:
                return view
            if self._clock() >= deadline:
                raise TimeoutError(f"SIG {tenant}/{sig} not READY after {timeout:.0f}s; last phase {last}")
            self._sleep(interval)

    def wait_finished(self, tenant: str, sig: str, app_id: str, timeout: float = 600.0, *, interval: float = 1.0,
                      on_poll: Callable[[AppView], None] | None = None) -> AppView:
        """Poll until the application is FINISHED, FAILED or KILLED and return its view; `TimeoutError`
        (naming the last state) after `timeout` seconds."""
        from spaas.model import AppState

        terminal = {s.value for s in AppState if s.terminal}
        deadline = self._clock() + timeout
        while True:
            view = self.get_app(tenant, sig, app_id)
            if on_poll is not None:
                on_poll(view)
            if view.get("state") in terminal:
                return view
            if self._clock() >= deadline:
                raise TimeoutError(f"application {tenant}/{sig}/{app_id} not finished after {timeout:.0f}s; "
                                   f"last state {view.get('state')}")
            self._sleep(interval)

    # -- server-sent events ----------------------------------------------------------------------

    def _follow(self, path: str, params: dict[str, Any], start: int, timeout: float | None) -> Iterator[str]:
        """Read `?follow=true` (services/api/follow.py): one `data:` per line, `event: end` at the end. The
        API closes a stream after its follow_max_s; this reconnects with Last-Event-ID until `end`."""
        offset = start
        deadline = None if timeout is None else self._clock() + timeout
        while deadline is None or self._clock() < deadline:
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(offset)}
            resp = self.request("GET", path, params=dict(params, follow="true", **{"from": offset}), headers=headers,
                                stream=True, timeout=(self.timeout, max(self.timeout, 30.0)))
            if not resp.headers.get("Content-Type", "").startswith("text/event-stream"):
                resp.close()
                raise ApiError(resp.status_code, "NotAStream", None, f"{path}: the API did not answer with events")
            ended, before = False, offset
            try:
                event, event_id = "message", None
                data: list[str] = []
                for raw in resp.iter_lines(chunk_size=1, decode_unicode=False):
                    line = raw.decode("utf-8", errors="replace")
                    if line == "":
                        if event == "end":
                            ended = True
                            break
                        if data and event == "message":
                            yield "\n".join(data)
                            offset = int(event_id) if event_id and event_id.isdigit() else offset + 1
                        event, data, event_id = "message", [], None
                    elif line.startswith(":"):
                        continue
                    else:
                        name, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if name == "data":
                            data.append(value)
                        elif name == "event":
                            event = value
                        elif name == "id":
                            event_id = value
            except requests.RequestException:
                pass  # reconnect from the last line received
            finally:
                resp.close()
            if ended:
                return
            if offset == before:
                self._sleep(1.0)  # a stream that brought nothing: do not reconnect in a tight loop
        raise TimeoutError(f"{path}: still not over after {timeout:.0f}s")

