"""Typed records (`spaas.records`): table tests of each record model with good and bad values, and
the listing helpers against real etcd with malformed values and junk keys written where a SIG's
etcd user can write (hosts, apps) and where it cannot (SIG specs, tenants, builds)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from prometheus_client import REGISTRY

from spaas.etcd import EtcdStore
from spaas.keys import Keys
from spaas.model import AppState, BuildState, Phase
from spaas.records import (AppSpecRecord, AppStateRecord, BadRecord, BuildRecord, BuildStatus, HeartbeatRecord,
                           HostRecord, InvalidRecord, KillRecord, MemberRecord, SecretRecord, SigSpecRecord, SigStatus,
                           TenantRecord, UserTokenRecord, decode, read_all_apps, read_app, read_apps, read_hosts,
                           read_members, read_sigs, read_tenants)
from spaas.store import Entry

SPEC = {"spec": {"name": "etl", "spark_version": "3.5.9"}, "generation": 1}
HOST = {"role": "worker", "index": 0, "ip": "10.0.0.5", "config_hash": "abc", "ready": True,
        "ports": {"spark": 7078, "ui": 8081}}
APP = {"request": {"file": "job.py"}, "submitter": "alice", "submitted_at": 1.0}


def entry(value: dict[str, Any], key: str = "/p/x", error: str = "") -> Entry:
    return Entry(key=key, value=value, mod_revision=1, create_revision=1, error=error)


GOOD = [
    (SigSpecRecord, SPEC),
    (SigSpecRecord, dict(SPEC, deleting=True, created_at=1.5, future_field="kept")),
    (BuildStatus, {"generation": 2, "state": "SUCCEEDED", "key": "k", "artifact": "/a"}),
    (BuildStatus, {"state": "BUILDING"}),
    (SigStatus, {"phase": "READY", "workers": {"desired": 2, "ready": 2, "members": [0, 1]}}),
    (SigStatus, {"phase": "DEPLOYING", "workers": {"lost": {"1": 12.5}}}),
    (BuildRecord, {"state": "FAILED", "message": "pip said no"}),
    (HostRecord, HOST),
    (HostRecord, {"role": "master", "ip": "10.0.0.4", "spark_url": "spark://10.0.0.4:7077"}),
    (AppSpecRecord, APP),
    (AppSpecRecord, {"request": {"file": "j.py", "numExecutors": 4, "conf": {"spark.executor.cores": "2"}}}),
    (AppSpecRecord, dict(APP, session={"kind": "pyspark", "heartbeatTimeoutInSecond": 60, "idle_timeout_s": 60})),
    (AppSpecRecord, dict(APP, session={"kind": "sql", "idle_timeout_s": 3600})),
    (HeartbeatRecord, {"at": 1700000000.5}),
    (AppStateRecord, {"state": "RUNNING", "agent": "m-0", "spark_app_id": "app-1"}),
    (KillRecord, {"requested_at": 3.0, "by": "alice"}),
    (KillRecord, {}),
    (TenantRecord, {"name": "acme", "quota": {"cores": 8}}),
    (MemberRecord, {"roles": ["user", "sig_configure"]}),
    (UserTokenRecord, {"id": "i", "kind": "api", "user": "u", "created_at": 1, "expires_at": 2, "hash": "h"}),
    (SecretRecord, {"secret": "x" * 43}),
]


@pytest.mark.parametrize(("model", "value"), GOOD, ids=[f"{m.__name__}-{i}" for i, (m, _) in enumerate(GOOD)])
def test_good_values_round_trip(model: type, value: dict[str, Any]) -> None:
    record = model.from_entry(entry(value))
    assert record.entry.key == "/p/x"
    again = model.from_value("/p/x", record.to_value())
    assert again.to_value() == record.to_value()


BAD = [
    (SigSpecRecord, {"spec": {"name": "etl"}, "generation": 1}, "spec.spark_version"),
    (SigSpecRecord, dict(SPEC, generation="two"), "generation"),
    (SigSpecRecord, dict(SPEC, generation=0), "generation"),
    (SigSpecRecord, {"generation": 1}, "spec"),
    (SigSpecRecord, {"spec": dict(SPEC["spec"], spark_conf={"spark.executor.cores": "x"}), "generation": 1},
     "spark.executor.cores"),
    (BuildStatus, {"generation": 1, "state": "DONE"}, "state"),
    (BuildStatus, {"generation": "x", "state": "SUCCEEDED"}, "generation"),
    (SigStatus, {"phase": "SLEEPING"}, "phase"),
    (SigStatus, {"phase": "READY", "workers": {"members": "all"}}, "workers.members"),
    (SigStatus, {"phase": "READY", "workers": {"desired": 10**12}}, "workers.desired"),
    (BuildRecord, {"artifact": "/a"}, "state"),
    (HostRecord, {k: v for k, v in HOST.items() if k != "ip"}, "ip"),
    (HostRecord, dict(HOST, role="boss"), "role"),
    (HostRecord, dict(HOST, ports={"spark": "seven"}), "ports.spark"),
    (HostRecord, dict(HOST, index=-1), "index"),
    (AppSpecRecord, {"submitter": "alice"}, "request"),
    (AppSpecRecord, {"request": {"file": "j.py", "conf": {"spark.executor.cores": "x"}}}, "spark.executor.cores"),
    (AppSpecRecord, {"request": {"file": "j.py", "numExecutors": 10**12}}, "numExecutors"),
    (AppSpecRecord, {"request": {"file": "j.py", "conf": {"spark.cores.max": "9" * 20}}}, "spark.cores.max"),
    (AppSpecRecord, {"request": {"file": "j.py", "executorCores": "many"}}, "executorCores"),
    (AppSpecRecord, dict(APP, session={"idle_timeout_s": 60}), "session.kind"),
    (AppSpecRecord, dict(APP, session={"kind": "pyspark", "idle_timeout_s": -1}), "session.idle_timeout_s"),
    (AppSpecRecord, dict(APP, session="pyspark"), "session"),
    (HeartbeatRecord, {"at": "now"}, "at"),
    (HeartbeatRecord, {}, "at"),
    (AppStateRecord, {"state": "DANCING"}, "state"),
    (AppStateRecord, {"state": "FAILED", "exit_code": "bad"}, "exit_code"),
    (KillRecord, {"requested_at": "yesterday"}, "requested_at"),
    (TenantRecord, {"name": "Not A Name"}, "name"),
    (TenantRecord, {"name": "acme", "quota": {"cores": -1}}, "quota.cores"),
    (MemberRecord, {"roles": ["emperor"]}, "roles"),
    (MemberRecord, {}, "roles"),
    (UserTokenRecord, {"id": "i", "kind": "api", "user": "u"}, "created_at"),
    (SecretRecord, {"secret": ""}, "secret"),
]


@pytest.mark.parametrize(("model", "value", "field"), BAD, ids=[f"{m.__name__}-{f}" for m, _, f in BAD])
def test_bad_values_name_the_key_and_the_field(model: type, value: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        model.from_entry(entry(value, key="/p/bad"))
    assert caught.value.key == "/p/bad" and caught.value.family == model.family
    assert field in caught.value.reason


def test_undecodable_values_are_invalid_records() -> None:
    with pytest.raises(InvalidRecord, match="not JSON"):
        HostRecord.from_entry(entry({}, error="not JSON (JSONDecodeError)"))


def test_defaults_live_in_the_model_once() -> None:
    spec = SigSpecRecord.from_value("/k", SPEC)
    assert (spec.spec.resources.cpu, spec.spec.scaling.min_workers, spec.deleting) == (2, 1, False)
    assert SigStatus.from_value("/k", {"phase": "READY"}).workers.members is None
    assert HostRecord.from_value("/k", {"role": "master", "ip": "1.2.3.4"}).ready is False
    assert AppStateRecord.from_value("/k", {"state": "STARTING"}).state == AppState.STARTING
    assert BuildStatus.from_value("/k", {"state": "FAILED"}).state == BuildState.FAILED
    assert SigStatus.from_value("/k", {"phase": "FAILED"}).phase == Phase.FAILED


# -- listings against real etcd -------------------------------------------------------------------

def put_raw(store: EtcdStore, key: str, raw: bytes) -> None:
    """Write bytes that are not what the platform writes (as tenant code or a hand edit could)."""
    store.call("/v3/kv/put", {"key": base64.b64encode(key.encode()).decode(),
                              "value": base64.b64encode(raw).decode()})


def bad_count(family: str) -> float:
    return REGISTRY.get_sample_value("spaas_bad_records_total", {"family": family}) or 0.0


def test_store_lists_past_values_that_are_not_json(store: EtcdStore, keys: Keys) -> None:
    store.put(keys.host("a", "s", "a-s-worker-0"), HOST)
    put_raw(store, keys.host("a", "s", "a-s-worker-1"), b"not json")
    put_raw(store, keys.host("a", "s", "a-s-worker-2"), b"[1, 2]")
    put_raw(store, keys.host("a", "s", "a-s-worker-3"), b"\xff\xfe")
    entries = store.list(keys.hosts("a", "s"))
    assert [bool(e.error) for e in entries] == [False, True, True, True]
    assert all(e.value == {} for e in entries[1:])


def test_read_hosts_keeps_good_records_and_reports_each_bad_one_once(store: EtcdStore, keys: Keys) -> None:
    store.put(keys.host("a", "s", "a-s-worker-0"), HOST)
    store.put(keys.host("b", "s", "b-s-master-0"), {"role": "master", "ip": "10.0.1.1", "ready": True})
    put_raw(store, keys.host("a", "s", "a-s-worker-1"), b"not json")
    store.put(keys.host("a", "s", "a-s-worker-2"), {"role": "worker"})  # no ip
    store.put(keys.hosts("a", "s") + "deeper/junk", HOST)               # outside the layout
    before = bad_count("host")
    listing = read_hosts(store, keys)
    assert sorted(h.host for h in listing) == ["a-s-worker-0", "b-s-master-0"]
    assert sorted(b.key.rsplit("/", 1)[1] for b in listing.bad) == ["a-s-worker-1", "a-s-worker-2", "junk"]
    assert bad_count("host") == before + 3
    read_hosts(store, keys)
    assert bad_count("host") == before + 3, "each key revision is reported once"
    assert [h.host for h in read_hosts(store, keys, "b", "s")] == ["b-s-master-0"]


def test_read_sigs_isolates_a_bad_spec_and_junk_keys(store: EtcdStore, keys: Keys) -> None:
    store.put(keys.sig_spec("a", "good"), dict(SPEC, spec=dict(SPEC["spec"], name="good")))
    store.put(keys.sig_build("a", "good"), {"generation": 1, "state": "SUCCEEDED", "key": "k", "artifact": "/a"})
    put_raw(store, keys.sig_status("a", "good"), b"garbage")
    store.put(keys.sig_spec("a", "typed"), {"spec": {"name": "typed", "spark_version": 3}, "generation": "1"})
    store.put(keys.sig_spec("b", "other"), dict(SPEC, spec=dict(SPEC["spec"], name="other")))
    store.put(keys.sig("a", "good") + "garbage", {"x": 1})
    store.put(keys.sigs("a") + "stray", {"x": 1})
    listing = read_sigs(store, keys)
    by = {(r.tenant, r.sig): r for r in listing}
    assert sorted(by) == [("a", "good"), ("a", "typed"), ("b", "other")]
    good = by[("a", "good")]
    assert good.spec is not None and good.build is not None and good.status is None
    assert sorted(b.key.rsplit("/", 1)[1] for b in good.bad) == ["garbage", "status"]
    assert good.invalid is None and "status" in good.entries
    typed = by[("a", "typed")]
    assert typed.spec is None and typed.invalid is not None and "spec.spark_version" in typed.invalid.reason
    assert [b.key for b in listing.bad] == [keys.sigs("a") + "stray"]
    assert [r.sig for r in read_sigs(store, keys, "a")] == ["good", "typed"]


def test_read_apps_fails_only_the_bad_application(store: EtcdStore, keys: Keys) -> None:
    store.put(keys.app_spec("a", "s", "001"), APP)
    store.put(keys.app_spec("a", "s", "002"), {"request": {"file": "j.py", "conf": {"spark.executor.cores": "x"}}})
    store.put(keys.app_spec("a", "s", "003"), APP)
    put_raw(store, keys.app_state("a", "s", "003"), b"not json")
    store.put(keys.app_spec("a", "s", "004"), APP)
    put_raw(store, keys.app_kill("a", "s", "004"), b"?")
    put_raw(store, keys.apps("a", "s") + "x", b"no spec")
    store.put(keys.app("a", "s", "005") + "garbage", {})
    store.put(keys.apps("a", "s") + "../../etc/spec", APP)
    store.put(keys.app_spec("b", "s", "009"), APP)
    listing = read_apps(store, keys, "a", "s")
    by = {r.app_id: r for r in listing}
    assert sorted(by) == ["001", "002", "003", "004"]
    assert by["001"].invalid is None and by["001"].spec.request.file == "job.py"
    assert "spark.executor.cores" in by["002"].invalid.reason and by["002"].spec is None
    assert by["003"].spec is not None and by["003"].invalid.key.endswith("/state")
    assert by["004"].invalid is None and by["004"].kill is True, "a kill key counts whatever its value"
    assert len(listing.bad) == 3
    every = read_all_apps(store, keys)
    assert {(r.tenant, r.sig, r.app_id) for r in every} >= {("a", "s", "001"), ("b", "s", "009")}


def test_tenants_and_members_skip_what_they_cannot_read(store: EtcdStore, keys: Keys) -> None:
    store.put(keys.tenant("acme"), {"name": "acme"})
    put_raw(store, keys.tenant("broken"), b"{not json")
    store.put(keys.tenant("liar"), {"name": "acme"})
    store.put(keys.member("acme", "user", "alice"), {"roles": ["user"]})
    store.put(keys.member("acme", "user", "mallory"), {"roles": "cluster_admin"})
    tenants = read_tenants(store, keys)
    assert [t.name for t in tenants] == ["acme"] and len(tenants.bad) == 2
    members = read_members(store, keys.members("acme"))
    assert [rest for rest, _ in members] == ["user/alice"] and len(members.bad) == 1


def test_decode_returns_the_bad_record_with_its_entry() -> None:
    bad = decode(HostRecord, entry({"role": "worker"}, key="/p/hosts/t/s/h"))
    assert isinstance(bad, BadRecord) and bad.entry is not None and bad.message.startswith("/p/hosts/t/s/h: ")


# Keys below an application: a Livy session's heartbeat and statements belong to the layout (they
# must not make a session show as InvalidRecord); anything else under an application is junk.
SESSION = dict(APP, session={"kind": "pyspark", "idle_timeout_s": 60})
APP_KEYS = [
    ("heartbeat", {"at": 5.0}, True),
    ("stmts/00000000/code", {"code": "1 + 1", "kind": None}, True),
    ("stmts/00000000/cancel", {"requested_at": 2.0}, True),
    ("stmts/00000000/result", {"state": "available", "output": {"status": "ok"}}, True),
    ("stmts/00000123/code", {"code": "x"}, True),
    ("session", {"kind": "pyspark"}, False),
    ("stmts/abc/code", {"code": "x"}, False),
    ("stmts/00000000/output", {}, False),
    ("stmts/00000000", {}, False),
    ("stmts/00000000/code/more", {}, False),
    ("stmts/../code", {}, False),
    ("heartbeats", {"at": 1.0}, False),
]


@pytest.mark.parametrize(("part", "value", "valid"), APP_KEYS, ids=[p for p, _, _ in APP_KEYS])
def test_session_keys_are_part_of_the_app_layout(store: EtcdStore, keys: Keys, part: str, value: dict[str, Any],
                                                  valid: bool) -> None:
    store.put(keys.app_spec("a", "s", "001"), SESSION)
    store.put(keys.app("a", "s", "001") + part, value)
    for listing in (read_apps(store, keys, "a", "s"), read_all_apps(store, keys)):
        (rec,) = [r for r in listing if r.app_id == "001"]
        assert rec.invalid is None and not rec.bad
        assert rec.spec is not None and rec.spec.session is not None and rec.spec.session.kind == "pyspark"
        if valid:
            assert not listing.bad and part in rec.entries
            assert (part in rec.statements) == part.startswith("stmts/")
        else:
            assert len(listing.bad) == 1 and "outside the layout" in listing.bad[0].reason
            assert part not in rec.entries
    rec = read_app(store, keys, "a", "s", "001")
    assert rec is not None and rec.invalid is None
    if part == "heartbeat":
        assert rec.heartbeat is not None and rec.heartbeat.at == 5.0


def test_a_bad_heartbeat_or_statement_does_not_invalidate_the_session(store: EtcdStore, keys: Keys) -> None:
    store.put(keys.app_spec("a", "s", "001"), SESSION)
    put_raw(store, keys.app_heartbeat("a", "s", "001"), b"not json")
    put_raw(store, keys.app_stmt("a", "s", "001", 0, "result"), b"not json")
    rec = read_app(store, keys, "a", "s", "001")
    assert rec is not None and rec.invalid is None and rec.heartbeat is None
    assert sorted(b.key.split("/001/")[1] for b in rec.bad) == ["heartbeat", "stmts/00000000/result"]
