"""Alerts and detection state in the SQLite store's file: two tables of their own.

``alerts``: one row per alert id, the alert as JSON plus the columns that
are filtered or sorted on (account, status, last_seen, notified).
``detect_state``: (account, key) → JSON value and a version number that
every save increments; a save names the version it read (compare-and-set).
Writes are short ``BEGIN IMMEDIATE`` transactions, as in the events store.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import orjson

from ..alerts import NEW, Alert, DetectionStore, UpsertResult, merge_alert, status_change
from ..base import StoreError, StoreUnavailable
from .connections import ThreadConnections

_DDL = (
    """CREATE TABLE IF NOT EXISTS alerts (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        status TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        notified INTEGER NOT NULL,
        body TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS alerts_account ON alerts(account, last_seen)",
    "CREATE INDEX IF NOT EXISTS alerts_outbox ON alerts(notified, last_seen)",
    """CREATE TABLE IF NOT EXISTS detect_state (
        account TEXT NOT NULL,
        key TEXT NOT NULL,
        version INTEGER NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (account, key)) WITHOUT ROWID""",
)


class SQLiteDetectionStore(DetectionStore):
    def __init__(
        self, path: Path, busy_timeout_ms: int = 10_000, lock_poll_s: float | None = None
    ) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._connections = ThreadConnections(
            path, busy_timeout_ms, self._errors, install=self._create, lock_poll_s=lock_poll_s
        )
        # Whether write() committed since the last sync(): an idle flush syncs nothing.
        self._unsynced = False

    @property
    def _con(self) -> sqlite3.Connection:
        return self._connections.current()

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            low = str(exc).lower()
            if "locked" in low or "busy" in low:
                raise StoreUnavailable(
                    f"SQLite store {self.path} is locked by another process ({exc})"
                ) from exc
            raise StoreError(f"cannot {action} alerts in SQLite store {self.path}: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"cannot {action} SQLite store {self.path}: {exc}") from exc

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._connections.write()

    def _create(self, con: sqlite3.Connection) -> None:
        with self._errors("create"):
            for statement in _DDL:
                con.execute(statement)

    def install(self) -> list[str]:
        self._create(self._con)
        return [f"alerts and detection state tables ready in {self.path}"]

    # -- alerts ------------------------------------------------------------------

    def upsert(self, alerts: Sequence[Alert]) -> list[UpsertResult]:
        rows = {a.id: _alert_row(a) for a in alerts}
        with self._write() as con:
            return self._upsert(con, alerts, rows)

    def write(
        self, alerts: Sequence[Alert], items: Sequence[tuple[str, str, dict, Any]]
    ) -> tuple[list[UpsertResult], list[tuple[str, str]], dict[tuple[str, str], tuple[dict, Any]]]:
        """Alerts and state in one transaction: one writer-lock turn instead of two.

        New alerts and state values are serialised before the transaction
        starts: the events' writes wait for it, and inside it only what the
        stored rows decide (merges, version checks) is done.
        """
        rows = {a.id: _alert_row(a) for a in alerts}
        values = [orjson.dumps(value).decode() for _a, _k, value, _v in items]
        # Not synced to disk here: sync() runs before the indexer moves the
        # spool positions on, one fsync a commit instead of one a batch.
        with self._connections.write(durable=False) as con:
            results = self._upsert(con, alerts, rows) if alerts else []
            conflicts = self._save_state(con, items, values) if items else []
        self._unsynced = True
        return results, conflicts, _saved_versions(items, conflicts)

    def _upsert(
        self, con: sqlite3.Connection, alerts: Sequence[Alert], rows: dict[str, tuple]
    ) -> list[UpsertResult]:
        """Store each alert, merged into the stored one of its id; ``rows``: each new one's row."""
        results: list[UpsertResult] = []
        known: dict[str, Alert] = {}
        ids = [a.id for a in alerts]
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for (body,) in con.execute(
                f"SELECT body FROM alerts WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ):
                stored = Alert.from_dict(orjson.loads(body))
                known[stored.id] = stored
        changed: list[tuple] = []
        for alert in alerts:
            result: UpsertResult
            existing = known.get(alert.id)
            if existing is None:
                merged, result, row = alert, "created", rows[alert.id]
            else:
                merged, result = merge_alert(existing, alert)
                row = _alert_row(merged)
            if result != "unchanged":
                known[alert.id] = merged
                changed.append(row)
            results.append(result)
        self._put_rows(con, changed)
        return results

    def _put(self, con: sqlite3.Connection, alert: Alert) -> None:
        self._put_rows(con, [_alert_row(alert)])

    def _put_rows(self, con: sqlite3.Connection, rows: Sequence[tuple]) -> None:
        con.executemany(
            "INSERT OR REPLACE INTO alerts (id, account, status, last_seen, notified, body)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    def get(self, account: str, alert_id: str) -> Alert | None:
        with self._errors("read"):
            row = self._con.execute(
                "SELECT body FROM alerts WHERE id = ? AND account = ?", (alert_id, account)
            ).fetchone()
        return Alert.from_dict(json.loads(row[0])) if row else None

    def list_alerts(
        self, account: str, statuses: Sequence[str] = (), limit: int = 500
    ) -> list[Alert]:
        sql = "SELECT body FROM alerts WHERE account = ?"
        params: list[Any] = [account]
        if statuses:
            sql += f" AND status IN ({','.join('?' * len(statuses))})"
            params += list(statuses)
        sql += " ORDER BY last_seen DESC, id LIMIT ?"
        params.append(int(limit))
        with self._errors("read"):
            rows = self._con.execute(sql, params).fetchall()
        return [Alert.from_dict(json.loads(r[0])) for r in rows]

    def set_status(self, account: str, alert_id: str, status: str, by: str, at: str) -> Alert:
        with self._write() as con:
            row = con.execute(
                "SELECT body FROM alerts WHERE id = ? AND account = ?", (alert_id, account)
            ).fetchone()
            if row is None:
                raise KeyError(alert_id)
            changed = status_change(Alert.from_dict(json.loads(row[0])), status, by, at)
            self._put(con, changed)
        return changed

    def pending_notifications(self, limit: int = 100) -> list[Alert]:
        with self._errors("read"):
            rows = self._con.execute(
                "SELECT body FROM alerts WHERE notified = 0 ORDER BY last_seen, id LIMIT ?",
                (int(limit),),
            ).fetchall()
        return [Alert.from_dict(json.loads(r[0])) for r in rows]

    def mark_notified(self, alerts: Sequence[Alert]) -> None:
        with self._write() as con:
            for alert in alerts:
                row = con.execute("SELECT body FROM alerts WHERE id = ?", (alert.id,)).fetchone()
                if row is None:
                    continue
                stored = Alert.from_dict(json.loads(row[0]))
                stored.notified = True
                self._put(con, stored)

    # -- state -----------------------------------------------------------------------

    def load_state(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[dict, Any]]:
        out: dict[tuple[str, str], tuple[dict, Any]] = {k: ({}, NEW) for k in keys}
        with self._errors("read"):
            for account, key, version, value in self._rows(self._con, keys, values=True):
                out[(account, key)] = (orjson.loads(value), version)
        return out

    def _rows(
        self, con: sqlite3.Connection, keys: Sequence[tuple[str, str]], values: bool = False
    ) -> list[tuple]:
        """Stored rows of the keys, found through the primary key, account by account."""
        by_account: dict[str, list[str]] = {}
        for account, key in keys:
            by_account.setdefault(account, []).append(key)
        what = "account, key, version, value" if values else "account, key, version"
        rows: list[tuple] = []
        for account, names in by_account.items():
            for i in range(0, len(names), 500):
                chunk = names[i : i + 500]
                rows += con.execute(
                    f"SELECT {what} FROM detect_state"
                    f" WHERE account = ? AND key IN ({','.join('?' * len(chunk))})",
                    [account, *chunk],
                ).fetchall()
        return rows

    def save_state(self, items: Sequence[tuple[str, str, dict, Any]]) -> list[tuple[str, str]]:
        values = [orjson.dumps(value).decode() for _a, _k, value, _v in items]
        with self._write() as con:
            return self._save_state(con, items, values)

    def _save_state(
        self,
        con: sqlite3.Connection,
        items: Sequence[tuple[str, str, dict, Any]],
        values: Sequence[str],
    ) -> list[tuple[str, str]]:
        """Save each item whose stored version is the one it names; ``values``: items' JSON."""
        conflicts: list[tuple[str, str]] = []
        # Inside the write transaction nobody else can move a version.
        pairs = [(account, key) for account, key, _value, _version in items]
        current = {(a, k): v for a, k, v in self._rows(con, pairs)}
        inserts, updates = [], []
        for (account, key, _value, version), text in zip(items, values, strict=True):
            if current.get((account, key), NEW) != version:
                conflicts.append((account, key))
            elif version == NEW:
                inserts.append((account, key, text))
            else:
                updates.append((text, account, key))
        con.executemany(
            "INSERT INTO detect_state (account, key, version, value) VALUES (?, ?, 1, ?)",
            inserts,
        )
        con.executemany(
            "UPDATE detect_state SET version = version + 1, value = ?"
            " WHERE account = ? AND key = ?",
            updates,
        )
        return conflicts

    def save_state_versions(
        self, items: Sequence[tuple[str, str, dict, Any]]
    ) -> tuple[list[tuple[str, str]], dict[tuple[str, str], tuple[dict, Any]]]:
        conflicts = self.save_state(items)
        return conflicts, _saved_versions(items, conflicts)

    def sync(self) -> None:
        if self._unsynced:
            self._unsynced = False  # first: a write committed meanwhile is synced next time
            self._connections.sync()

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        self._connections.close()


def _alert_row(a: Alert) -> tuple:
    return (
        a.id,
        a.account,
        a.status,
        a.last_seen,
        int(a.notified),
        orjson.dumps(a.as_dict()).decode(),
    )


def _saved_versions(
    items: Sequence[tuple[str, str, dict, Any]], conflicts: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[dict, Any]]:
    """(value, version) of each saved key: the save moved it by exactly one (a new key to 1)."""
    refused = set(conflicts)
    return {
        (a, k): (value, 1 if version == NEW else version + 1)
        for a, k, value, version in items
        if (a, k) not in refused
    }
