"""Store adapter over etcd's v3 JSON gateway (`/v3/kv/*`, `/v3/lease/*`), using `requests`.

The gateway is part of every etcd >= 3.3 server, so this needs no gRPC or protobuf stack (the
`etcd3` package does not import with protobuf >= 4). Every call has a timeout; transport
failures become `TemporaryError`, lost compare-and-swaps become `Conflict`.
"""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

import requests

from spaas.errors import Conflict, TemporaryError
from spaas.store import Entry


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def _prefix_end(prefix: str) -> str:
    """The range end that selects every key starting with `prefix` (etcd's idiom)."""
    raw = bytearray(prefix.encode())
    for i in range(len(raw) - 1, -1, -1):
        if raw[i] < 0xFF:
            raw[i] += 1
            return base64.b64encode(bytes(raw[: i + 1])).decode()
    return _b64("\0")


class EtcdStore:
    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        self._url = url.rstrip("/")
        self._timeout = timeout_s
        self._local = threading.local()

    # -- transport -------------------------------------------------------------------
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = self._session().post(self._url + path, data=json.dumps(body), timeout=self._timeout)
        except requests.RequestException as exc:
            raise TemporaryError(f"etcd at {self._url} unreachable: {exc.__class__.__name__}") from None
        if resp.status_code >= 500 or resp.status_code == 429:
            raise TemporaryError(f"etcd {path} answered {resp.status_code}: {resp.text[:200]}")
        if resp.status_code >= 400:
            raise TemporaryError(f"etcd {path} rejected the call ({resp.status_code}): {resp.text[:200]}")
        # A keepalive answers with a stream of JSON objects; the first one is ours.
        text = resp.text.strip().splitlines()[0] if resp.text.strip() else "{}"
        data: dict[str, Any] = json.loads(text)
        if "error" in data and "result" not in data:
            raise TemporaryError(f"etcd {path} failed: {data.get('error')}")
        return data.get("result", data) if path == "/v3/lease/keepalive" else data

    @staticmethod
    def _entry(kv: dict[str, Any]) -> Entry:
        return Entry(
            key=_unb64(kv["key"]),
            value=json.loads(_unb64(kv.get("value", ""))) if kv.get("value") else {},
            mod_revision=int(kv.get("mod_revision", 0)),
            create_revision=int(kv.get("create_revision", 0)),
            lease=int(kv.get("lease", 0)),
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
        data = self._call("/v3/kv/range", {"key": _b64(prefix), "range_end": _prefix_end(prefix)})
        return [self._entry(kv) for kv in data.get("kvs") or []]

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
        data = self._call("/v3/kv/deleterange", {"key": _b64(prefix), "range_end": _prefix_end(prefix)})
        return int(data.get("deleted", 0))

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

    def health(self) -> bool:
        try:
            resp = self._session().get(self._url + "/health", timeout=self._timeout)
            return resp.ok and json.loads(resp.text).get("health") in ("true", True)
        except (requests.RequestException, ValueError):
            return False
