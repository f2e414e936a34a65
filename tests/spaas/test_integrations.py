"""The queue contract's pure parts (spaas/integrations.py) and the event publisher's decision."""

from __future__ import annotations

import json
from typing import Any

import pytest

from spaas import integrations
from spaas.integrations import decode_message, parse_request

from services.api.integrations.events import Observed, changes

OK = {"version": 1, "type": "app.submit", "token": "t0k", "tenant": "acme", "sig": "s1", "body": {"file": "f.py"}}


@pytest.mark.parametrize(("data", "field", "code"), [
    ("x", "body", "BadMessage"),
    ({**OK, "version": 2}, "version", "UnsupportedVersion"),
    ({**OK, "version": True}, "version", "UnsupportedVersion"),
    ({**OK, "type": "app.explode"}, "type", "BadMessage"),
    ({**OK, "extra": 1}, "extra", "BadMessage"),
    ({**OK, "token": ""}, "token", "Unauthenticated"),
    ({k: v for k, v in OK.items() if k != "token"}, "token", "Unauthenticated"),
    ({**OK, "tenant": "Acme"}, "tenant", "BadMessage"),
    ({**OK, "sig": "../x"}, "sig", "BadMessage"),
    ({**OK, "body": []}, "body", "BadMessage"),
    ({**OK, "type": "app.kill", "id": "a/b"}, "id", "BadMessage"),
    ({**OK, "idempotency_key": "has space"}, "idempotency_key", "BadMessage"),
])
def test_bad_requests_name_their_field(data: Any, field: str, code: str) -> None:
    with pytest.raises(integrations.BadRequestMessage) as exc:
        parse_request(data)
    assert (exc.value.field, exc.value.code) == (field, code)


def test_a_request_never_shows_its_token() -> None:
    request = parse_request(OK)
    assert request.tenant == "acme" and request.body == {"file": "f.py"} and "t0k" not in repr(request)


def test_celery_and_plain_messages_decode_alike() -> None:
    plain, _ = decode_message(json.dumps(OK).encode(), {})
    kwargs = {k: v for k, v in OK.items() if k != "type"}
    task, _ = decode_message(json.dumps([[], kwargs, {}]), {"task": "spaas.app.submit", "id": "abc"})
    assert plain == task
    _, problem = decode_message(json.dumps([["x"], kwargs, {}]), {"task": "spaas.app.submit"})
    assert problem is not None and problem.field == "args"
    _, problem = decode_message(json.dumps([[], kwargs, {}]), {"task": "other.app.submit"})
    assert problem is not None and problem.field == "task"
    _, problem = decode_message(b"\xff{", {})
    assert problem is not None and problem.field == "body"


@pytest.mark.parametrize(("reply_to", "ok"), [
    ("spaas.replies.acme.pipe.1", True), ("spaas.replies.beta.pipe.x.y", True), ("spaas.replies.acme.pipe.", False),
    ("spaas.replies.acme.pipe.*", False), ("spaas.apps.acme.s1", False), ("spaas.scaler", False),
    ("spaas.replies.Acme.pipe.1", False), ("spaas.replies.acme.pipe.a\x06\x16b", False),
])
def test_replies_go_only_to_reply_queues(reply_to: str, ok: bool) -> None:
    assert integrations.reply_allowed(reply_to) is ok


@pytest.mark.parametrize(("patterns", "ok"), [
    (None, True), (["app.acme.#"], True), (["app.acme.s1.FINISHED", "sig.acme.*.READY"], True),
    (["app.beta.#"], False), (["#"], False), (["app.acme"], False), (["app.acme.s1.x.y"], False),
    (["app.acme.s[1]"], False), ([], False), ("app.acme.#", False),
])
def test_event_patterns_stay_inside_the_tenant(patterns: Any, ok: bool) -> None:
    if ok:
        assert integrations.check_patterns("acme", patterns)
    else:
        with pytest.raises(integrations.BadRequestMessage):
            integrations.check_patterns("acme", patterns)


def test_acl_reaches_only_the_integrations_keys() -> None:
    rules = integrations.acl_rules("acme", "pipe", "spaas.integrations.requests")
    keys = [r for r in rules if r.startswith("~")]
    assert keys == ["~spaas.lifecycle.acme.pipe", "~spaas.lifecycle.acme.pipe\x06\x16*", "~spaas.replies.acme.pipe.*"]
    assert rules[:4] == ("resetkeys", "resetchannels", "clearselectors", "-@all")
    assert "(~spaas.integrations.requests ~spaas.integrations.requests\x06\x16* +lpush)" in rules


def obs(state: str, revision: int, app_id: str = "a1") -> Observed:
    return Observed("app", "acme", "s1", app_id, state, None, revision)


@pytest.mark.parametrize(("published", "seen", "cursor", "expected"), [
    ({}, [obs("RUNNING", 5)], 10, []),  # older than the cursor: already published before a restart
    ({}, [obs("RUNNING", 11)], 10, ["RUNNING"]),  # changed after it
    ({("app", "acme", "s1", "a1", ): "RUNNING"}, [obs("RUNNING", 12)], 10, []),
    ({("app", "acme", "s1", "a1"): "RUNNING"}, [obs("FINISHED", 13)], 10, ["FINISHED"]),
    ({("app", "acme", "s1", "a1"): "RUNNING"}, [obs("FINISHED", 3)], 10, ["FINISHED"]),  # known: states compare
])
def test_changes_publish_each_state_once(published: dict[Any, str], seen: list[Observed], cursor: int,
                                         expected: list[str]) -> None:
    assert [o.state for o in changes(published, seen, cursor)] == expected
