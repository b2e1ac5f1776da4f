"""The alerts and detection-state contract (useraudit.store.alerts), on both backends.

Each test runs on the real OpenSearch node and on a SQLite file.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from useraudit.store.alerts import (
    MAX_EVENT_IDS,
    NEW,
    Alert,
    DetectionStore,
    alert_id,
    detection_store,
)
from useraudit.store.base import Store, StoreError


@pytest.fixture
def alerts(store: Store) -> Iterator[DetectionStore]:
    ds = detection_store(store)
    ds.install()
    try:
        yield ds
    finally:
        uninstall = getattr(ds, "uninstall", None)
        if uninstall is not None:
            uninstall()
        ds.close()


def make(
    account: str = "acme",
    subject: str = "u-alice",
    ids: list[str] | None = None,
    at: str = "2026-03-02T10:00:00.000Z",
    window: int = 1,
) -> Alert:
    return Alert(
        id=alert_id(account, "brute_force", subject, window),
        account=account,
        rule="brute_force",
        severity="medium",
        subject=subject,
        title="Repeated failed sign-ins",
        first_seen=at,
        last_seen=at,
        event_ids=ids if ids is not None else ["e1", "e2"],
        user_id=subject,
        details={"failures": 2},
    )


def test_alert_ids_are_stable_and_distinct() -> None:
    """Same rule, account, subject and window: same id; any of them different: another."""
    a = alert_id("acme", "r", "s", 7)
    assert a == alert_id("acme", "r", "s", 7)
    assert (
        len(
            {
                a,
                alert_id("globex", "r", "s", 7),
                alert_id("acme", "q", "s", 7),
                alert_id("acme", "r", "t", 7),
                alert_id("acme", "r", "s", 8),
            }
        )
        == 5
    )


def test_upsert_creates_merges_and_ignores_replays(alerts: DetectionStore) -> None:
    """A new id is created; new events merge (count, ids, times); replays change nothing."""
    assert alerts.upsert([make()]) == ["created"]
    assert alerts.upsert([make(ids=["e2", "e3"], at="2026-03-02T10:05:00.000Z")]) == ["updated"]
    assert alerts.upsert([make(ids=["e1", "e3"])]) == ["unchanged"]
    alerts.refresh()
    (stored,) = alerts.list_alerts("acme")
    assert stored.count == 3 and stored.event_ids == ["e1", "e2", "e3"]
    assert (stored.first_seen, stored.last_seen) == (
        "2026-03-02T10:00:00.000Z",
        "2026-03-02T10:05:00.000Z",
    )
    assert stored.status == "open" and stored.details == {"failures": 2}


def test_a_second_writer_merges_into_the_alert_the_first_stored(
    store: Store, alerts: DetectionStore
) -> None:
    """Another indexer, or this one after a restart (a fresh DetectionStore), meets
    alerts stored before it: its events merge into them, a replay changes nothing,
    and an alert new to both is created."""
    assert alerts.upsert([make()]) == ["created"]
    other = detection_store(store)
    try:
        assert other.upsert([make(ids=["e1", "e2"])]) == ["unchanged"]
        results, conflicts, _saved = other.write(
            [make(ids=["e2", "e3"], at="2026-03-02T10:05:00.000Z"), make(subject="u-bob")],
            [("acme", "user:u-bob", {"a": [[1, "e9", None]]}, NEW)],
        )
        assert results == ["updated", "created"] and conflicts == []
    finally:
        other.close()
    stored = alerts.get("acme", make().id)
    assert stored is not None
    assert stored.event_ids == ["e1", "e2", "e3"] and stored.count == 3
    assert stored.last_seen == "2026-03-02T10:05:00.000Z"
    assert alerts.upsert([make(subject="u-bob", ids=["e2", "e4"])]) == ["updated"]
    bob = alerts.get("acme", make(subject="u-bob").id)
    assert bob is not None and bob.event_ids == ["e1", "e2", "e4"] and bob.count == 3


def test_event_ids_are_capped_and_the_count_goes_on(alerts: DetectionStore) -> None:
    """Past MAX_EVENT_IDS ids the alert keeps the first ones and counts the rest."""
    alerts.upsert([make(ids=[f"e{i}" for i in range(MAX_EVENT_IDS - 1)])])
    alerts.upsert([make(ids=["x1", "x2", "x3"])])
    alerts.refresh()
    (stored,) = alerts.list_alerts("acme")
    assert len(stored.event_ids) == MAX_EVENT_IDS and stored.count == MAX_EVENT_IDS + 2


def test_alerts_are_scoped_by_account(alerts: DetectionStore) -> None:
    """acme never sees globex's alert, by list or by id."""
    theirs = make("globex")
    alerts.upsert([make(), theirs])
    alerts.refresh()
    assert [a.account for a in alerts.list_alerts("acme")] == ["acme"]
    assert alerts.get("acme", theirs.id) is None
    assert alerts.get("globex", theirs.id) is not None


def test_list_newest_first_and_by_status(alerts: DetectionStore) -> None:
    """list() is by last_seen, newest first, and filters on status."""
    old = make(subject="u-a", at="2026-03-01T00:00:00.000Z")
    new = make(subject="u-b", at="2026-03-03T00:00:00.000Z")
    alerts.upsert([old, new])
    alerts.set_status("acme", old.id, "acknowledged", "admin", "2026-03-04T00:00:00.000Z")
    alerts.refresh()
    assert [a.subject for a in alerts.list_alerts("acme")] == ["u-b", "u-a"]
    assert [a.subject for a in alerts.list_alerts("acme", statuses=("open",))] == ["u-b"]


def test_status_changes_are_recorded_and_new_events_reopen(alerts: DetectionStore) -> None:
    """open → acknowledged → resolved records who and when; new events reopen; replays do not."""
    alerts.upsert([make()])
    a = make()
    alerts.set_status("acme", a.id, "acknowledged", "anna", "2026-03-02T11:00:00.000Z")
    done = alerts.set_status("acme", a.id, "resolved", "boris", "2026-03-02T12:00:00.000Z")
    assert (done.status, done.status_by, done.status_at) == (
        "resolved",
        "boris",
        "2026-03-02T12:00:00.000Z",
    )
    assert [h["status"] for h in done.history] == ["acknowledged", "resolved"]
    alerts.upsert([make()])
    assert alerts.get("acme", a.id).status == "resolved"  # type: ignore[union-attr]
    alerts.upsert([make(ids=["e9"], at="2026-03-02T12:30:00.000Z")])
    again = alerts.get("acme", a.id)
    assert again is not None and again.status == "open"
    assert again.history[-1] == {
        "status": "open",
        "by": "detection",
        "at": "2026-03-02T12:30:00.000Z",
    }


def test_status_change_refuses_unknown_states_and_alerts(alerts: DetectionStore) -> None:
    """A made-up status is a StoreError; an alert of another account is a KeyError."""
    theirs = make("globex")
    alerts.upsert([make(), theirs])
    with pytest.raises(StoreError, match="must be one of"):
        alerts.set_status("acme", make().id, "deleted", "x", "2026-03-02T11:00:00.000Z")
    with pytest.raises(KeyError):
        alerts.set_status("acme", theirs.id, "resolved", "x", "2026-03-02T11:00:00.000Z")


def test_notification_outbox(alerts: DetectionStore) -> None:
    """New alerts wait in the outbox until marked notified; merging does not put them back."""
    a, b = make(subject="u-a"), make(subject="u-b")
    alerts.upsert([a, b])
    alerts.refresh()
    assert {x.id for x in alerts.pending_notifications()} == {a.id, b.id}
    alerts.mark_notified([a])
    alerts.refresh()
    assert [x.id for x in alerts.pending_notifications()] == [b.id]
    alerts.upsert([make(subject="u-a", ids=["e7"])])
    alerts.refresh()
    assert [x.id for x in alerts.pending_notifications()] == [b.id]


def test_state_compare_and_set(alerts: DetectionStore) -> None:
    """A save from a stale version is refused and named; a reload sees the winner."""
    key = ("acme", "fail:user:u-alice")
    loaded = alerts.load_state([key])
    assert loaded[key] == ({}, NEW)
    assert alerts.save_state([(*key, {"a": [[1, "e1", None]]}, NEW)]) == []
    assert alerts.save_state([(*key, {"b": [[2, "e2", None]]}, NEW)]) == [key]
    value, version = alerts.load_state([key])[key]
    assert value == {"a": [[1, "e1", None]]}
    assert alerts.save_state([(*key, {"c": []}, version)]) == []
    assert alerts.save_state([(*key, {"d": []}, version)]) == [key]
    assert alerts.load_state([key])[key][0] == {"c": []}


def test_state_is_per_account(alerts: DetectionStore) -> None:
    """The same key in two accounts is two values."""
    alerts.save_state(
        [("acme", "k", {"x": [[1, "a", None]]}, NEW), ("globex", "k", {"y": [[1, "b", None]]}, NEW)]
    )
    got = alerts.load_state([("acme", "k"), ("globex", "k")])
    assert got[("acme", "k")][0] == {"x": [[1, "a", None]]}
    assert got[("globex", "k")][0] == {"y": [[1, "b", None]]}


def test_saved_versions_let_the_next_save_skip_the_read(alerts: DetectionStore) -> None:
    """save_state_versions names each saved key's new version: saving from it succeeds,
    saving from the one before is refused."""
    key = ("acme", "user:u-bob")
    first = {"a": [[1, "e1", None]]}
    conflicts, saved = alerts.save_state_versions([(*key, first, NEW)])
    assert conflicts == [] and saved[key][0] == first
    conflicts, again = alerts.save_state_versions([(*key, {"b": [[2, "e2", None]]}, saved[key][1])])
    assert conflicts == [] and again[key][1] != saved[key][1]
    assert alerts.save_state_versions([(*key, {"c": []}, saved[key][1])]) == ([key], {})
    assert alerts.load_state([key])[key] == again[key]


def test_write_stores_alerts_and_state_together(alerts: DetectionStore) -> None:
    """write() = upsert + save_state_versions in one store write: the alerts' results,
    the state's conflicts and new versions, as the two calls would give them."""
    key, other = ("acme", "user:u-carol"), ("acme", "user:u-dave")
    assert alerts.save_state([(*other, {"x": [[1, "e0", None]]}, NEW)]) == []
    first = make("acme", "u-carol", ["e1", "e2"])
    results, conflicts, saved = alerts.write(
        [first],
        [(*key, {"a": [[1, "e1", None]]}, NEW), (*other, {"y": [[2, "e2", None]]}, NEW)],
    )
    assert results == ["created"] and conflicts == [other]
    assert saved[key][0] == {"a": [[1, "e1", None]]}
    assert alerts.load_state([key])[key] == saved[key]
    assert alerts.load_state([other])[other][0] == {"x": [[1, "e0", None]]}
    got = alerts.get("acme", first.id)
    assert got is not None and got.event_ids == ["e1", "e2"]
    again = make("acme", "u-carol", ["e2", "e3"])
    results, conflicts, saved2 = alerts.write([again, first], [(*key, {"b": []}, saved[key][1])])
    assert results == ["updated", "unchanged"] and conflicts == []
    assert alerts.load_state([key])[key] == saved2[key]
    # Either side may be empty.
    assert alerts.write([], [(*key, {"c": []}, saved2[key][1])])[:2] == ([], [])
    assert alerts.write([first], []) == (["unchanged"], [], {})
