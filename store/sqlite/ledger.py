"""The integrity ledger in the SQLite file: one ``ledger`` table (see :mod:`.ledger`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from ..ledger import Ledger
from .store import SQLiteStore

_DDL = (
    "CREATE TABLE IF NOT EXISTS ledger ("
    " account TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL,"
    " PRIMARY KEY (account, seq)) WITHOUT ROWID"
)


class SQLiteLedger(Ledger):
    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self._connections = store.connections  # the events' file, its connections
        with store._errors("set up the ledger of"):
            self._connections.current().execute(_DDL)

    def create(self, doc: dict[str, Any]) -> bool:
        with self._connections.write() as con:
            cur = con.execute(
                "INSERT OR IGNORE INTO ledger (account, seq, body) VALUES (?, ?, ?)",
                (doc["account"], int(doc["seq"]), orjson.dumps(doc)),
            )
            return cur.rowcount == 1

    def create_many(self, docs: Sequence[dict[str, Any]]) -> list[bool]:
        # One transaction, so one commit (one fsync) for every account of a flush.
        with self._connections.write() as con:
            return [
                con.execute(
                    "INSERT OR IGNORE INTO ledger (account, seq, body) VALUES (?, ?, ?)",
                    (doc["account"], int(doc["seq"]), orjson.dumps(doc)),
                ).rowcount
                == 1
                for doc in docs
            ]

    def get(self, account: str, seq: int) -> dict[str, Any] | None:
        with self.store._errors("read"):
            row = (
                self._connections.current()
                .execute("SELECT body FROM ledger WHERE account = ? AND seq = ?", (account, seq))
                .fetchone()
            )
        return None if row is None else orjson.loads(row[0])

    def head(self, account: str) -> int:
        with self.store._errors("read"):
            row = (
                self._connections.current()
                .execute("SELECT max(seq) FROM ledger WHERE account = ?", (account,))
                .fetchone()
            )
        return int(row[0] or 0)

    def iterate(self, account: str | None = None) -> Iterator[dict[str, Any]]:
        sql, params = "SELECT body FROM ledger", []
        if account is not None:
            sql, params = sql + " WHERE account = ?", [account]
        con = self._connections.open()  # a snapshot of its own, like Store.iterate
        try:
            with self.store._errors("read"):
                con.execute("BEGIN")
                cur = con.execute(sql + " ORDER BY account, seq", params)
                while rows := cur.fetchmany(200):
                    for (body,) in rows:
                        yield orjson.loads(body)
                con.execute("COMMIT")
        finally:
            con.close()

    def accounts(self) -> list[str]:
        with self.store._errors("read"):
            rows = (
                self._connections.current()
                .execute("SELECT DISTINCT account FROM ledger")
                .fetchall()
            )
        return sorted(r[0] for r in rows)

    def drop(self) -> None:
        with self._connections.write() as con:
            con.execute("DELETE FROM ledger")
