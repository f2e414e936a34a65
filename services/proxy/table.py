"""The route table: a value rebuilt from etcd every `refresh_s`, never read per request.

It holds what routing and authorization need: which SIGs exist, the verified route records of
their containers, the grants of every tenant and the hash of the bootstrap admin token.
`build_table()` is pure; `TableRefresher` is the thin loop that reads etcd (three range reads and a get) and
swaps the value in one assignment.

Routes come from `{p}/routes/{t}/{s}/{host}`, written only by the scaler (SIG etcd users cannot
write them; the agents' host records `{p}/hosts/...` are never routed on, since tenant code can
write those): the scaler keeps a host record's ports only where the runtime confirms that the
address belongs to one of the SIG's containers (services/scaler/routes.py). A record:

    {"role": "master" | "worker" | "history" | "notebook" | ...,
     "container": "<the SIG container that owns the ports>",
     "ip": "10.1.0.2", "ports": {"<name>": <port>, ...},   # e.g. "spark", "ui"
     "ready": true | false,
     "user": "<user name>"}                                  # optional: a per-user server (notebooks)

From them the table derives:
- `endpoints[(tenant, sig, role, user or "")] = (ip, port)`: the `ui` port of each ready record,
  one per key (the first host name in order wins), which is what ingress paths route to; a new
  kind of server (history, notebooks) needs only a record of its role and a path in routes.py;
- `masters[(tenant, sig)]`: the master's UI endpoint, for `/sig/{t}/{s}/`;
- `hosts[(name, port)]`: every verified port of every record for forward mode, by the record's
  host name, its container's name, its registry name `<host>.<sig>.<tenant>` and its IP.
An address any two SIGs claim, and any address in `deny` (the platform's own services), is left out.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from spaas.errors import SpaasError, TemporaryError
from spaas.etcd import EtcdStore, _b64, prefix_end
from spaas.keys import Keys
from spaas.loops import run_every
from spaas.principals import members_from_entries
from spaas.store import Entry

log = logging.getLogger(__name__)

SigId = tuple[str, str]


@dataclass(frozen=True)
class HostTarget:
    """One registered port of one SIG container, as forward mode may reach it."""

    tenant: str
    sig: str
    host: str
    ip: str
    port: int


# (tenant, sig, role, user or "") of a routed UI.
EndpointId = tuple[str, str, str, str]


@dataclass(frozen=True)
class RouteTable:
    sigs: frozenset[SigId] = frozenset()
    # (tenant, sig) -> (ip, port) of its ready Spark master's UI.
    masters: Mapping[SigId, tuple[str, int]] = field(default_factory=lambda: MappingProxyType({}))
    # (tenant, sig, role, user or "") -> (ip, port) of the `ui` port of each ready route record.
    endpoints: Mapping[EndpointId, tuple[str, int]] = field(default_factory=lambda: MappingProxyType({}))
    # (host name or IP, lower case, port) -> the container port it names.
    hosts: Mapping[tuple[str, int], HostTarget] = field(default_factory=lambda: MappingProxyType({}))
    # tenant -> ("user" | "group", name) -> roles.
    members: Mapping[str, Mapping[tuple[str, str], list[str]]] = field(default_factory=lambda: MappingProxyType({}))
    bootstrap_hash: str = ""
    built_at: float = 0.0
    ok: bool = False


def build_table(*, sig_keys: Iterable[str], routes: Iterable[Entry], members: Iterable[Entry],
                bootstrap_hash: str, keys: Keys, now: float,
                deny: frozenset[tuple[str, int]] = frozenset()) -> RouteTable:
    """The table from etcd's entries (`routes`: the scaler's verified route records). Pure.

    A (name, port) that two SIGs both claim is left out, and so is any address in `deny` (the
    platform's own services): verification makes both unlikely, and neither may ever be routed.
    """
    sigs: set[SigId] = set()
    prefix = keys.all_sigs()
    for key in sig_keys:
        rest = key[len(prefix):].split("/")
        if len(rest) == 3 and rest[2] == "spec":
            sigs.add((rest[0], rest[1]))
    endpoints: dict[EndpointId, tuple[str, int]] = {}
    targets: dict[tuple[str, int], HostTarget] = {}
    clashes: set[tuple[str, int]] = set()
    route_prefix = keys.all_routes()
    for entry in sorted(routes, key=lambda e: e.key):
        parts = entry.key[len(route_prefix):].split("/")
        if len(parts) != 3:
            continue
        tenant, sig, host = parts
        rec = entry.value
        ip, role = str(rec.get("ip") or ""), str(rec.get("role") or "")
        ports = rec.get("ports") or {}
        if not ip or not role or not isinstance(ports, dict) or (tenant, sig) not in sigs:
            continue
        valid = {str(name): p for name, p in ports.items()
                 if isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 and (ip, p) not in deny}
        user = rec.get("user") if isinstance(rec.get("user"), str) else ""
        if rec.get("ready") is True and "ui" in valid:
            endpoints.setdefault((tenant, sig, role, user), (ip, valid["ui"]))
        names = {host.lower(), f"{host}.{sig}.{tenant}".lower(), ip.lower()}
        if isinstance(rec.get("container"), str) and rec["container"]:
            names.add(rec["container"].lower())
        for port in valid.values():
            target = HostTarget(tenant, sig, host, ip, port)
            for name in names:
                other = targets.get((name, port))
                if other is not None and (other.tenant, other.sig) != (tenant, sig):
                    clashes.add((name, port))
                targets[(name, port)] = target
    for clash in clashes:
        targets.pop(clash, None)
    endpoints = {e: addr for e, addr in endpoints.items() if addr not in clashes}
    masters = {(t, s): addr for (t, s, role, user), addr in endpoints.items() if role == "master" and not user}
    by_tenant: dict[str, list[Entry]] = {}
    member_prefix = keys.all_members()
    for entry in members:
        tenant = entry.key[len(member_prefix):].split("/", 1)[0]
        by_tenant.setdefault(tenant, []).append(entry)
    grants = {t: MappingProxyType(members_from_entries(es, keys.members(t))) for t, es in by_tenant.items()}
    return RouteTable(sigs=frozenset(sigs), masters=MappingProxyType(masters), endpoints=MappingProxyType(endpoints),
                      hosts=MappingProxyType(targets), members=MappingProxyType(grants),
                      bootstrap_hash=bootstrap_hash, built_at=now, ok=True)


def read_table(store: EtcdStore, keys: Keys, *, deny: frozenset[tuple[str, int]] = frozenset(),
               clock: Callable[[], float] = time.time) -> RouteTable:
    """Three range reads (SIG spec keys only, route records, grants) and the bootstrap hash."""
    data: dict[str, Any] = store.call("/v3/kv/range", {"key": _b64(keys.all_sigs()),
                                                      "range_end": prefix_end(keys.all_sigs()), "keys_only": True})
    sig_keys = [base64.b64decode(kv["key"]).decode() for kv in data.get("kvs") or []]
    bootstrap = store.get(keys.bootstrap_token())
    return build_table(sig_keys=sig_keys, routes=store.list(keys.all_routes()),
                       members=store.list(keys.all_members()),
                       bootstrap_hash=str(bootstrap.value.get("hash", "")) if bootstrap else "",
                       keys=keys, now=clock(), deny=deny)


class TableRefresher:
    """Keeps `current` fresh: re-reads etcd every `interval_s`, backs off on errors (keeping
    the last good table), stops when `stop` is set."""

    def __init__(self, read: Callable[[], RouteTable], *, interval_s: float, stop: threading.Event) -> None:
        self._read = read
        self._interval = interval_s
        self._stop = stop
        self.current = RouteTable()
        self.failures = 0

    def refresh(self) -> RouteTable:
        self.current = self._read()
        return self.current

    def _step(self) -> None:
        try:
            self.refresh()
        except SpaasError as exc:
            self.failures += 1
            raise TemporaryError(f"route table not refreshed (keeping the one from "
                                 f"{time.time() - self.current.built_at:.0f}s ago): {exc}") from exc
        except Exception:
            self.failures += 1
            raise
        self.failures = 0

    def run(self) -> None:
        run_every(self._step, self._stop, self._interval, max_backoff_s=10.0,
                  first_backoff_s=max(2 * self._interval, 0.5), name="route table refresh")

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="route-table", daemon=True)
        thread.start()
        return thread
