"""Swallowed errors are counted and handed to a hook, never kept: memory stays flat."""

from __future__ import annotations

import gc
import logging
import tracemalloc
from pathlib import Path

import pytest

from useraudit.middleware import _failsafe
from useraudit.middleware.recorder import Recorder


def _traced_after(rec: Recorder, times: int) -> int:
    for _ in range(times):
        assert rec.record("task.created", account="a", comments="x" * 200) is None
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def test_repeated_failures_keep_memory_flat(
    spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """5,000 rejected record() calls leave no exception alive: memory does not grow with them."""
    seen = {"errors": 0}

    def count_only(_exc: Exception, _what: str) -> None:
        seen["errors"] += 1

    monkeypatch.setattr(_failsafe, "on_internal_error", count_only)
    # pytest's log capture would keep every record (and its exception) itself.
    monkeypatch.setattr(logging.getLogger("useraudit"), "disabled", True)
    rec = Recorder(spool_dir, durability="sync", max_spool_bytes=1, full_policy="reject")
    tracemalloc.start()
    try:
        warm = _traced_after(rec, 500)
        after = _traced_after(rec, 5_000)
    finally:
        tracemalloc.stop()
        rec.close()
    assert seen["errors"] == 5_500 and rec.stats.rejected_full == 5_500
    # One kept SpoolFull with its traceback is about 1 KB: 5,000 would be MBs.
    assert after - warm < 100_000, f"grew {after - warm:,} bytes over 5,000 failures"


def test_contained_errors_are_counted_and_reach_the_hook(internal_errors: list[Exception]) -> None:
    """`contain` swallows our own error, counts it and passes it to the hook (the test fixture)."""
    before = _failsafe.stats.internal_errors
    with _failsafe.contain("a callback"):
        raise KeyError("boom")
    assert _failsafe.stats.internal_errors == before + 1
    assert [type(e) for e in internal_errors] == [KeyError]
    internal_errors.clear()
