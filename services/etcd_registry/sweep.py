"""The sweep of stale host entries: a pure decision (`stale`) and a thin loop around it.

Leased entries vanish by themselves when their agent stops renewing. What the sweep removes is
what a lease cannot: entries written without a lease, and entries of SIGs that were deleted
(no spec any more) while their agents' leases still ran. Deletes are compare-and-swap on the
entry's `mod_revision`, so an agent that re-registers between our read and our delete wins.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import Counter

from spaas.errors import TemporaryError
from spaas.keys import Keys
from spaas.loops import run_every
from spaas.records import read_sigs
from spaas.store import Entry, Store

log = logging.getLogger(__name__)

# Longest wait between sweeps while etcd keeps failing.
MAX_BACKOFF_S = 60.0

SWEPT = Counter("spaas_registry_swept_entries", "Stale host entries deleted by the sweep")
SWEEP_ERRORS = Counter("spaas_registry_sweep_errors", "Sweeps that failed", ["kind"])


def split_host_key(key: str, keys: Keys) -> tuple[str, str, str] | None:
    """`{p}/hosts/t/s/h` -> ("t", "s", "h"); None for a key that does not follow the layout."""
    root = keys.all_hosts()
    if not key.startswith(root):
        return None
    parts = key[len(root):].split("/")
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def stale(hosts: list[Entry], live_sigs: set[tuple[str, str]], keys: Keys) -> list[str]:
    """Keys of host entries to delete: those without a lease, and those whose SIG has no spec.

    Keys outside the layout are left alone: we do not delete what we do not understand.
    """
    doomed: list[str] = []
    for entry in hosts:
        parsed = split_host_key(entry.key, keys)
        if parsed is None:
            continue
        tenant, sig, _host = parsed
        if entry.lease == 0 or (tenant, sig) not in live_sigs:
            doomed.append(entry.key)
    return doomed


def sweep_once(store: Store, keys: Keys) -> int:
    """Delete stale host entries; returns how many were deleted.

    Hosts are read before specs: a SIG created after the host listing cannot make one of its
    (unlisted) hosts look orphaned.
    """
    hosts = store.list(keys.all_hosts())  # keys and leases only: host values are not read here
    # SIGs through the validated path: one with a malformed spec is still a SIG (its hosts stay).
    live = {(rec.tenant, rec.sig) for rec in read_sigs(store, keys)}
    by_key = {entry.key: entry for entry in hosts}
    deleted = 0
    for key in stale(hosts, live, keys):
        entry = by_key[key]
        if store.delete(key, mod_revision=entry.mod_revision):
            reason = "no lease" if entry.lease == 0 else "SIG has no spec"
            log.info("swept stale host entry %s (%s)", key, reason)
            deleted += 1
    SWEPT.inc(deleted)
    return deleted


def sweep_loop(store: Store, keys: Keys, stop: threading.Event, period_s: float) -> None:
    """Sweep at once, then every `period_s`, backing off while etcd fails, until `stop` is set."""

    def step() -> None:
        try:
            sweep_once(store, keys)  # logs each entry it deletes, with the reason
        except TemporaryError:
            SWEEP_ERRORS.labels(kind="temporary").inc()
            raise
        except Exception:
            SWEEP_ERRORS.labels(kind="unexpected").inc()
            raise

    run_every(step, stop, period_s, max_backoff_s=max(MAX_BACKOFF_S, period_s), name=f"sweep of {keys.all_hosts()}")
