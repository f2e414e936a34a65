"""The process runtime's warm-pool part: a pooled container is not a SIG's until adopted; once
adopted it is only the SIG's (never listed as pooled again), and the SIG's cleanup removes it."""

from __future__ import annotations

import time
from pathlib import Path

from spaas.runtimes.base import ContainerSpec
from spaas.runtimes.process import ProcessRuntime


def test_pooled_adopted_and_cleaned_up_with_its_sig(tmp_path: Path) -> None:
    agent = tmp_path / "agent"  # stands in for the agent's interpreter
    agent.write_text("#!/bin/sh\nexec sleep 120\n")
    agent.chmod(0o755)
    runtime = ProcessRuntime(tmp_path / "state", python=str(agent))
    pooled = ContainerSpec(name="pool-359-ab-master-0", tenant="", sig="pool-359-ab", role="master", index=0,
                           config_hash="", generation=0, artifact=str(tmp_path), env={"SPAAS_POOL": "pool-359-ab"})
    try:
        runtime.start(pooled)
        deadline = time.monotonic() + 10
        while not runtime.pooled() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [c.name for c in runtime.pooled()] == [pooled.name]
        assert runtime.list() == []  # counts for no tenant, never an orphan to sweep
        assert (tmp_path / "state" / "pool" / "pool-359-ab" / pooled.name).is_dir()

        runtime.adopt(pooled.name, ContainerSpec(name="acme-etl-master-0", tenant="acme", sig="etl", role="master",
                                                 index=0, config_hash="h1", generation=3, artifact=str(tmp_path)))
        assert runtime.pooled() == []
        [c] = runtime.list()
        assert (c.name, c.tenant, c.sig, c.config_hash, c.generation) == ("acme-etl-master-0", "acme", "etl", "h1", 3)
        assert set(runtime.addresses()) == {"acme-etl-master-0"}
        assert runtime.pids("acme", "etl")

        runtime.stop("acme-etl-master-0", grace_s=2)
        assert runtime.list() == [] and runtime.pooled() == []
        runtime.cleanup_sig("acme", "etl")
        assert not (tmp_path / "state" / "pool" / "pool-359-ab").exists()
        assert "pool-359-ab" not in (tmp_path / "state" / "runtime-aliases.json").read_text()
    finally:
        runtime.stop_all(grace_s=2)
