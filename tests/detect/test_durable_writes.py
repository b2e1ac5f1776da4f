"""Detection's SQLite writes wait for no disk per batch; flush() makes them durable.

A power cut cannot be staged in a test. What can fail here: the per-batch
write really commits without a sync and leaves its connection syncing every
commit again, sync() fsyncs the file's write-ahead log, and the engine's
flush() (which the indexer runs before moving spool positions) calls it
after its last write.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from useraudit.detect.engine import DetectionEngine
from useraudit.indexer.enrich import Enricher
from useraudit.store.alerts import NEW
from useraudit.store.sqlite.alerts import SQLiteDetectionStore

from .conftest import Harness, event

SYNCHRONOUS_FULL = 2


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The files os.fsync was called on (the real fsync still runs)."""
    paths: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    yield paths


def test_a_batch_write_commits_unsynced_then_the_connection_syncs_again(
    sqlite_alerts: SQLiteDetectionStore,
) -> None:
    con = sqlite_alerts._connections.current()
    seen: list[int] = []
    con.set_trace_callback(
        lambda sql: seen.append(-1) if sql.startswith("PRAGMA synchronous=NORMAL") else None
    )
    sqlite_alerts.write([], [("acme", "user:u-a", {"x": []}, NEW)])
    con.set_trace_callback(None)
    assert seen == [-1]  # the write asked for no sync
    assert con.execute("PRAGMA synchronous").fetchone()[0] == SYNCHRONOUS_FULL
    # Other writes on the same connection (an admin acknowledging) stay durable.
    assert sqlite_alerts.load_state([("acme", "user:u-a")])[("acme", "user:u-a")][0] == {"x": []}


def test_sync_fsyncs_the_write_ahead_log(
    sqlite_alerts: SQLiteDetectionStore, fsynced: list[str]
) -> None:
    sqlite_alerts.write([], [("acme", "user:u-a", {"x": []}, NEW)])
    fsynced.clear()
    sqlite_alerts.sync()
    assert fsynced == [str(sqlite_alerts.path) + "-wal"]


def test_sync_without_a_log_file_has_nothing_to_do(tmp_path: Path, fsynced: list[str]) -> None:
    store = SQLiteDetectionStore(tmp_path / "never-written.db")
    store.sync()
    assert fsynced == []


def test_a_sync_with_no_write_since_the_last_one_syncs_nothing(
    sqlite_alerts: SQLiteDetectionStore, fsynced: list[str]
) -> None:
    sqlite_alerts.write([], [("acme", "user:u-a", {"x": []}, NEW)])
    sqlite_alerts.sync()
    fsynced.clear()
    sqlite_alerts.sync()
    assert fsynced == []


def test_engine_flush_syncs_after_its_last_write(
    sqlite_alerts: SQLiteDetectionStore, enrich: Enricher, fsynced: list[str]
) -> None:
    harness = Harness(sqlite_alerts, enrich, background=True)
    engine: DetectionEngine = harness.engine
    try:
        harness.feed(*(event("user.signed_in", "bob", outcome="failure") for _ in range(3)))
        fsynced.clear()
        engine.flush()
        assert engine.stats.examined == 3  # the batch was evaluated, and its state written
        assert fsynced and fsynced[-1] == str(sqlite_alerts.path) + "-wal"
    finally:
        engine.close()
