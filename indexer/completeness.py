"""The completeness mark: up to when every acknowledged event is searchable.

Each indexer publishes, for the spool it reads, the time up to which every
event in that spool is stored and searchable: the ``@timestamp`` of the
oldest record not yet shipped (read from each segment's committed offset),
or — when nothing waits — the present minus ``host_allowance`` (a host in
``batch`` durability holds up to one flush interval, 50 ms by default, in
memory before the spool has it). The store is refreshed before the mark is
published, so "stored" means "searchable". Marks live in the store beside
the account settings (key ``~spool:<host>:<path>``), so every indexer of
every host adds its own. A mark is per account: the pending records of a
spool are read (up to ``WINDOW`` per segment) and each account they hold is
held back to its oldest; the others are complete up to the spool's default
(the present minus the allowance, or the first record past the window). An
account's mark is the oldest of every spool's mark for it; the store's mark
(for operators) is the oldest of all. An indexer that stops
leaves its mark behind: the mark stops moving and the UI says indexing lags,
which is the truth while its spool is not read.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from useraudit.schema import ACCOUNT_ID, UNASSIGNED_ACCOUNT
from useraudit.spool import HEADER_SIZE, OFFSET_SUFFIX, SEGMENT_SUFFIX, record_at, records_from
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


# Pending records read per segment at each publication: the marks of the
# accounts they hold are exact; every other account is held back to the first
# record past them (it might be theirs).
WINDOW = 5000


@dataclass(frozen=True)
class SpoolMarks:
    """Epochs up to which this spool's events are stored: per account, and for the rest."""

    default: float
    accounts: dict[str, float] = field(default_factory=dict)

    def oldest(self) -> float:
        return min([self.default, *self.accounts.values()])


def _account_of(doc: dict[str, Any]) -> str:
    account = doc.get("organization.id")
    if account is None and isinstance(doc.get("organization"), dict):
        account = doc["organization"].get("id")
    # Where the indexer files it (useraudit.schema, the account contract).
    if isinstance(account, str) and ACCOUNT_ID.match(account):
        return account
    return UNASSIGNED_ACCOUNT


def _born(path: Path) -> float | None:
    try:
        return int(path.name.split("-", 1)[0]) / 1e9
    except ValueError:
        return None


def _capture_time(payload: bytes, born: float | None, now: float) -> tuple[str, float | None]:
    """(account, capture time) of one spool record; a bad clock is kept within the segment."""
    try:
        doc = orjson.loads(payload)
    except ValueError:
        return UNASSIGNED_ACCOUNT, born
    if not isinstance(doc, dict):
        return UNASSIGNED_ACCOUNT, born
    when = _epoch(doc.get("@timestamp"))
    if when is None:
        return _account_of(doc), born
    when = min(when, now)
    return _account_of(doc), when if born is None else max(when, born)


def spool_marks(
    spool: Path, now: float, host_allowance: float = 1.0, window: int = WINDOW
) -> SpoolMarks:
    """Up to when this spool's events are stored, per account (see module doc)."""
    default = now - host_allowance
    accounts: dict[str, float] = {}
    try:
        names = [e.name for e in os.scandir(spool) if e.name.endswith(SEGMENT_SUFFIX)]
    except OSError:
        return SpoolMarks(default)
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
        born = _born(path)
        read, after = 0, committed
        for offset, payload in records_from(path, committed, window):
            read, after = read + 1, offset + HEADER_SIZE + len(payload)
            account, when = _capture_time(payload, born, now)
            if when is not None and when < accounts.get(account, default):
                accounts[account] = when
        if read == 0:  # a damaged record at the offset: the segment's birth bounds it
            first = _first_pending(path, committed)
            if first is not None:
                default = min(default, first)
        elif read == window:  # more may wait past the window, of any account
            rest = record_at(path, after)
            if rest is not None:
                _, when = _capture_time(rest, born, now)
                if when is not None:
                    default = min(default, when)
    return SpoolMarks(default, {a: t for a, t in accounts.items() if t < default})


def spool_mark(spool: Path, now: float, host_allowance: float = 1.0) -> float:
    """Epoch up to which everything this spool was given is stored, all accounts."""
    return spool_marks(spool, now, host_allowance).oldest()


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
        marks = spool_marks(self.spool, now, self.host_allowance)
        try:
            self.store.refresh()
            publish(self.store, self.spool, marks.default, now, accounts=marks.accounts)
        except StoreUnavailable as exc:  # the mark waits; shipping must not
            log.warning("completeness mark not published: %s", exc)
            return
        self._published = now
