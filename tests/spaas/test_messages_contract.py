"""The message catalogue's contract (`spaas/messages.py`): every event survives a JSON round trip,
carries its type and version, and a consumer refuses what it cannot read (a newer version, an
unknown type, a malformed body) as `UndecodableMessage`, the one error its loop logs and skips."""

from __future__ import annotations

import json

import pytest

from spaas import messages as M

SAMPLES: list[M.Event] = [
    M.SigChanged("acme", "etl", generation=3),
    M.SigBuilt("acme", "etl", generation=3, build_key="ab12"),
    M.AppEvent("acme", "etl", app_id="app-1", action="kill", extra={"reason": "user"}),
    M.DemandChanged("acme", "etl", app_id="app-2"),
    M.HostChanged("acme", "etl", host="acme-etl-worker-0"),
]


def test_every_event_type_has_a_sample() -> None:
    assert sorted(type(e).type for e in SAMPLES) == sorted(M.EVENT_TYPES)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).type)
def test_round_trip(event: M.Event) -> None:
    body = event.to_json()
    data = json.loads(body)
    assert data["type"] == type(event).type and data["v"] == M.VERSION
    assert data["tenant"] == "acme" and data["sig"] == "etl"  # ids, not objects
    assert M.decode(body) == event
    assert M.decode(body.encode()) == event
    assert M.decode(data) == event


def test_routing_keys() -> None:
    assert M.SigChanged("t", "s").routing_key == "sig.changed"
    assert M.AppEvent("t", "s", app_id="a").routing_key == "app.t.s"
    assert M.consumer_queue(M.HostChanged("t", "s")) == M.SCALER_QUEUE
    with pytest.raises(ValueError):
        M.consumer_queue(M.SigChanged("t", "s"))  # not one a SIG container sends


def test_a_newer_version_is_refused() -> None:
    data = json.loads(M.SigChanged("acme", "etl", generation=1).to_json())
    data["v"] = M.VERSION + 1
    with pytest.raises(M.UndecodableMessage, match="newer"):
        M.decode(json.dumps(data))


def test_an_older_message_without_a_version_is_read() -> None:
    assert M.decode({"type": "sig.changed", "tenant": "t", "sig": "s"}) == M.SigChanged("t", "s")


@pytest.mark.parametrize("body", [
    "not json",
    "[]",
    json.dumps({"type": "sig.unknown", "v": 1, "tenant": "t", "sig": "s"}),
    json.dumps({"v": 1, "tenant": "t", "sig": "s"}),                       # no type
    json.dumps({"type": "sig.changed", "v": 1, "tenant": "t"}),           # a required id missing
    json.dumps({"type": "sig.changed", "v": 1, "tenant": "t", "sig": "s", "surprise": 1}),
    json.dumps({"type": "sig.changed", "v": "x", "tenant": "t", "sig": "s"}),
])
def test_malformed_messages_are_undecodable(body: str) -> None:
    with pytest.raises(M.UndecodableMessage):
        M.decode(body)
