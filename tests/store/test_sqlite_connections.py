"""The one per-thread connection helper behind the SQLite events, ledger and alerts stores."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

import pytest

from useraudit.store.ledger import ledger_for
from useraudit.store.sqlite import SQLiteStore
from useraudit.store.sqlite.alerts import SQLiteDetectionStore
from useraudit.store.sqlite.connections import ThreadConnections


def settings(con: sqlite3.Connection) -> tuple[str, int, int]:
    return (
        con.execute("PRAGMA journal_mode").fetchone()[0],
        con.execute("PRAGMA synchronous").fetchone()[0],
        con.execute("PRAGMA busy_timeout").fetchone()[0],
    )


def test_one_connection_per_thread_installed_once_closed_together(tmp_path: Path) -> None:
    installs: list[int] = []
    pool = ThreadConnections(
        tmp_path / "x.db",
        2500,
        lambda action: contextlib.nullcontext(),
        install=lambda con: installs.append(1),
    )
    mine = pool.current()
    assert pool.current() is mine
    theirs: list[sqlite3.Connection] = []
    worker = threading.Thread(target=lambda: theirs.append(pool.current()))
    worker.start()
    worker.join()
    assert theirs[0] is not mine
    assert installs == [1]
    assert settings(mine) == ("wal", 2, 2500)  # 2: synchronous=FULL
    with pool.write() as con:
        con.execute("CREATE TABLE t (x)")
    pool.close()
    for con in (mine, theirs[0]):
        with pytest.raises(sqlite3.ProgrammingError):
            con.execute("SELECT 1")
    assert pool.current() is not mine  # a new one after close
    pool.close()


def test_the_three_stores_open_the_file_alike(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}", busy_timeout_ms=3000)
    alerts = SQLiteDetectionStore(tmp_path / "audit.db", busy_timeout_ms=3000)
    try:
        ledger = ledger_for(store)
        assert ledger.create({"account": "acme", "seq": 1, "root": "r"})
        assert ledger.head("acme") == 1
        alerts.install()
        assert settings(store.connections.current()) == settings(alerts._con) == ("wal", 2, 3000)
        snapshot = store.connections.open()  # the ledger's and iterate's own snapshots
        try:
            assert settings(snapshot) == ("wal", 2, 3000)
        finally:
            snapshot.close()
    finally:
        alerts.close()
        store.close()
