"""spaas.memo.EntryMemo: a derived value is kept exactly while its entries are the same."""

from __future__ import annotations

import pytest

from spaas.memo import EntryMemo, same_entries
from spaas.store import Entry


def entry(key: str, value: dict[str, object], rev: int) -> Entry:
    return Entry(key=key, value=value, mod_revision=rev, create_revision=1)


def test_a_value_is_computed_once_while_its_entries_stay_the_same() -> None:
    memo: EntryMemo[int] = EntryMemo()
    calls: list[tuple[Entry, ...]] = []
    a, b = entry("/k/a", {"n": 1}, 2), entry("/k/b", {"n": 2}, 3)

    def total(entries: tuple[Entry, ...]) -> int:
        calls.append(entries)
        return sum(int(e.value["n"]) for e in entries)  # type: ignore[call-overload]

    assert memo.get("t", [a, b], total) == 3
    assert memo.get("t", [a, b], total) == 3
    # Equal entries read anew from etcd (other objects) are the same entries.
    assert memo.get("t", [entry("/k/a", {"n": 1}, 2), entry("/k/b", {"n": 2}, 3)], total) == 3
    assert len(calls) == 1 and memo.hits == 2


def test_a_changed_added_or_removed_entry_computes_again() -> None:
    memo: EntryMemo[list[str]] = EntryMemo()
    a, b = entry("/k/a", {}, 2), entry("/k/b", {}, 3)

    def keys(entries: tuple[Entry, ...]) -> list[str]:
        return [f"{e.key}@{e.mod_revision}" for e in entries]

    assert memo.get("t", [a, b], keys) == ["/k/a@2", "/k/b@3"]
    assert memo.get("t", [a, entry("/k/b", {}, 4)], keys) == ["/k/a@2", "/k/b@4"]   # changed
    assert memo.get("t", [a], keys) == ["/k/a@2"]                                  # one deleted
    assert memo.get("t", [a, b, entry("/k/c", {}, 5)], keys) == ["/k/a@2", "/k/b@3", "/k/c@5"]  # added
    assert memo.get("t", [], keys) == []                                            # all gone
    assert memo.hits == 0
    # Same revision, other value (another etcd): not the same entry.
    assert not same_entries([entry("/k/a", {"x": 1}, 2)], [entry("/k/a", {"x": 2}, 2)])


def test_errors_are_not_kept_and_idents_do_not_mix() -> None:
    memo: EntryMemo[str] = EntryMemo()
    a = entry("/k/a", {}, 2)

    def missing(entries: tuple[Entry, ...]) -> str:
        raise LookupError("not found")

    with pytest.raises(LookupError):
        memo.get("x", [a], missing)
    assert memo.get("x", [a], lambda es: "found") == "found"
    assert memo.get("y", [a], lambda es: "other") == "other"
    assert memo.get("x", [a], lambda es: "never") == "found"


def test_it_is_bounded() -> None:
    memo: EntryMemo[int] = EntryMemo(max_items=10)
    for i in range(25):
        memo.get(i, [entry(f"/k/{i}", {}, i + 1)], lambda es: 1)
    assert len(memo) <= 10
