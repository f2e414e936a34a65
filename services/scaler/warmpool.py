"""The warm pool's thin loop: read skeletons, claims and SIGs; `pool_plan()`; act.

Runs at the start of every scaler pass (so a claim is made before the pass would start the SIG's
containers cold, and the pass then sees the adopted containers as the SIG's own). Only on a
runtime that can adopt a running container under a new name (the process runtime) and without
per-SIG etcd/Redis credentials (a pooled agent has none to hand over); see docs/architecture.md.

A claim, in order (each step idempotent; a pass that finds a claim still "claiming" finishes it):
  1. `{p}/pool/claims/<id>` created {tenant, sig, state: claiming, ...} (put-if-absent: the lock)
  2. the skeleton's secret CAS-written to `{p}/secrets/t/s` with `adopted_from` (no container of
     the SIG exists yet, so nothing used the API's secret)
  3. the runtime adopts each container under the SIG's container name, config hash, generation
  4. the claim turns "claimed": the agents read it and become the SIG's (services/agent/pool.py)
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from spaas.errors import Conflict, SpaasError, TemporaryError
from spaas.keys import Keys
from spaas.model import BuildState
from spaas.records import SigRecords, read_sigs
from spaas.runtimes.base import MASTER, WORKER, Container, ContainerSpec, container_name
from spaas.store import Entry, Store

from services.scaler.pool import Candidate, Shape, Skeleton, pool_plan
from services.scaler.reconcile import config_hash

log = logging.getLogger(__name__)

CLAIMING, CLAIMED = "claiming", "claimed"


Containers = list[Container]


class PoolRuntime(Protocol):
    """What the pool needs of a runtime beyond the Runtime port (spaas/runtimes/process.py)."""

    def start(self, spec: ContainerSpec) -> None: ...
    def stop(self, name: str, *, grace_s: float = 10.0) -> None: ...
    def list(self) -> Containers: ...
    def pooled(self) -> Containers: ...
    def adopt(self, pooled_name: str, spec: ContainerSpec) -> None: ...
    def discard_pool(self, skeleton: str) -> None: ...


def supports_pool(runtime: Any) -> bool:
    return all(callable(getattr(runtime, m, None)) for m in ("pooled", "adopt", "discard_pool"))


def _values(entries: list[Entry], prefix: str) -> dict[str, dict[str, Any]]:
    return {e.key[len(prefix):]: e.value for e in entries if isinstance(e.value, dict)}


class WarmPool:
    def __init__(self, store: Store, runtime: PoolRuntime, *, keys: Keys, size: int, workers: int = 1,
                 cpu: int = 2, memory_mb: int = 2048, clock: Callable[[], float] = time.time,
                 start_timeout_s: float = 600.0) -> None:
        """`start_timeout_s`: a skeleton not ready by then is stopped (and replaced)."""
        self._start_timeout_s = start_timeout_s
        self._store = store
        self._runtime = runtime
        self._keys = keys
        self._size = size
        self._workers = workers
        self._cpu = cpu
        self._memory_mb = memory_mb
        self._clock = clock

    def step(self, sigs: Iterable[SigRecords] | None = None, containers: Containers | None = None) -> bool:
        """One pass over `sigs` and the runtime's `containers` (the scaler pass's own snapshot, so
        a SIG this step sees unbuilt is not started cold by the same pass); read here when None.
        True if a skeleton was claimed. Errors are logged (the pool is an optimisation: a SIG
        then starts cold)."""
        try:
            return self._step(list(read_sigs(self._store, self._keys) if sigs is None else sigs),
                              self._runtime.list() if containers is None else containers)
        except (TemporaryError, SpaasError, OSError, ValueError, KeyError) as exc:
            log.warning("warm pool pass failed: %s", exc)
            return False

    def _versions(self) -> dict[str, str]:
        """Spark version -> the newest successful build's artifact of that version (its layer)."""
        best: dict[str, tuple[float, str]] = {}
        for e in self._store.list(self._keys.builds()):
            v = e.value
            if not isinstance(v, dict) or v.get("state") != BuildState.SUCCEEDED.value or not v.get("artifact"):
                continue
            version, artifact = str(v.get("spark_version") or ""), str(v["artifact"])
            if version and (Path(artifact) / "manifest.json").is_file():
                at = float(v.get("finished_at") or 0.0)
                if version not in best or at > best[version][0]:
                    best[version] = (at, artifact)
        return {k: a for k, (_, a) in best.items()}

    def _step(self, sig_records: list[SigRecords], containers: Containers) -> bool:
        records = _values(self._store.list(self._keys.pool_skeletons()), self._keys.pool_skeletons())
        claims = {e.key[len(self._keys.pool_claims()):]: e for e in self._store.list(self._keys.pool_claims())}
        hosts: dict[str, list[dict[str, Any]]] = {}
        for e in self._store.list(self._keys.all_pool_hosts()):
            skel = e.key[len(self._keys.all_pool_hosts()):].split("/")[0]
            if isinstance(e.value, dict):
                hosts.setdefault(skel, []).append(e.value)
        pooled: dict[str, list[Container]] = {}
        for c in self._runtime.pooled():
            pooled.setdefault(c.sig, []).append(c)
        sigs = {(r.tenant, r.sig): r for r in sig_records}
        running_sigs = {(c.tenant, c.sig) for c in containers}
        claimed = False
        # Finish claims a previous pass left half-done; forget claimed skeletons whose SIG and containers are gone.
        for skel, entry in claims.items():
            t, s = str(entry.value.get("tenant", "")), str(entry.value.get("sig", ""))
            if entry.value.get("state") == CLAIMING and (t, s) in sigs and skel in pooled:
                claimed = self._complete(skel, entry, pooled[skel]) or claimed
            elif entry.value.get("state") == CLAIMING and skel in pooled:
                self._drop(skel, pooled[skel], keep_claim=True)
            elif (t, s) not in sigs and (t, s) not in running_sigs and skel not in pooled:
                self._forget(skel)
        skeletons = []
        for skel, rec in records.items():
            workers = int(rec.get("workers", 1))
            if skel not in claims and len(pooled.get(skel, [])) != 1 + workers:
                # A container of it died (a pooled worker waits for its master forever): it goes whole.
                log.info("pool skeleton %s: %d of its %d containers run; stopping it", skel,
                         len(pooled.get(skel, [])), 1 + workers)
                self._drop(skel, pooled.get(skel, []), keep_claim=False)
                continue
            mine = hosts.get(skel, [])
            ready = (any(h.get("role") == MASTER and h.get("ready") for h in mine)
                     and sum(1 for h in mine if h.get("role") == WORKER and h.get("ready")) >= workers)
            if skel not in claims and not ready and self._clock() - float(rec.get("created_at") or 0.0) > self._start_timeout_s:
                log.warning("pool skeleton %s: not ready after %.0fs; stopping it", skel, self._start_timeout_s)
                self._drop(skel, pooled.get(skel, []), keep_claim=False)
                continue
            claim = claims.get(skel)
            skeletons.append(Skeleton(
                id=skel, shape=Shape(str(rec.get("spark_version")), int(rec.get("cpu", 2)), int(rec.get("memory_mb", 2048)),
                                     int(rec.get("workers", 1))),
                ready=ready, created_at=float(rec.get("created_at") or 0.0),
                claimed_by=(str(claim.value.get("tenant")), str(claim.value.get("sig"))) if claim else None))
        # Unclaimed pooled containers with no skeleton record (a crash between start and record): stop.
        for skel, containers in pooled.items():
            if skel not in records and skel not in claims:
                self._drop(skel, containers, keep_claim=False)
        candidates = []
        for (t, s), sig_rec in sigs.items():
            if sig_rec.spec is None:
                continue
            spec = sig_rec.spec.to_value()
            build = sig_rec.build.to_value() if sig_rec.build else {}
            status = sig_rec.status.to_value() if sig_rec.status else {}
            inner = spec.get("spec") or {}
            res, scaling = inner.get("resources") or {}, inner.get("scaling") or {}
            fresh = (not spec.get("deleting") and int(build.get("generation", 0)) == int(spec.get("generation", 0))
                     and build.get("state") == BuildState.SUCCEEDED.value and bool(build.get("artifact"))
                     and int(status.get("observed_generation", 0) or 0) == 0)
            candidates.append(Candidate(t, s, str(inner.get("spark_version", "")), int(res.get("cpu", 2)),
                                        int(res.get("memory_mb", 2048)), int(res.get("gpu", 0)),
                                        int(scaling.get("min_workers", 1)), dict(inner.get("spark_conf") or {}),
                                        fresh=fresh, has_containers=(t, s) in running_sigs))
        versions = self._versions()
        plan = pool_plan(skeletons, candidates, set(versions), size=self._size, workers=self._workers,
                         cpu=self._cpu, memory_mb=self._memory_mb)
        for reason in plan.reasons:
            log.info("warm pool: %s", reason)
        for skel, t, s in plan.claims:
            claimed = self._claim(skel, t, s, sigs[(t, s)], pooled.get(skel, [])) or claimed
        for skel in plan.stop:
            self._drop(skel, pooled.get(skel, []), keep_claim=False)
        for shape in plan.refill:
            self._start(shape, versions[shape.spark_version])
        return claimed

    # -- acting ---------------------------------------------------------------------------------
    def _start(self, shape: Shape, artifact: str) -> None:
        skel = f"pool-{shape.spark_version.replace('.', '')}-{secrets.token_hex(4)}"
        self._store.put(self._keys.pool_secret(skel), {"secret": secrets.token_urlsafe(32)})
        self._store.put(self._keys.pool_skeleton(skel), {
            "spark_version": shape.spark_version, "cpu": shape.cpu, "memory_mb": shape.memory_mb,
            "workers": shape.workers, "artifact": artifact, "created_at": self._clock()})
        log.info("warm pool: starting skeleton %s (Spark %s, %d worker(s))", skel, shape.spark_version, shape.workers)
        for role, index in [(MASTER, 0)] + [(WORKER, i) for i in range(shape.workers)]:
            self._runtime.start(ContainerSpec(
                name=f"{skel}-{role}-{index}", tenant="", sig=skel, role=role, index=index, config_hash="",
                generation=0, artifact=artifact, cpu=shape.cpu, memory_mb=shape.memory_mb, env={"SPAAS_POOL": skel}))

    def _claim(self, skel: str, tenant: str, sig: str, rec: Any, containers: list[Container]) -> bool:
        spec = rec.spec.to_value()
        build = rec.build.to_value()
        generation = int(spec["generation"])
        names = {}
        for c in sorted(containers, key=lambda c: (c.role != MASTER, c.index)):
            names[c.name] = {"name": container_name(tenant, sig, c.role, c.index), "index": c.index, "role": c.role}
        value = {"tenant": tenant, "sig": sig, "state": CLAIMING, "at": self._clock(), "generation": generation,
                 "config_hash": config_hash(str(build["key"]), spec["spec"]), "artifact": str(build["artifact"]),
                 "containers": names}
        try:
            entry = self._store.create(self._keys.pool_claim(skel), value)
        except Conflict:
            log.info("warm pool: skeleton %s was claimed by another scaler", skel)
            return False
        log.info("warm pool: sig %s/%s claims skeleton %s", tenant, sig, skel)
        return self._complete(skel, entry, containers)

    def _complete(self, skel: str, entry: Entry, containers: list[Container]) -> bool:
        claim = entry.value
        tenant, sig = str(claim["tenant"]), str(claim["sig"])
        pool_secret = self._store.get(self._keys.pool_secret(skel))
        current = self._store.get(self._keys.secret(tenant, sig))
        if pool_secret is None or not (pool_secret.value or {}).get("secret"):
            if current is None or current.value.get("adopted_from") != skel:
                log.error("warm pool: skeleton %s has no secret; its claim by %s/%s is dropped", skel, tenant, sig)
                self._drop(skel, containers, keep_claim=True)
                return False
            adopted = dict(current.value)  # written by the pass that lost the pool's copy
        else:
            adopted = {"secret": str(pool_secret.value["secret"]), "adopted_from": skel}
        if current is None:
            self._store.create(self._keys.secret(tenant, sig), adopted)
        elif current.value != adopted:
            self._store.update(self._keys.secret(tenant, sig), adopted, mod_revision=current.mod_revision)
        for c in containers:
            mine = (claim.get("containers") or {}).get(c.name)
            if not mine:
                continue
            self._runtime.adopt(c.name, ContainerSpec(
                name=str(mine["name"]), tenant=tenant, sig=sig, role=c.role, index=c.index,
                config_hash=str(claim["config_hash"]), generation=int(claim["generation"]), artifact=str(claim["artifact"])))
        self._store.update(self._keys.pool_claim(skel), dict(claim, state=CLAIMED), mod_revision=entry.mod_revision)
        self._store.delete(self._keys.pool_skeleton(skel))
        self._store.delete(self._keys.pool_secret(skel))
        return True

    def _drop(self, skel: str, containers: list[Container], *, keep_claim: bool) -> None:
        """Stop an unclaimed skeleton (or one whose claim cannot complete) for good."""
        for c in containers:
            self._runtime.stop(c.name, grace_s=5.0)
        self._store.delete(self._keys.pool_skeleton(skel))
        self._store.delete(self._keys.pool_secret(skel))
        self._runtime.discard_pool(skel)
        # With keep_claim the claim record stays: a claimed skeleton is never offered again.
        if not keep_claim and skel not in self._claimed():
            self._store.delete_prefix(self._keys.pool_hosts(skel))

    def _claimed(self) -> set[str]:
        return {e.key[len(self._keys.pool_claims()):] for e in self._store.list(self._keys.pool_claims())}

    def _forget(self, skel: str) -> None:
        """A claimed skeleton whose SIG and containers are gone: its records go."""
        self._store.delete(self._keys.pool_claim(skel))
        self._store.delete(self._keys.pool_skeleton(skel))
        self._store.delete(self._keys.pool_secret(skel))
        self._store.delete_prefix(self._keys.pool_hosts(skel))
