"""The agent's `pooled` state: a warm-pool container before and at its claim.

    pooled  --(claim record {p}/pool/claims/<id> turns "claimed")-->  the SIG's master / worker

Pooled, the agent runs its Spark daemon with the skeleton's own secret (`{p}/pool/secrets/<id>`,
made by the scaler for this skeleton only), the platform's daemon conf and no tenant's: the master
registers at `{p}/pool/hosts/<id>/<container>`, the workers find it there and register once it
lists them ALIVE. No application controller, no queue, no driver: no tenant code runs before the
claim. Claimed, the agent takes the SIG's identity from the claim record (tenant, SIG, container
name, config hash, generation, the SIG's artifact for its drivers), registers its host record under
the SIG with the same daemon and goes on as any master or worker of that SIG. The SIG's secret is
the skeleton's (the scaler wrote it to `{p}/secrets/t/s` before marking the claim "claimed").
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spaas.errors import TemporaryError
from spaas.runtimes.base import MASTER

from services.agent import spark
from services.agent.host import HostRegistration

if TYPE_CHECKING:
    from services.agent.agent import Agent

log = logging.getLogger(__name__)

CLAIMED = "claimed"


def pool_secret(agent: Agent) -> str | None:
    entry = agent.store.get(agent.keys.pool_secret(agent.s.pool))
    value = entry.value if entry is not None else None
    secret = value.get("secret") if isinstance(value, dict) else None
    return secret if isinstance(secret, str) and secret else None


def claim_of(agent: Agent) -> dict[str, Any] | None:
    """This container's part of its skeleton's claim, once the claim is complete."""
    entry = agent.store.get(agent.keys.pool_claim(agent.s.pool))
    value = entry.value if entry is not None else None
    if not isinstance(value, dict) or value.get("state") != CLAIMED:
        return None
    mine = (value.get("containers") or {}).get(agent.s.container)
    if not isinstance(mine, dict) or not value.get("tenant") or not value.get("sig"):
        return None
    return {**value, **mine}


def _pool_master(agent: Agent) -> dict[str, Any] | None:
    for entry in agent.store.list(agent.keys.pool_hosts(agent.s.pool)):
        v = entry.value
        if isinstance(v, dict) and v.get("role") == MASTER and v.get("spark_url") and v.get("ui_url"):
            return v
    return None


def _wait_claim(agent: Agent) -> dict[str, Any] | None:
    """Until claimed (the claim), stopped or the daemon dies (None)."""
    while not agent.stop.is_set():
        if agent.daemon is None or agent.daemon.exited() is not None:
            log.error("%s: pooled Spark daemon exited; the skeleton is lost", agent.ident)
            return None
        try:
            claim = claim_of(agent)
        except TemporaryError as exc:
            log.warning("%s: cannot read the claim: %s", agent.ident, exc)
            agent.stop.wait(1)
            continue
        if claim is not None:
            return claim
        agent.stop.wait(0.1)
    return None


def _adopt(agent: Agent, claim: dict[str, Any]) -> None:
    """Become the claiming SIG's container: its identity, its registration, its drivers' environment."""
    previous = agent.registration.record
    agent.registration.withdraw()
    agent.s = agent.s.replace(tenant=str(claim["tenant"]), sig=str(claim["sig"]), container=str(claim["name"]),
                              index=int(claim.get("index", 0)), config_hash=str(claim["config_hash"]),
                              generation=int(claim["generation"]), artifact_dir=Path(str(claim["artifact"])), pool="")
    agent.env = spark.SparkEnv.load(agent.s.artifact_dir)
    agent.ident = f"{agent.s.tenant}/{agent.s.sig}/{agent.s.container}"
    agent.ui_base = spark.ui_proxy_base(agent.s.tenant, agent.s.sig)
    agent.registration = HostRegistration(agent.store, agent.keys, agent.s.tenant, agent.s.sig, agent.s.container,
                                          ttl_s=agent.s.host_ttl_s)
    agent.registration.publish({**previous, **agent._record()})
    agent._announce_host()
    log.info("%s: claimed from the warm pool", agent.ident)


def run_pooled(agent: Agent) -> int:
    skeleton = agent.s.pool
    agent.registration = HostRegistration(agent.store, agent.keys, "", "", agent.s.container,
                                          ttl_s=agent.s.host_ttl_s,
                                          key=agent.keys.pool_host(skeleton, agent.s.container))
    secret = agent.wait_for(lambda: pool_secret(agent), "the skeleton's secret", 0.5)
    if secret is None:
        return 0
    # The platform's daemon conf only (no tenant's), and no UI base yet: the SIG is not known.
    props = spark.daemon_properties(secret, {}, local_dir=agent.cdir / "local")
    if agent.s.role == MASTER:
        started = agent.start_master(props)
        if started is None:
            return 1
        claim = _wait_claim(agent)
        if claim is None:
            return 0 if agent.stop.is_set() else 1
        _adopt(agent, claim)
        return agent.serve_master(*started)
    prop_file = agent._write_private("conf/daemon.properties", spark.render_properties(props))
    master = agent.wait_for(lambda: _pool_master(agent), "the pool's registry", 0.2)
    if master is None:
        return 0
    agent._start_worker(master, prop_file, lookup=lambda: _pool_master(agent))
    claim = _wait_claim(agent)
    if claim is None:
        return 0 if agent.stop.is_set() else 1
    _adopt(agent, claim)
    return agent.run_worker(master)
