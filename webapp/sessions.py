"""Server-side sign-in sessions: a signed cookie alone is not enough.

Flask's session cookie is signed, not stored: before this registry, a cookie
saved before sign-out kept working, from any browser, until it expired. Now
every sign-in starts a session row with a random id (kept in the signed
cookie) and every request checks that the row still exists for that user
and has not expired. So:

* sign-out deletes its own row: the saved cookie is anonymous from then on;
* "sign out everywhere" deletes every row of the user;
* a password change or a change of rights (``useraudit users passwd``,
  ``grant``, ``grant --revoke``) deletes every row of that user.

Rows live in SQLite (the user database's file for the built-in user store),
so every process of the UI sees the same sessions.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_LIFETIME = 8 * 3600


class SessionRegistry:
    """Active sessions: id → (user id, expires at). Safe to share between threads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS ui_sessions (id TEXT PRIMARY KEY, "
                "user_id TEXT NOT NULL, started REAL NOT NULL, expires REAL NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS ui_sessions_user ON ui_sessions (user_id)")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10)
            self._local.conn = conn
        with conn:
            yield conn

    def start(self, user_id: str, lifetime: float = DEFAULT_LIFETIME) -> str:
        session_id = secrets.token_urlsafe(24)
        now = time.time()
        with self._db() as db:
            db.execute("DELETE FROM ui_sessions WHERE expires <= ?", (now,))
            db.execute(
                "INSERT INTO ui_sessions (id, user_id, started, expires) VALUES (?, ?, ?, ?)",
                (session_id, user_id, now, now + lifetime),
            )
        return session_id

    def is_active(self, session_id: str | None, user_id: str) -> bool:
        if not session_id or not isinstance(session_id, str):
            return False
        with self._db() as db:
            row = db.execute(
                "SELECT 1 FROM ui_sessions WHERE id = ? AND user_id = ? AND expires > ?",
                (session_id, user_id, time.time()),
            ).fetchone()
        return row is not None

    def end(self, session_id: str | None) -> None:
        if session_id:
            with self._db() as db:
                db.execute("DELETE FROM ui_sessions WHERE id = ?", (session_id,))

    def end_all(self, user_id: str) -> int:
        """End every session of the user; returns how many there were."""
        with self._db() as db:
            return db.execute("DELETE FROM ui_sessions WHERE user_id = ?", (user_id,)).rowcount

    def count(self, user_id: str) -> int:
        with self._db() as db:
            row = db.execute(
                "SELECT COUNT(*) FROM ui_sessions WHERE user_id = ? AND expires > ?",
                (user_id, time.time()),
            ).fetchone()
        return int(row[0])
