"""The API's demand signal: sized applications and Livy sessions that no master has claimed yet."""

from __future__ import annotations

from spaas.records import _apps
from spaas.store import Entry

from services.scaler.loop import pending_cores

P = "/spaas/apps/"


def e(key: str, value: dict | None = None) -> Entry:
    return Entry(key=P + key, value=value or {}, mod_revision=1, create_revision=1)


def test_unclaimed_batches_and_sessions_count_claimed_and_killed_do_not() -> None:
    sized = {"request": {"file": "files/a.py", "numExecutors": 2, "executorCores": 2}}
    session = {"request": {"file": "livy-session", "conf": {"spark.cores.max": "3"}}, "session": {"kind": "pyspark", "idle_timeout_s": 600}}
    entries = [
        e("t/s/a1/spec", sized),                                    # waiting: 4 cores
        e("t/s/a2/spec", session), e("t/s/a2/heartbeat", {"at": 1}),  # a session a client already polls: 3
        e("t/s/a2/stmts/00000000/code", {"code": "1"}),
        e("t/s/a3/spec", sized), e("t/s/a3/state", {"state": "RUNNING"}),  # claimed: the master reports it
        e("t/s/a4/spec", sized), e("t/s/a4/kill", {}),              # killed before start
        e("u/s/b1/spec", {"request": {"file": "files/b.py"}}),     # unsized: 0
    ]
    listing = _apps(entries, P, 4)
    assert not listing.bad  # heartbeat and statement keys are part of the layout
    assert pending_cores(listing) == {("t", "s"): 7, ("u", "s"): 0}
