"""SQLiteStore: connections, transactions, errors, and the Store contract on top.

What the file holds is in :mod:`useraudit.store.sqlite`; writing is in
:mod:`.writes`, searching in :mod:`.search`, file versions in :mod:`.versions`.
"""

from __future__ import annotations

import gc
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ..base import Store, StoreError, StoreUnavailable, WriteResult
from ..histogram import Bucket
from ..query import Query, QueryError, SearchPage, SearchRequest, to_ms
from . import versions, writes
from .connections import ThreadConnections
from .layout import BY_IP, HOT, STEMS_FUNCTION, ddl, marks
from .rows import FOLD_FUNCTION, READ_COLUMNS, SELECT, fold_or_none, read_doc
from .search import Search, driven_by_ip
from .stems import stems_or_none
from .versions import FILE_VERSION

BUSY_TIMEOUT_MS = 10_000
# SQLite's default limit on bound parameters is 32766; stay far below.
CHUNK = 500


def path_from_url(url: str) -> Path:
    if not url.lower().startswith("sqlite:"):
        raise StoreError(f"not a SQLite URL: {url!r} (use sqlite:///path/audit.db)")
    rest = url[len("sqlite:") :].split("?", 1)[0]
    if rest.startswith("//"):
        rest = rest[2:]
        if rest.startswith("//"):
            rest = rest[1:]
    if not rest or rest.lstrip("/") == ":memory:":
        raise StoreError("the SQLite store needs a file: sqlite:///path/audit.db")
    return Path(rest)


class SQLiteStore(Store):
    def __init__(self, url: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = path_from_url(url).expanduser()
        self.url = f"sqlite:///{self.path}" if self.path.is_absolute() else f"sqlite:{self.path}"
        self.busy_timeout_ms = busy_timeout_ms
        self._ids = writes.Ids()
        self.connections = ThreadConnections(
            self.path, busy_timeout_ms, self._errors, tune=self._tune, install=self._install
        )

    # -- connections and errors --------------------------------------------------

    def _tune(self, con: sqlite3.Connection) -> None:
        con.execute("PRAGMA cache_size=-65536")
        con.execute("PRAGMA temp_store=MEMORY")
        con.execute("PRAGMA mmap_size=268435456")
        # Checkpoint every 64 MiB of WAL, not 4: pages written again and
        # again are copied once (docs/sqlite.md).
        con.execute("PRAGMA wal_autocheckpoint=16384")
        con.execute("PRAGMA journal_size_limit=67108864")
        # Case-insensitive filters on the few stored combinations and
        # on candidate rows' full names: folded as the query values are.
        con.create_function(FOLD_FUNCTION, 1, fold_or_none, deterministic=True)
        # The full-text view's stems (layout.FTS_DDL).
        con.create_function(STEMS_FUNCTION, 1, stems_or_none, deterministic=True)

    def _open(self) -> sqlite3.Connection:
        """A connection of the caller's own (read snapshots), closed by the caller."""
        return self.connections.open()

    @property
    def _con(self) -> sqlite3.Connection:
        return self.connections.current()

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc, action) from exc

    def _translate(self, exc: sqlite3.DatabaseError, action: str) -> Exception:
        msg = str(exc)
        low = msg.lower()
        where = f"SQLite store {self.path}"
        if ("fts5" in low and "syntax" in low) or "unterminated string" in low:
            return QueryError("the search text could not be understood")
        if "locked" in low or "busy" in low:
            return StoreUnavailable(
                f"{where} is locked by another process ({msg}); try again later"
            )
        if "not a database" in low or "malformed" in low or "corrupt" in low:
            return StoreError(
                f"{where} is damaged or not a useraudit database ({msg}): move it aside and "
                "restore a backup, or point --store at a new file"
            )
        if (
            "readonly" in low
            or "read-only" in low
            or "unable to open" in low
            or "permission" in low
        ):
            return StoreError(
                f"cannot {action} {where}: {msg} (check the file and directory permissions)"
            )
        if "disk" in low or "full" in low:
            # Often transient (space freed, I/O retried): the indexer should retry, not dead-letter.
            return StoreUnavailable(f"cannot {action} {where}: {msg} (disk full or failing?)")
        return StoreError(f"cannot {action} {where}: {msg}")

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return self.connections.write()

    # -- setup ---------------------------------------------------------------------

    def install(self) -> list[str]:
        con = self._con  # installs on first use
        with self._errors("read"):
            rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
        return [
            f"SQLite store {self.path} ready (file version {FILE_VERSION}, {rows} events, WAL mode)"
        ]

    def _install(self, con: sqlite3.Connection) -> None:
        with self._errors("set up"):
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > FILE_VERSION:
                raise StoreError(
                    f"SQLite store {self.path} has file version {version}, newer than this "
                    f"useraudit's {FILE_VERSION}: upgrade useraudit"
                )
            if version < FILE_VERSION:
                with self._transaction(con):
                    if version:
                        versions.upgrade(con, version)
                    for stmt in ddl():
                        con.execute(stmt)
                    versions.add_missing_columns(con)
                    con.execute(f"PRAGMA user_version={FILE_VERSION}")
            else:
                # Fail now, naming the file, if the schema is not ours.
                con.execute("SELECT rid, event_id, ts_ms, week FROM events LIMIT 0")
                if versions.missing_columns(con):  # fields added since the file was made
                    with self._transaction(con):
                        versions.add_missing_columns(con)

    @staticmethod
    @contextmanager
    def _transaction(con: sqlite3.Connection) -> Iterator[None]:
        con.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    # -- writing -------------------------------------------------------------------

    def write(self, docs: Sequence[dict]) -> list[WriteResult]:
        if not docs:
            return []
        prepared, results = writes.prepare(docs)
        with gc_paused():
            # Everything Python does per event happens before taking the write lock.
            batch = writes.Batch(self._ids, results)
            batch.add(prepared)
            with self._write() as con:
                batch.write(con)
            batch.remember()
        return [r or WriteResult("retry", "not attempted") for r in results]

    def delete_older_than(
        self,
        cutoff: datetime,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
        account: str | None = None,
    ) -> int:
        """Delete events before ``cutoff``, ``batch_size`` per short transaction."""
        limit = to_ms(cutoff)
        batch_size = max(1, int(batch_size))
        deleted = 0
        with self._errors("read"):
            accounts: list[str | None] = (
                [*self._account_ids(), None] if account is None else [account]
            )
        # Account by account through events_hot (account, time): no index on
        # time alone is kept just for retention.
        for one in accounts:
            which = "organization_id IS NULL" if one is None else "organization_id = ?"
            args = [] if one is None else [one]
            while True:
                started = time.monotonic()
                rows = self._delete_batch(which, [*args, limit, batch_size])
                if not rows:
                    break
                deleted += len(rows)
                if progress:
                    progress(len(rows))
                # Leave the write lock free as long as the batch held it. A
                # writer waiting for it (the indexer) sleeps in SQLite's busy
                # handler and retries up to 100 ms apart: without a pause it
                # almost never finds the lock free between two batches.
                time.sleep(time.monotonic() - started)
        return deleted

    def _delete_batch(self, which: str, params: list[Any]) -> list[tuple]:
        with self._write() as con:
            return writes.delete_batch(con, self._ids.people, HOT, which, params)

    def _account_ids(self) -> list[str]:
        """Every account holding events, one index seek each (a loose index scan)."""
        return [
            r[0]
            for r in self._con.execute(
                "WITH RECURSIVE a(id) AS ("
                " SELECT (SELECT min(organization_id) FROM events)"
                " UNION ALL"
                " SELECT (SELECT min(organization_id) FROM events WHERE organization_id > a.id)"
                " FROM a WHERE a.id IS NOT NULL"
                ") SELECT id FROM a WHERE id IS NOT NULL"
            )
        ]

    # -- reading -------------------------------------------------------------------

    def where(
        self, query: Query, by_rid: bool = False, text_rids: str | None = None
    ) -> tuple[str, list[Any]]:
        """SQL condition and parameters for ``query`` (see :meth:`.search.Search.where`)."""
        return Search(self._con, self._ids).where(query, by_rid, text_rids)

    def search(self, request: SearchRequest) -> SearchPage:
        # A search's many short-lived row tuples die by refcount; cyclic
        # collections meanwhile only cost time (docs/sqlite.md).
        with gc_paused(), self._errors("read"):
            search = Search(self._con, self._ids)
            page = search.search(request)
            if request.histogram is not None:
                page.histogram = search.histogram(request.query, *request.histogram)
            return page

    def count(self, query: Query) -> int:
        with self._errors("read"):
            return Search(self._con, self._ids).count(query)

    def histogram(self, query: Query, interval_ms: int, offset_ms: int = 0) -> list[Bucket]:
        with self._errors("read"):
            return Search(self._con, self._ids).histogram(query, interval_ms, offset_ms)

    def iterate(
        self, query: Query, batch_size: int = 1000, fields: Sequence[str] | None = None
    ) -> Iterator[dict]:
        """Every match newest first, from one read snapshot on a connection of its own.

        Like OpenSearch's point-in-time, later writes are not seen. While the
        snapshot is open the WAL cannot be checkpointed past it, so a very
        slow consumer lets the -wal file grow until the export ends.
        """
        where, params = self.where(query)
        batch_size = max(1, int(batch_size))
        self._con  # noqa: B018 - make sure the schema exists
        source = BY_IP if driven_by_ip(query) else "events"
        con = self._open()
        try:
            with self._errors("read"):
                con.execute("BEGIN")  # one snapshot, like OpenSearch's point-in-time
                cur = con.execute(
                    f"SELECT {', '.join(READ_COLUMNS)} FROM {source} WHERE {where} "
                    "ORDER BY ts_ms DESC, event_id DESC",
                    params,
                )
                while True:
                    rows = cur.fetchmany(batch_size)
                    if not rows:
                        break
                    for row in rows:
                        yield read_doc(row)
                con.execute("COMMIT")
        finally:
            con.close()

    def get(self, event_ids: Sequence[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        ids = list(event_ids)
        with self._errors("read"):
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                for row in self._con.execute(f"{SELECT} WHERE event_id IN ({marks(chunk)})", chunk):
                    doc = read_doc(row)
                    out[doc["event.id"]] = doc
        return out

    def refresh(self) -> None:
        """Nothing to do: a committed write is visible to every later read."""
        self._con  # noqa: B018 - but do fail here on a broken file

    def accounts(self) -> list[str]:
        with self._errors("read"):
            return self._account_ids()

    def count_all(self) -> int:
        """Every event, all accounts (operators, tests)."""
        with self._errors("read"):
            return int(self._con.execute("SELECT count(*) FROM events").fetchone()[0])

    def close(self) -> None:
        self.connections.close()


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection during a batch write or a search.

    A batch allocates tens of thousands of short-lived objects, all freed by
    reference counting; the collections they set off find nothing and only
    cost time (docs/sqlite.md). Collection resumes as soon as the batch is written; a
    concurrent caller re-enabling it early only costs speed, and only the
    caller that disabled it enables it again.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
