"""One SQLite connection per thread to one file, set up alike, closed together.

The events store, the ledger (through the events store) and the alerts
store all keep their tables in the same file and open it the same way: WAL,
``synchronous=FULL`` (a commit is on disk before the indexer moves the spool
on; the detection engine's per-batch writes skip that wait and call
``sync`` once before the positions move), a busy timeout, autocommit so
transactions are explicit, and one connection per thread because a
connection is not safe to share mid-statement.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from ..base import StoreError

# Maps a sqlite3 error raised inside it to the caller's StoreError wording.
Errors = Callable[[str], AbstractContextManager[None]]

# One writer lock per file for the threads of this process. Threads that wait
# for each other's write transactions (the indexer's event batches, the
# detection engine's alerts and state) take turns here, handed over the moment
# the other commits; in SQLite's busy handler they would sleep up to 100 ms
# between tries. Other processes still meet the busy timeout.
_writer_locks: dict[str, threading.RLock] = {}
_writer_locks_guard = threading.Lock()


def _writer_lock(path: Path) -> threading.RLock:
    key = str(path.resolve())
    with _writer_locks_guard:
        lock = _writer_locks.get(key)
        if lock is None:
            lock = _writer_locks[key] = threading.RLock()
        return lock


class ThreadConnections:
    """Per-thread connections to ``path``; ``install`` runs on the first until it succeeds."""

    def __init__(
        self,
        path: Path,
        busy_timeout_ms: int,
        errors: Errors,
        *,
        tune: Callable[[sqlite3.Connection], None] | None = None,
        install: Callable[[sqlite3.Connection], None] | None = None,
        lock_poll_s: float | None = None,
    ) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        # Try for another process's write lock every this many seconds, instead
        # of SQLite's busy handler (which sleeps up to 100 ms between tries and
        # so misses the short gaps between a busy indexer's write transactions).
        self.lock_poll_s = lock_poll_s
        self._errors = errors
        self._tune = tune
        self._install = install
        self.installed = install is None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open_ones: list[sqlite3.Connection] = []
        self._writer = _writer_lock(path)

    def open(self) -> sqlite3.Connection:
        """A new connection of the caller's own (a read snapshot, say); the caller closes it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory for SQLite store {self.path}: {exc}"
            ) from exc
        with self._errors("open"):
            con = sqlite3.connect(
                str(self.path),
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                con.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
                mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"SQLite store {self.path} cannot use WAL mode (got {mode})")
                con.execute("PRAGMA synchronous=FULL")
                if self._tune is not None:
                    self._tune(con)
            except BaseException:
                con.close()
                raise
        return con

    def current(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the tables installed) on first use."""
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = self.open()
            with self._lock:
                self._open_ones.append(con)
            self._local.con = con
        if not self.installed and self._install is not None:
            self._install(con)
            self.installed = True
        return con

    @contextmanager
    def write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A short IMMEDIATE transaction: one writer, never a lock upgrade deadlock.

        ``durable=False`` commits without waiting for the disk
        (``synchronous=NORMAL``): the commit survives a crash of the process
        but not a power cut until :meth:`sync` (or any durable commit to the
        file, which syncs the shared write-ahead log) has run.
        """
        con = self.current()
        with self._errors("write"):
            if not self._writer.acquire(timeout=self.busy_timeout_ms / 1000):
                raise sqlite3.OperationalError(
                    "database is locked (by another thread of this process)"
                )
            try:
                if not durable:
                    con.execute("PRAGMA synchronous=NORMAL")
                try:
                    self._begin(con)
                    try:
                        yield con
                    except BaseException:
                        con.execute("ROLLBACK")
                        raise
                    con.execute("COMMIT")
                finally:
                    if not durable:
                        con.execute("PRAGMA synchronous=FULL")
            finally:
                self._writer.release()

    def _begin(self, con: sqlite3.Connection) -> None:
        if self.lock_poll_s is None:
            con.execute("BEGIN IMMEDIATE")
            return
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        con.execute("PRAGMA busy_timeout=0")
        try:
            while True:
                try:
                    con.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                        raise
                time.sleep(self.lock_poll_s)
        finally:
            con.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")

    def sync(self) -> None:
        """Put every commit to the file so far on disk: fsync its write-ahead log.

        Commits made with ``durable=False`` are in the log (in the page cache);
        without a log file, everything was checkpointed into the database file,
        and a checkpoint syncs what it copies.
        """
        wal = self.path.with_name(self.path.name + "-wal")
        with self._errors("sync"):
            try:
                fd = os.open(wal, os.O_RDONLY)
            except FileNotFoundError:
                return
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        """Close every thread's connection; the next use opens new ones."""
        with self._lock:
            connections, self._open_ones = self._open_ones, []
        for con in connections:
            try:
                con.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()
