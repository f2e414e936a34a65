"""The agent's pooled state reads its claim: only a complete ("claimed") claim that names this
container moves it to a SIG; a claim still being made (secret not yet adopted) does not."""

from __future__ import annotations

from types import SimpleNamespace

from spaas.etcd import EtcdStore
from spaas.keys import Keys

from services.agent.pool import claim_of, pool_secret


def test_only_a_complete_claim_naming_this_container_counts(store: EtcdStore, keys: Keys) -> None:
    agent = SimpleNamespace(store=store, keys=keys, s=SimpleNamespace(pool="pool-359-ab", container="pool-359-ab-worker-0"))
    assert claim_of(agent) is None  # type: ignore[arg-type]
    claim = {"tenant": "acme", "sig": "etl", "state": "claiming", "generation": 2, "config_hash": "h", "artifact": "/a",
             "containers": {"pool-359-ab-worker-0": {"name": "acme-etl-worker-0", "index": 0, "role": "worker"}}}
    store.put(keys.pool_claim("pool-359-ab"), claim)
    assert claim_of(agent) is None  # type: ignore[arg-type]
    store.put(keys.pool_claim("pool-359-ab"), dict(claim, state="claimed"))
    mine = claim_of(agent)  # type: ignore[arg-type]
    assert mine is not None and (mine["tenant"], mine["sig"], mine["name"]) == ("acme", "etl", "acme-etl-worker-0")
    other = SimpleNamespace(store=store, keys=keys, s=SimpleNamespace(pool="pool-359-ab", container="pool-359-ab-worker-1"))
    assert claim_of(other) is None  # type: ignore[arg-type]
    assert pool_secret(agent) is None  # type: ignore[arg-type]
    store.put(keys.pool_secret("pool-359-ab"), {"secret": "s3"})
    assert pool_secret(agent) == "s3"  # type: ignore[arg-type]
