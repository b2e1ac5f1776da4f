"""The dead-letter store: events the backend refused, kept with the reason.

A document the store rejects for good (a mapping or parse error), a spool
record that is damaged, or one the enricher could not handle is written here
— durably, before the spool position moves past it — with the original
bytes and the reason. ``useraudit indexer dlq list`` shows them and
``useraudit indexer dlq retry`` sends them again (after a template fix,
say). Nothing leaves the pipeline without a trace.

SQLite (``deadletter.sqlite`` in the spool directory) because it is rare,
small, and needs listing, counting and deleting by id.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    event_id TEXT,
    reason TEXT NOT NULL,
    raw BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1
);
"""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    at: float
    event_id: str | None
    reason: str
    raw: bytes
    attempts: int


def _switch_to_wal(db: sqlite3.Connection, patience_s: float = 30.0) -> None:
    """WAL mode, waiting out another process doing the same to a new file.

    Two indexers starting together on one spool both open its dead-letter
    file; switching a new file to WAL needs it alone, and SQLite answers
    "database is locked" at once instead of calling the busy handler.
    """
    deadline = time.monotonic() + patience_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class DeadLetters:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        _switch_to_wal(self._db)
        # Dead letters replace spool records: they must survive a crash.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def add(self, entries: Iterable[tuple[str | None, str, bytes]]) -> int:
        """Store (event_id, reason, raw bytes) entries durably; returns how many."""
        rows = [(time.time(), eid, reason, raw) for eid, reason, raw in entries]
        if rows:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT INTO dead_letters (at, event_id, reason, raw) VALUES (?, ?, ?, ?)", rows
                )
        return len(rows)

    def list(self, limit: int = 100) -> list[DeadLetter]:
        cur = self._db.execute(
            "SELECT id, at, event_id, reason, raw, attempts FROM dead_letters ORDER BY id LIMIT ?",
            (limit,),
        )
        return [DeadLetter(*row) for row in cur]

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])

    def delete(self, ids: Iterable[int]) -> None:
        with self._db:
            self._db.executemany("DELETE FROM dead_letters WHERE id = ?", [(i,) for i in ids])

    def failed_again(self, letter_id: int, reason: str) -> None:
        with self._db:
            self._db.execute(
                "UPDATE dead_letters SET reason = ?, attempts = attempts + 1, at = ? WHERE id = ?",
                (reason, time.time(), letter_id),
            )

    def close(self) -> None:
        self._db.close()
