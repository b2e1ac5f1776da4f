"""The integrity ledger's contract, and the canonical form surviving both stores.

Runs on the real OpenSearch node and on a SQLite file, like test_contract.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from useraudit.indexer.enrich import Enricher
from useraudit.integrity.canonical import canonical, event_hash, project
from useraudit.store.base import Store
from useraudit.store.ledger import Ledger, ledger_for

from .conftest import DATASET, write_all


@pytest.fixture
def ledger(store: Store) -> Iterator[Ledger]:
    led = ledger_for(store)
    try:
        yield led
    finally:
        led.drop()


def cp(account: str, seq: int, **extra: object) -> dict:
    return {"account": account, "seq": seq, "kind": "events", "leaves": [["e", "t", None, None]]}


def test_reading_an_empty_ledger_leaves_nothing_behind(store: Store) -> None:
    """prune and verify read the ledger of stores that never sealed: no index appears."""
    ledger = ledger_for(store)
    assert ledger.accounts() == [] and ledger.head("acme") == 0
    assert list(ledger.iterate()) == [] and ledger.get("acme", 1) is None
    if hasattr(store, "client"):
        assert not store.client.indices.exists(index=f"{store.prefix}-ledger")  # type: ignore[attr-defined]


def test_create_is_first_writer_wins(ledger: Ledger) -> None:
    assert ledger.create({**cp("acme", 1), "root": "first"})
    assert not ledger.create({**cp("acme", 1), "root": "second"})
    got = ledger.get("acme", 1)
    assert got is not None and got["root"] == "first"
    assert got["leaves"] == [["e", "t", None, None]]
    assert ledger.get("acme", 2) is None


def test_create_many_answers_each_checkpoint_on_its_own(ledger: Ledger) -> None:
    """One write for several accounts; a taken (account, seq) is refused, the others created."""
    assert ledger.create({**cp("globex", 1), "root": "theirs"})
    answers = ledger.create_many(
        [{**cp("acme", 1), "root": "a"}, {**cp("globex", 1), "root": "mine"}, cp("initech", 1)]
    )
    assert answers == [True, False, True]
    assert ledger.create_many([]) == []
    got = {a: ledger.get(a, 1) for a in ("acme", "globex", "initech")}
    assert got["acme"] is not None and got["acme"]["root"] == "a"
    assert got["globex"] is not None and got["globex"]["root"] == "theirs"
    assert got["initech"] is not None and got["initech"]["leaves"] == [["e", "t", None, None]]
    assert ledger.accounts() == ["acme", "globex", "initech"]


def test_head_iterate_and_accounts(ledger: Ledger) -> None:
    assert ledger.head("acme") == 0
    for account, seq in [("globex", 1), ("acme", 2), ("acme", 1), ("acme", 10), ("a/b", 1)]:
        assert ledger.create(cp(account, seq))
    assert ledger.head("acme") == 10
    assert ledger.head("a") == 0
    assert [(d["account"], d["seq"]) for d in ledger.iterate("acme")] == [
        ("acme", 1),
        ("acme", 2),
        ("acme", 10),
    ]
    assert [(d["account"], d["seq"]) for d in ledger.iterate()] == [
        ("a/b", 1),
        ("acme", 1),
        ("acme", 2),
        ("acme", 10),
        ("globex", 1),
    ]
    assert ledger.accounts() == ["a/b", "acme", "globex"]


def test_checkpoints_are_not_events(ledger: Ledger, store: Store) -> None:
    from useraudit.store.query import Query

    ledger.create(cp("acme", 1))
    store.refresh()
    assert store.count(Query("acme")) == 0
    assert "acme" not in store.accounts()


def test_stored_documents_keep_their_canonical_form(store: Store, enricher: Enricher) -> None:
    """What the indexer hashes before writing is what verify hashes after reading."""
    raws = [
        *DATASET,
        {
            "event.id": "odd-1",
            "@timestamp": "2026-03-01T10:00:00.123Z",
            "event.action": "custom_role.updated",
            "organization.id": "acme",
            "user.id": "u-1",
            "audit.params": {"n": 3, "nested": {"list": [1, "two", None, True]}, "é": "\u2028"},
            "http.response.status_code": 201,
            "source.address": "not an ip",
            "audit.comments": "tab\tand newline\n and \x01 control",
        },
    ]
    docs = [enricher(r) for r in raws]
    write_all(store, docs)
    stored = store.get([d["event.id"] for d in docs])
    for doc in docs:
        back = stored[doc["event.id"]]
        assert canonical(project(back)) == canonical(project(doc)), doc["event.id"]
        assert event_hash(back) == event_hash(doc)
