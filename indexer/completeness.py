"""The completeness mark: up to when every acknowledged event is searchable.

Each indexer publishes, for the spool it reads, the time up to which every
event in that spool is stored and searchable: the ``@timestamp`` of the
oldest record not yet shipped (read at each segment's committed offset),
or — when nothing waits — the present minus ``host_allowance`` (a host in
``batch`` durability holds up to one flush interval, 50 ms by default, in
memory before the spool has it). The store is refreshed before the mark is
published, so "stored" means "searchable". Marks live in the store beside
the account settings (key ``~spool:<host>:<path>``), so every indexer of
every host adds its own; the mark of the store — shown for every account,
since it bounds them all — is the oldest of them. An indexer that stops
leaves its mark behind: the mark stops moving and the UI says indexing lags,
which is the truth while its spool is not read.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from useraudit.spool import OFFSET_SUFFIX, SEGMENT_SUFFIX, record_at
from useraudit.stages import Stage
from useraudit.store.base import Store, StoreUnavailable, WriteResult
from useraudit.store.completeness import publish

log = logging.getLogger("useraudit.completeness")


def _epoch(ts: Any) -> float | None:
    if not isinstance(ts, str):
        return None
    try:
        when = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _first_pending(path: Path, offset: int) -> float | None:
    """Capture time of the record at ``offset`` (its @timestamp, else the segment's birth)."""
    try:
        born: float | None = int(path.name.split("-", 1)[0]) / 1e9
    except ValueError:
        born = None
    payload = record_at(path, offset)
    if payload is not None:
        try:
            when = _epoch(orjson.loads(payload).get("@timestamp"))
        except (ValueError, AttributeError):
            when = None
        if when is not None:
            # A host clock ahead or behind: never later than now, never before the segment.
            return min(when, time.time()) if born is None else max(min(when, time.time()), born)
    return born


def spool_mark(spool: Path, now: float, host_allowance: float = 1.0) -> float:
    """Epoch up to which everything this spool was given is stored (see module doc)."""
    mark = now - host_allowance
    try:
        names = [e.name for e in os.scandir(spool) if e.name.endswith(SEGMENT_SUFFIX)]
    except OSError:
        return mark
    for name in names:
        path = spool / name
        try:
            size = path.stat().st_size
            committed = int((spool / (name + OFFSET_SUFFIX)).read_text() or 0)
        except FileNotFoundError:
            committed = 0
        except (OSError, ValueError):
            continue
        if committed >= size:
            continue
        first = _first_pending(path, committed)
        if first is not None:
            mark = min(mark, first)
    return mark


class CompletenessStage(Stage):
    """Indexer stage publishing its spool's completeness mark every ``every`` seconds."""

    name = "completeness"

    def __init__(
        self,
        store: Store,
        spool: Path,
        *,
        every: float = 5.0,
        host_allowance: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.spool = Path(spool)
        self.every = every
        self.host_allowance = host_allowance
        self.clock = clock
        self._published = float("-inf")

    def delivered(self, docs: Sequence[dict], results: Sequence[WriteResult]) -> None:
        pass

    def flush(self) -> None:
        now = self.clock()
        if now - self._published < self.every:
            return
        # Measured before the refresh: what is stored now is searchable after it.
        mark = spool_mark(self.spool, now, self.host_allowance)
        try:
            self.store.refresh()
            publish(self.store, self.spool, mark, now)
        except StoreUnavailable as exc:  # the mark waits; shipping must not
            log.warning("completeness mark not published: %s", exc)
            return
        self._published = now
