"""The route table: a value rebuilt from etcd every `refresh_s`, never read per request.

It holds what routing and authorization need: which SIGs exist, where each SIG's Spark master
UI listens (from the agents' leased host records `{p}/hosts/{t}/{s}/{host}`), every registered
(host, port) of every SIG container for forward mode, the grants of every tenant and the hash
of the bootstrap admin token. `build_table()` is pure; `TableRefresher` is the thin loop that
reads etcd (three range reads) and swaps the value in one assignment.
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


@dataclass(frozen=True)
class RouteTable:
    sigs: frozenset[SigId] = frozenset()
    # (tenant, sig) -> (ip, port) of its ready Spark master's UI.
    masters: Mapping[SigId, tuple[str, int]] = field(default_factory=lambda: MappingProxyType({}))
    # (host name or IP, lower case, port) -> the container port it names.
    hosts: Mapping[tuple[str, int], HostTarget] = field(default_factory=lambda: MappingProxyType({}))
    # tenant -> ("user" | "group", name) -> roles.
    members: Mapping[str, Mapping[tuple[str, str], list[str]]] = field(default_factory=lambda: MappingProxyType({}))
    bootstrap_hash: str = ""
    built_at: float = 0.0
    ok: bool = False


def build_table(*, sig_keys: Iterable[str], hosts: Iterable[Entry], members: Iterable[Entry],
                bootstrap_hash: str, keys: Keys, now: float,
                deny: frozenset[tuple[str, int]] = frozenset()) -> RouteTable:
    """The table from etcd's entries. Pure.

    A (host, port) that two SIGs both claim is left out (a container's record is written by
    tenant code, so a clash means someone points at a port that is not theirs); so is any
    address in `deny` (the platform's own services).
    """
    sigs: set[SigId] = set()
    prefix = keys.all_sigs()
    for key in sig_keys:
        rest = key[len(prefix):].split("/")
        if len(rest) == 3 and rest[2] == "spec":
            sigs.add((rest[0], rest[1]))
    masters: dict[SigId, tuple[str, int]] = {}
    targets: dict[tuple[str, int], HostTarget] = {}
    clashes: set[tuple[str, int]] = set()
    host_prefix = keys.all_hosts()
    for entry in hosts:
        parts = entry.key[len(host_prefix):].split("/")
        if len(parts) != 3:
            continue
        tenant, sig, host = parts
        rec = entry.value
        ip = str(rec.get("ip") or "")
        ports = rec.get("ports") or {}
        if not ip or not isinstance(ports, dict) or (tenant, sig) not in sigs:
            continue
        valid = [int(p) for p in ports.values() if isinstance(p, int) and 0 < p < 65536 and (ip, p) not in deny]
        if rec.get("role") == "master" and rec.get("ready") and isinstance(ports.get("ui"), int) \
                and ports["ui"] in valid:
            masters[(tenant, sig)] = (ip, int(ports["ui"]))
        for port in valid:
            target = HostTarget(tenant, sig, host, ip, port)
            # The container's name, its registry DNS name (<host>.<sig>.<tenant>) and its IP.
            for name in {host.lower(), f"{host}.{sig}.{tenant}".lower(), ip.lower()}:
                other = targets.get((name, port))
                if other is not None and (other.tenant, other.sig) != (tenant, sig):
                    clashes.add((name, port))
                targets[(name, port)] = target
    for clash in clashes:
        targets.pop(clash, None)
    clashed_ips = {(t.ip, t.port) for t in targets.values()} & clashes
    masters = {sig: addr for sig, addr in masters.items() if addr not in clashes and addr not in clashed_ips}
    by_tenant: dict[str, list[Entry]] = {}
    member_prefix = keys.all_members()
    for entry in members:
        tenant = entry.key[len(member_prefix):].split("/", 1)[0]
        by_tenant.setdefault(tenant, []).append(entry)
    grants = {t: MappingProxyType(members_from_entries(es, keys.members(t))) for t, es in by_tenant.items()}
    return RouteTable(sigs=frozenset(sigs), masters=MappingProxyType(masters), hosts=MappingProxyType(targets),
                      members=MappingProxyType(grants), bootstrap_hash=bootstrap_hash, built_at=now, ok=True)


def read_table(store: EtcdStore, keys: Keys, *, deny: frozenset[tuple[str, int]] = frozenset(),
               clock: Callable[[], float] = time.time) -> RouteTable:
    """Three range reads (SIG spec keys only, host records, grants) and the bootstrap hash."""
    data: dict[str, Any] = store.call("/v3/kv/range", {"key": _b64(keys.all_sigs()),
                                                      "range_end": prefix_end(keys.all_sigs()), "keys_only": True})
    sig_keys = [base64.b64decode(kv["key"]).decode() for kv in data.get("kvs") or []]
    bootstrap = store.get(keys.bootstrap_token())
    return build_table(sig_keys=sig_keys, hosts=store.list(keys.all_hosts()),
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
