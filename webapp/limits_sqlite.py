"""A `limits` storage in one SQLite file, shared by every process of the UI.

The sign-in throttle must count attempts across all workers of the
production server (``useraudit web`` runs several gunicorn processes), and
no Redis or memcached is assumed. `limits` (under Flask-Limiter) offers
memory (per process), Redis, memcached, MongoDB and etcd storages; this adds
``sqlite:///path`` with the one operation the fixed-window strategy needs to
be atomic — add and read back — done in a ``BEGIN IMMEDIATE`` transaction,
which SQLite serialises across threads and processes.

Importing this module registers the ``sqlite`` scheme with
``limits.storage.storage_from_string``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from limits.storage import Storage

PRUNE_EVERY = 256  # increments between deletions of expired windows


class SQLiteLimitsStorage(Storage):
    """Fixed-window counters: key → (count, expires at)."""

    STORAGE_SCHEME = ["sqlite"]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        path = uri.split("://", 1)[1]
        self.path = Path(path[1:] if path.startswith("//") else path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._incrs = 0
        with self._tx() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS counters "
                "(key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires REAL NOT NULL)"
            )

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # Counters of one-minute windows: a power cut may lose the last
            # adds, which is harmless; no fsync per request (the API counts each).
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _tx(self) -> Any:
        storage = self

        class _Tx:
            def __enter__(self) -> sqlite3.Connection:
                self.db = storage._conn()
                self.db.execute("BEGIN IMMEDIATE")  # the write lock first: no lost updates
                return self.db

            def __exit__(self, exc_type: Any, *_: Any) -> None:
                self.db.execute("ROLLBACK" if exc_type else "COMMIT")

        return _Tx()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT count, expires FROM counters WHERE key = ?", (key,)).fetchone()
            if row is None or row[1] <= now:
                count, expires = amount, now + expiry
            else:
                count, expires = row[0] + amount, row[1]
            db.execute(
                "INSERT INTO counters (key, count, expires) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET count = excluded.count, expires = excluded.expires",
                (key, count, expires),
            )
            self._incrs += 1
            if self._incrs % PRUNE_EVERY == 0:
                db.execute("DELETE FROM counters WHERE expires <= ?", (now,))
        return int(count)

    def get(self, key: str) -> int:
        row = (
            self._conn()
            .execute("SELECT count FROM counters WHERE key = ? AND expires > ?", (key, time.time()))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        sql = "SELECT expires FROM counters WHERE key = ? AND expires > ?"
        row = self._conn().execute(sql, (key, time.time())).fetchone()
        return float(row[0]) if row else time.time()

    def check(self) -> bool:
        try:
            self._conn().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        with self._tx() as db:
            return db.execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM counters WHERE key = ?", (key,))
