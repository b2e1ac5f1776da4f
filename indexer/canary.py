"""Canary events: capture-to-searchable latency, measured end to end.

A canary is an ordinary event (``audit_log.canary`` in account
``useraudit``) recorded through ``record()`` into the spool in ``sync``
mode; the clock stops when a search of the store finds it. So a canary
goes through everything a real event does — spool, indexer, stages, the
store, its refresh — and its latency is what a reader of the UI waits.
:func:`measure` sends ``count`` canaries and gives p50 and p99.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from useraudit.middleware.recorder import Recorder, new_event_id

from useraudit.store.base import Store, StoreUnavailable
from useraudit.store.query import Query

CANARY_ACTION = "audit_log.canary"
CANARY_ACCOUNT = "useraudit"


@dataclass(frozen=True)
class CanaryReport:
    sent: int
    found: int
    p50_ms: float | None
    p99_ms: float | None

    def as_dict(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "found": self.found,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
        }


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _searchable(store: Store, event_id: str, since_ms: int) -> bool:
    from datetime import UTC, datetime

    start = datetime.fromtimestamp(since_ms / 1000 - 1, UTC)
    query = Query(CANARY_ACCOUNT, start=start, actions=(CANARY_ACTION,))
    try:
        return any(d.get("event.id") == event_id for d in store.iterate(query, batch_size=100))
    except StoreUnavailable:  # e.g. the first index of the month, shards still starting
        return False


def measure(
    spool: Path,
    store: Store,
    *,
    count: int = 20,
    interval: float = 0.2,
    timeout: float = 60.0,
    poll: float = 0.02,
) -> CanaryReport:
    """Record ``count`` canaries one after the other; time each until a search finds it."""
    recorder = Recorder(spool, durability="sync")
    latencies: list[float] = []
    try:
        for i in range(count):
            event_id = new_event_id()
            started = time.time()
            recorder.record(
                CANARY_ACTION,
                account=CANARY_ACCOUNT,
                user={"id": "useraudit-canary"},
                event_id=event_id,
                params={"n": i + 1, "of": count},
            )
            deadline = started + timeout
            while time.time() < deadline:
                if _searchable(store, event_id, int(started * 1000)):
                    latencies.append((time.time() - started) * 1000)
                    break
                time.sleep(poll)
            time.sleep(interval)
    finally:
        recorder.close()
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return CanaryReport(
        count,
        len(latencies),
        None if p50 is None else round(p50, 1),
        None if p99 is None else round(p99, 1),
    )
