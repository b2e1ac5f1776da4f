"""A commit that falls due while a stage is busy is put off (a little), never skipped."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from useraudit.indexer.shipper import COMMIT_DEFER_LIMIT, Indexer
from useraudit.middleware.recorder import Recorder
from useraudit.spool import SpoolReader
from useraudit.stages import Stage
from useraudit.store.base import WriteResult
from useraudit.store.sqlite import SQLiteStore

INTERVAL = 0.05


class SlowStage(Stage):
    """Takes ~10 ms per batch; says it is busy or not as told; notes when it was flushed."""

    name = "slow"

    def __init__(self, busy: bool) -> None:
        self.busy = busy
        self.flushed_at: list[float] = []
        self.seen: list[str] = []

    def delivered(self, docs: Sequence[dict], results: Sequence[WriteResult]) -> None:
        self.seen += [d["event.id"] for d in docs]
        time.sleep(0.01)

    def ready(self) -> bool:
        return not self.busy

    def flush(self) -> None:
        self.flushed_at.append(time.monotonic())


def ship(tmp_path: Path, busy: bool) -> list[float]:
    """When the stage was flushed while 40 batches shipped, one event each."""
    spool = tmp_path / f"spool-{busy}"
    rec = Recorder(spool, durability="sync")
    ids = [rec.record("user.signed_in", account="acme", user={"id": f"u{i}"}) for i in range(40)]
    rec.close()
    store = SQLiteStore(f"sqlite:///{tmp_path / f'audit-{busy}.db'}")
    store.install()
    stage = SlowStage(busy)
    with Indexer(
        spool, store, stages=[stage], batch_records=1, commit_interval=INTERVAL
    ) as indexer:
        stats = indexer.drain()
        # Commits at intervals (drain()'s own last one and close()'s left out).
        at_intervals = stage.flushed_at[:-1]
    assert stats.shipped == 40
    assert [i for i in ids if i] == stage.seen
    reader = SpoolReader(spool)
    try:
        assert not reader.read(100).records  # every position committed in the end
    finally:
        reader.close()
        store.close()
    return at_intervals


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_a_ready_stage_is_flushed_at_every_commit_interval(tmp_path: Path) -> None:
    between = gaps(ship(tmp_path, busy=False))
    assert len(between) >= 3
    assert any(g < COMMIT_DEFER_LIMIT * INTERVAL for g in between), between


def test_a_busy_stage_puts_the_commit_off_by_the_limit_at_most(tmp_path: Path) -> None:
    """A stage saying it is busy is flushed every COMMIT_DEFER_LIMIT intervals instead:
    the positions still move, every event is delivered and committed."""
    between = gaps(ship(tmp_path, busy=True))
    assert len(between) >= 1
    assert all(g >= COMMIT_DEFER_LIMIT * INTERVAL for g in between), between
