"""The indexer says which spool and store it uses, marks its spool as read, and warns (log
line, counter) when events are written to a spool no indexer reads."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from useraudit import spool_watch
from useraudit.indexer.shipper import Indexer
from useraudit.indexer.watch import SpoolWatch
from useraudit.middleware.recorder import Recorder
from useraudit.store.sqlite import SQLiteStore


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("USERAUDIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def write_events(spool: Path, n: int = 2) -> None:
    rec = Recorder(spool, durability="sync", account="acme")
    for _ in range(n):
        rec.record("custom_role.created", user="u-1")
    rec.close()


def test_writers_register_their_spool(home: Path, tmp_path: Path) -> None:
    """Opening a spool writer lists its spool in $USERAUDIT_HOME/spools; a deleted spool is
    forgotten."""
    write_events(tmp_path / "app-spool")
    assert spool_watch.registered_spools() == [(tmp_path / "app-spool").resolve()]
    for path in (tmp_path / "app-spool").iterdir():
        path.unlink()
    (tmp_path / "app-spool").rmdir()
    assert spool_watch.registered_spools() == []
    assert list((home / "spools").iterdir()) == []


def test_indexer_warns_about_a_spool_no_indexer_reads(
    home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The host writes /app-spool, the indexer reads /indexer-spool: a warning naming both,
    and unread_spools=1; once an indexer reads /app-spool, the warning stops."""
    write_events(tmp_path / "app-spool")
    mine = tmp_path / "indexer-spool"
    mine.mkdir()
    store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    store.install()
    stop = threading.Event()
    with caplog.at_level(logging.WARNING, logger="useraudit.indexer"):
        with Indexer(mine, store) as ix:
            thread = threading.Thread(target=ix.run, args=(stop,))
            thread.start()
            deadline = time.monotonic() + 20
            while ix.stats.unread_spools == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            stop.set()
            thread.join()
    assert ix.stats.unread_spools == 1 and ix.stats.as_dict()["unread_spools"] == 1
    (warning,) = [r.getMessage() for r in caplog.records if "no indexer reads" in r.getMessage()]
    assert str(tmp_path / "app-spool") in warning and str(mine) in warning
    # It marked its own spool as read.
    assert spool_watch.heartbeat_age(mine) is not None
    assert spool_watch.heartbeat_age(mine) < spool_watch.STALE_AFTER

    # Another indexer now reads the app's spool: nothing unread any more.
    spool_watch.write_heartbeat((tmp_path / "app-spool").resolve(), store="x")
    watch = SpoolWatch(mine, ix.stats)
    assert watch.check(time.monotonic()) == [] and ix.stats.unread_spools == 0
    store.close()


def test_stale_heartbeat_counts_as_unread(home: Path, tmp_path: Path) -> None:
    """An indexer that stopped more than STALE_AFTER seconds ago reads nothing."""
    write_events(tmp_path / "app-spool")
    spool = (tmp_path / "app-spool").resolve()
    spool_watch.write_heartbeat(spool)
    later = time.time() + spool_watch.STALE_AFTER + 5
    assert [s.path for s in spool_watch.unread_spools(None, now=later)] == [spool]
    assert spool_watch.unread_spools(None) == []


def test_indexer_run_names_its_spool_and_store_and_warns(home: Path, tmp_path: Path) -> None:
    """`useraudit indexer run --once` says which spool and store it uses, that its spool is
    empty, and which spool gets events nobody reads."""
    write_events(tmp_path / "app-spool")
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "useraudit", "indexer", "run", "--once", "--no-detect"],
        env={**os.environ, "USERAUDIT_HOME": str(home), "USERAUDIT_STORE": store},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"reading spool {home / 'spool'}" in done.stdout
    assert f"storing into {store}" in done.stdout
    assert "is empty so far" in done.stdout
    assert "no indexer reads" in done.stderr and str(tmp_path / "app-spool") in done.stderr
