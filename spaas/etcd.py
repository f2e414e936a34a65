"""Store adapter over etcd's v3 JSON gateway (`/v3/kv/*`, `/v3/lease/*`), using `requests`.

The gateway is part of every etcd >= 3.3 server, so this needs no gRPC or protobuf stack (the
`etcd3` package does not import with protobuf >= 4). Every call has a timeout; transport
failures become `TemporaryError`, lost compare-and-swaps become `Conflict`.

Authentication (etcd's own RBAC, `spaas/etcdauth.py`): with a user, the store asks
`/v3/auth/authenticate` for a token and sends it in the `Authorization` header. etcd's simple
tokens expire (and changing a user's password invalidates them), so an answer "invalid auth
token" — or "user name is empty" when auth was enabled after the token-less start — makes the
store authenticate again and retry the call once. Permission denied, and credentials etcd
rejects, are `EtcdForbidden`: a `PermanentError`, never retried forever.
"""

from __future__ import annotations

import base64
import builtins
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests

from spaas.errors import Conflict, NotFound, PermanentError, TemporaryError
from spaas.settings import BaseSettings
from spaas.store import Entry


class EtcdForbidden(PermanentError):
    """etcd refused the call for this user (RBAC), or refused the credentials themselves."""

    code = "StoreForbidden"


# Keys per range request of a listing (`EtcdStore.list_at`).
PAGE_KEYS = 2000
# Writes per transaction of `EtcdStore.write_many` (etcd refuses more than --max-txn-ops, 128 by default).
TXN_OPS = 64


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def prefix_end(prefix: str) -> str:
    """The range end that selects every key starting with `prefix` (etcd's idiom)."""
    raw = bytearray(prefix.encode())
    for i in range(len(raw) - 1, -1, -1):
        if raw[i] < 0xFF:
            raw[i] += 1
            return base64.b64encode(bytes(raw[: i + 1])).decode()
    return _b64("\0")


def _error(resp: requests.Response) -> tuple[int, str]:
    """(gRPC code, message) of an etcd error answer; (0, body) if it is not JSON."""
    try:
        data = json.loads(resp.text)
        return int(data.get("code", 0)), str(data.get("message") or data.get("error") or "")
    except (ValueError, TypeError, AttributeError):
        return 0, resp.text[:200]


def _subject(body: dict[str, Any]) -> str:
    """The key a call is about, for error messages."""
    for candidate in (body, *(body.get("compare") or [])):
        if isinstance(candidate, dict) and candidate.get("key"):
            try:
                return _unb64(candidate["key"])
            except (ValueError, UnicodeDecodeError):
                return "?"
    return ""


# etcd answers these when the token is stale or missing: authenticate again and retry once.
_REAUTH = ("invalid auth token", "user name is empty", "revision of auth store is old")


class EtcdStore:
    def __init__(self, url: str, *, timeout_s: float = 5.0, user: str = "", password: str = "") -> None:
        self._url = url.rstrip("/")
        self._timeout = timeout_s
        self._local = threading.local()
        self._user = user
        self._password = password
        self._token: str | None = None
        self._authenticated = False
        self._auth_lock = threading.Lock()
        # How many tokens this store obtained (observability, and tests of re-authentication).
        self.authentications = 0

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> EtcdStore:
        """The store of a service: its etcd URL, call timeout and (if set) credentials."""
        return cls(settings.etcd_url, timeout_s=settings.call_timeout_s, user=settings.etcd_user,
                   password=settings.etcd_password)

    @property
    def user(self) -> str:
        return self._user

    # -- transport -------------------------------------------------------------------
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> requests.Response:
        try:
            return self._session().post(self._url + path, data=json.dumps(body), headers=headers,
                                        timeout=self._timeout)
        except requests.RequestException as exc:
            raise TemporaryError(f"etcd at {self._url} unreachable: {exc.__class__.__name__}") from None

    def _authenticate(self, stale: str | None) -> str | None:
        """A current token (None while etcd's auth is off). `stale`: the token etcd just refused,
        so a token another thread already renewed is reused instead of asking twice."""
        with self._auth_lock:
            if self._authenticated and self._token != stale:
                return self._token
            resp = self._post("/v3/auth/authenticate", {"name": self._user, "password": self._password}, {})
            if resp.ok:
                self._token = str(json.loads(resp.text).get("token") or "") or None
                self.authentications += 1
            else:
                code, message = _error(resp)
                if "authentication is not enabled" in message:
                    self._token = None  # auth gets enabled later: "user name is empty" brings us back
                elif "authentication failed" in message or resp.status_code in (400, 401, 403):
                    raise EtcdForbidden(f"etcd at {self._url} rejected the credentials of user {self._user!r}: "
                                        f"{message}")
                else:
                    raise TemporaryError(f"etcd authenticate answered {resp.status_code}: {message}")
            self._authenticated = True
            return self._token

    def authenticate(self) -> bool:
        """Log in now: True if etcd issued a token, False if its auth is off; `EtcdForbidden` if
        it rejects the credentials."""
        self._authenticated = False
        return self._authenticate(None) is not None

    def as_user(self, user: str, password: str) -> EtcdStore:
        """A store on the same etcd with other credentials."""
        return EtcdStore(self._url, timeout_s=self._timeout, user=user, password=password)

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One JSON-gateway call as this store's user (for adapters such as `spaas.etcdauth`)."""
        return self._call(path, body)

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        token = self._authenticate(None) if self._user else None
        resp = self._post(path, body, {"Authorization": token} if token else {})
        if resp.status_code in (400, 401) and self._user:
            code, message = _error(resp)
            if any(m in message for m in _REAUTH):
                token = self._authenticate(token)
                resp = self._post(path, body, {"Authorization": token} if token else {})
        if resp.status_code >= 500 or resp.status_code == 429:
            raise TemporaryError(f"etcd {path} answered {resp.status_code}: {resp.text[:200]}")
        if resp.status_code >= 400:
            code, message = _error(resp)
            subject = _subject(body)
            what = f"{path} {subject}".strip()
            if code == 7 or resp.status_code == 403:
                raise EtcdForbidden(f"etcd denied {what} to user {self._user or '(none)'}: {message}")
            if "user name is empty" in message:
                raise EtcdForbidden(f"etcd requires authentication for {what}: set SPAAS_ETCD_USER and "
                                    f"SPAAS_ETCD_PASSWORD")
            if path.startswith("/v3/auth/") and "already exists" in message:
                raise Conflict(f"etcd {what}: {message}")
            if path.startswith("/v3/auth/") and "not found" in message:
                raise NotFound(f"etcd {what}: {message}")
            raise TemporaryError(f"etcd {path} rejected the call ({resp.status_code}): {resp.text[:200]}")
        # A keepalive answers with a stream of JSON objects; the first one is ours.
        text = resp.text.strip().splitlines()[0] if resp.text.strip() else "{}"
        data: dict[str, Any] = json.loads(text)
        if "error" in data and "result" not in data:
            raise TemporaryError(f"etcd {path} failed: {data.get('error')}")
        header = data.get("header")
        if isinstance(header, dict) and header.get("revision"):
            self._local.revision = int(header["revision"])
        return data.get("result", data) if path == "/v3/lease/keepalive" else data

    @staticmethod
    def _entry(kv: dict[str, Any]) -> Entry:
        """One key-value; a value that is not a JSON object (written by hand or by tenant code
        in its own prefix) gives an entry with `error` set instead of failing the whole call."""
        value: Any = {}
        error = ""
        if kv.get("value"):
            try:
                value = json.loads(base64.b64decode(kv["value"]).decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                value, error = {}, f"not JSON ({exc.__class__.__name__})"
            if not isinstance(value, dict):
                value, error = {}, f"not a JSON object but {type(value).__name__}"
        else:
            error = "empty value"
        return Entry(
            key=base64.b64decode(kv["key"]).decode("utf-8", errors="replace"),
            value=value,
            mod_revision=int(kv.get("mod_revision", 0)),
            create_revision=int(kv.get("create_revision", 0)),
            lease=int(kv.get("lease", 0)),
            error=error,
        )

    @staticmethod
    def _put_op(key: str, value: dict[str, Any], lease: int) -> dict[str, Any]:
        op: dict[str, Any] = {"key": _b64(key), "value": _b64(json.dumps(value, sort_keys=True))}
        if lease:
            op["lease"] = str(lease)
        return op

    def _txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]]) -> dict[str, Any]:
        return self._call("/v3/kv/txn", {"compare": compare, "success": success, "failure": []})

    # -- Store -----------------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        data = self._call("/v3/kv/range", {"key": _b64(key)})
        kvs = data.get("kvs") or []
        return self._entry(kvs[0]) if kvs else None

    def list(self, prefix: str) -> list[Entry]:
        return self.list_at(prefix)[0]

    def create(self, key: str, value: dict[str, Any], *, lease: int = 0) -> Entry:
        compare = [{"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}]
        data = self._txn(compare, [{"request_put": self._put_op(key, value, lease)}])
        if not data.get("succeeded"):
            raise Conflict(f"{key} already exists")
        rev = int(data["header"]["revision"])
        return Entry(key, value, rev, rev, lease)

    def update(self, key: str, value: dict[str, Any], *, mod_revision: int, lease: int = 0) -> Entry:
        compare = [{"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(mod_revision)}]
        data = self._txn(compare, [{"request_put": self._put_op(key, value, lease)}])
        if not data.get("succeeded"):
            raise Conflict(f"{key} changed since revision {mod_revision}")
        rev = int(data["header"]["revision"])
        return Entry(key, value, rev, 0, lease)

    def put(self, key: str, value: dict[str, Any], *, lease: int = 0) -> Entry:
        data = self._call("/v3/kv/put", self._put_op(key, value, lease))
        rev = int(data["header"]["revision"])
        return Entry(key, value, rev, 0, lease)

    def delete(self, key: str, *, mod_revision: int | None = None) -> bool:
        if mod_revision is None:
            data = self._call("/v3/kv/deleterange", {"key": _b64(key)})
            return int(data.get("deleted", 0)) > 0
        compare = [{"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(mod_revision)}]
        data = self._txn(compare, [{"request_delete_range": {"key": _b64(key)}}])
        return bool(data.get("succeeded"))

    def delete_prefix(self, prefix: str) -> int:
        data = self._call("/v3/kv/deleterange", {"key": _b64(prefix), "range_end": prefix_end(prefix)})
        return int(data.get("deleted", 0))

    def write_many(self, writes: builtins.list[tuple[str, dict[str, Any] | None, int | None]]) -> builtins.list[int]:
        """Many writes in few round trips: each `(key, value, expect)` puts `value` (or deletes the
        key when `value` is None) if `expect` holds: None always, 0 the key is absent (create),
        n > 0 the key is at mod_revision n (compare-and-swap). Sent `TXN_OPS` to a transaction;
        a transaction whose compares do not all hold is sent again one write at a time, so each
        write succeeds or fails on its own compare, as the single calls do. Returns, per write,
        the revision it was made at, or 0 when its compare failed (a delete of an absent key
        counts as made)."""
        chunks: builtins.list[builtins.list[tuple[str, dict[str, Any] | None, int | None]]] = [[]]
        for write in writes:  # a key at most once per transaction (etcd refuses a duplicate)
            if len(chunks[-1]) >= TXN_OPS or any(w[0] == write[0] for w in chunks[-1]):
                chunks.append([])
            chunks[-1].append(write)
        out: builtins.list[int] = []
        for chunk in chunks:
            if not chunk:
                continue
            data = self._txn(*self._ops(chunk))
            if data.get("succeeded"):
                out.extend([int(data["header"]["revision"])] * len(chunk))
            elif len(chunk) == 1:
                out.append(0)
            else:
                for w in chunk:
                    one = self._txn(*self._ops([w]))
                    out.append(int(one["header"]["revision"]) if one.get("succeeded") else 0)
        return out

    def _ops(self, writes: builtins.list[tuple[str, dict[str, Any] | None, int | None]]
             ) -> tuple[builtins.list[dict[str, Any]], builtins.list[dict[str, Any]]]:
        compare: builtins.list[dict[str, Any]] = []
        success: builtins.list[dict[str, Any]] = []
        for key, value, expect in writes:
            if expect == 0:
                compare.append({"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
            elif expect is not None:
                compare.append({"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(expect)})
            success.append({"request_put": self._put_op(key, value, 0)} if value is not None
                           else {"request_delete_range": {"key": _b64(key)}})
        return compare, success

    def grant_lease(self, ttl_s: int) -> int:
        data = self._call("/v3/lease/grant", {"TTL": str(ttl_s)})
        return int(data["ID"])

    def keepalive(self, lease: int) -> int:
        data = self._call("/v3/lease/keepalive", {"ID": str(lease)})
        return int(data.get("TTL", 0))

    def revoke(self, lease: int) -> None:
        try:
            self._call("/v3/lease/revoke", {"ID": str(lease)})
        except TemporaryError:
            # Revoking an unknown lease is an error in etcd; the lease is gone either way.
            pass

    # -- revisions and watches (spaas.cache) ---------------------------------------------
    def last_revision(self) -> int:
        """The store revision in the answer to this thread's last call (0 before any): after a
        write, the revision a watch-backed cache must reach to show it (read-your-writes)."""
        return int(getattr(self._local, "revision", 0))

    def list_at(self, prefix: str) -> tuple[builtins.list[Entry], int]:
        """Every entry under `prefix` and the store revision of that listing (to watch from).

        Read in pages of `PAGE_KEYS` keys, every page at the first page's revision (one consistent
        listing): one answer for a large prefix (thousands of SIGs) would pass the gateway's
        message size limit and hold etcd for the whole of it. A revision compacted away between
        two pages is a `TemporaryError` (the caller lists again)."""
        end = prefix_end(prefix)
        body: dict[str, Any] = {"key": _b64(prefix), "range_end": end, "limit": str(PAGE_KEYS)}
        out: builtins.list[Entry] = []
        revision = 0
        while True:
            data = self._call("/v3/kv/range", body)
            kvs = data.get("kvs") or []
            out.extend(self._entry(kv) for kv in kvs)
            if not revision:
                revision = int(data["header"]["revision"])
                body["revision"] = str(revision)
            if not data.get("more") or not kvs:
                return out, revision
            body["key"] = base64.b64encode(base64.b64decode(kvs[-1]["key"]) + b"\0").decode()

    def watch(self, prefix: str, start_revision: int, *, read_timeout_s: float = 60.0) -> Watch:
        """A stream of changes under `prefix` from `start_revision` on (`/v3/watch`); see `Watch`."""
        token = self._authenticate(None) if self._user else None
        body = {"create_request": {"key": _b64(prefix), "range_end": prefix_end(prefix),
                                   "start_revision": str(start_revision), "progress_notify": True}}
        try:
            resp = requests.post(self._url + "/v3/watch", data=json.dumps(body), stream=True,
                                 headers={"Authorization": token} if token else {},
                                 timeout=(self._timeout, read_timeout_s))
        except requests.RequestException as exc:
            raise TemporaryError(f"etcd at {self._url} unreachable: {exc.__class__.__name__}") from None
        if resp.status_code != 200:
            code, message = _error(resp)
            resp.close()
            if self._user and any(m in message for m in _REAUTH):
                self._authenticate(token)  # the next watch (the cache's retry) gets a fresh token
            if code == 7 or resp.status_code == 403:
                raise EtcdForbidden(f"etcd denied a watch on {prefix} to user {self._user or '(none)'}: {message}")
            raise TemporaryError(f"etcd /v3/watch answered {resp.status_code}: {message}")
        return Watch(resp, prefix, renew=(lambda: self._authenticate(token)) if self._user else None)

    def health(self) -> bool:
        try:
            resp = self._session().get(self._url + "/health", timeout=self._timeout)
            return resp.ok and json.loads(resp.text).get("health") in ("true", True)
        except (requests.RequestException, ValueError):
            return False


@dataclass(frozen=True)
class Change:
    """One event of a watch: a put (`entry` set) or a delete (`entry` None) at `revision`."""

    key: str
    revision: int
    entry: Entry | None


class WatchCompacted(TemporaryError):
    """The watch started below etcd's compacted revision: re-list, then watch again."""

    code = "WatchCompacted"


class Watch:
    """An open `/v3/watch` stream. Iterating yields lists of `Change`s, in revision order, one list
    per etcd answer (an empty list for progress notifications). Ends when etcd or the network ends
    the stream or `read_timeout_s` passes without a byte (`TemporaryError`); `WatchCompacted` if
    the start revision is compacted. `close()` (from any thread) ends it at once."""

    def __init__(self, resp: requests.Response, prefix: str, *, renew: Callable[[], object] | None = None) -> None:
        self._resp = resp
        self.prefix = prefix
        self._renew = renew  # etcd refused the token mid-stream: get a new one for the next watch
        try:  # the socket, so close() can wake a thread blocked reading it
            self._sock: socket.socket | None = resp.raw._fp.fp.raw._sock  # type: ignore[union-attr]
        except AttributeError:
            self._sock = None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._resp.close()

    def __iter__(self) -> Iterator[list[Change]]:
        try:
            for line in self._resp.iter_lines(chunk_size=None):  # each answer as it arrives
                if not line:
                    continue
                data = json.loads(line)
                if "error" in data:
                    if self._renew is not None and any(m in json.dumps(data["error"]) for m in _REAUTH):
                        self._renew()
                    raise TemporaryError(f"etcd watch on {self.prefix} failed: {data['error']}")
                result = data.get("result") or {}
                if int(result.get("compact_revision") or 0):
                    raise WatchCompacted(f"etcd compacted {self.prefix} past the watch's start "
                                         f"(compact revision {result['compact_revision']})")
                if result.get("canceled"):
                    raise TemporaryError(f"etcd canceled the watch on {self.prefix}: "
                                         f"{result.get('cancel_reason') or 'no reason given'}")
                changes = []
                for event in result.get("events") or []:
                    kv = event.get("kv") or {}
                    key = base64.b64decode(kv.get("key", "")).decode("utf-8", errors="replace")
                    revision = int(kv.get("mod_revision", 0))
                    deleted = event.get("type") == "DELETE"
                    changes.append(Change(key, revision, None if deleted else EtcdStore._entry(kv)))
                yield changes
        except (requests.RequestException, AttributeError, ValueError) as exc:
            # AttributeError/ValueError: the response was closed under us by close().
            raise TemporaryError(f"etcd watch on {self.prefix} ended: {exc.__class__.__name__}") from None
        finally:
            self._resp.close()
