"""Detection state kept in memory between batches and saved when the indexer commits."""

from __future__ import annotations

from datetime import timedelta

from useraudit.detect import DetectionEngine
from useraudit.indexer.enrich import Enricher
from useraudit.store.sqlite.alerts import SQLiteDetectionStore

from .conftest import event


def failures(n: int, user: str = "alice", start: int = 0) -> list[dict]:
    return [
        event("user.signed_in", user, at=timedelta(seconds=start + i), outcome="failure")
        for i in range(n)
    ]


def test_state_is_saved_at_flush_not_per_batch(
    sqlite_alerts: SQLiteDetectionStore, enrich: Enricher
) -> None:
    """Batches share the in-memory state (the fifth failure alerts across three batches);
    the store holds it only once flush() ran, and a later batch saves from the known version."""
    engine = DetectionEngine(sqlite_alerts, write_behind=True)
    key = ("acme", "user:u-alice")
    docs = [enrich(r) for r in failures(5)]
    for batch in (docs[:2], docs[2:4], docs[4:]):
        engine.delivered(batch)
    assert [a.rule for a in sqlite_alerts.list_alerts("acme")] == ["brute_force"]
    assert sqlite_alerts.load_state([key])[key] == ({}, 0)  # not saved yet
    engine.flush()
    value, version = sqlite_alerts.load_state([key])[key]
    assert len([m for m in value if m.startswith("f:")]) == 5
    engine.delivered([enrich(r) for r in failures(1, start=10)])
    engine.flush()
    assert engine.stats.state_conflicts == 0
    assert sqlite_alerts.load_state([key])[key][1] == version + 1


def test_another_indexers_save_is_merged_at_flush(
    sqlite_alerts: SQLiteDetectionStore, enrich: Enricher
) -> None:
    """Two engines with state in memory save one key: the second save conflicts, merges,
    and the stored value holds both engines' failures; detection then sees all of them."""
    one = DetectionEngine(sqlite_alerts, write_behind=True)
    two = DetectionEngine(sqlite_alerts, write_behind=True)
    docs = [enrich(r) for r in failures(4)]
    one.delivered(docs[:2])
    two.delivered(docs[2:])
    one.flush()
    two.flush()
    assert two.stats.state_conflicts == 2  # the user key and the network key
    key = ("acme", "user:u-alice")
    value, _version = sqlite_alerts.load_state([key])[key]
    assert sorted(m for m in value if m.startswith("f:")) == sorted(
        f"f:{d['event.id']}" for d in docs
    )
    assert sqlite_alerts.list_alerts("acme") == []
    two.delivered([enrich(r) for r in failures(1, start=10)])  # the fifth, seen by two
    assert [a.rule for a in sqlite_alerts.list_alerts("acme")] == ["brute_force"]


def test_entries_another_indexer_saved_are_seen_once_the_copy_is_older_than_the_ttl(
    sqlite_alerts: SQLiteDetectionStore, enrich: Enricher
) -> None:
    """Two holds alice's key in memory; one saves four failures. With the TTL passed, two's
    next batch reads the key again, so the fifth failure (seen by two) alerts; a copy
    trusted for an hour would not have."""
    for ttl, alerted in ((0.0, ["brute_force"]), (3600.0, [])):
        store = sqlite_alerts
        account = f"acme-{int(ttl)}"
        one = DetectionEngine(store, write_behind=True, state_ttl=ttl)
        two = DetectionEngine(store, write_behind=True, state_ttl=ttl)
        early = enrich(event("user.signed_in", "alice", account=account))
        two.delivered([early])  # a success: two now holds the key
        two.flush()
        burst = [
            enrich(
                event(
                    "user.signed_in",
                    "alice",
                    at=timedelta(seconds=i),
                    outcome="failure",
                    account=account,
                )
            )
            for i in range(1, 6)
        ]
        one.delivered(burst[:4])
        one.flush()
        two.delivered(burst[4:])
        assert [a.rule for a in store.list_alerts(account)] == alerted, ttl


def test_a_background_engine_is_ready_only_once_every_batch_is_evaluated(
    sqlite_alerts: SQLiteDetectionStore, enrich: Enricher
) -> None:
    """ready() is what lets the indexer put a commit off instead of waiting: false while
    a batch handed over is not evaluated yet, true again once it is (flush() waits)."""
    engine = DetectionEngine(sqlite_alerts, background=True)
    try:
        assert engine.ready()
        with engine._lock:  # the worker cannot evaluate meanwhile
            engine.delivered([enrich(r) for r in failures(5)])
            assert not engine.ready()
        engine.flush()
        assert engine.ready()
        assert [a.rule for a in sqlite_alerts.list_alerts("acme")] == ["brute_force"]
    finally:
        engine.close()
