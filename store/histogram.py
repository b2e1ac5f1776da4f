"""Events over time, success and failure apart: what the activity chart draws.

``Store.histogram(query, interval_ms, offset_ms)`` counts the matches of
``query`` per bucket of ``interval_ms`` milliseconds and per outcome. A
bucket starts at ``offset_ms + k × interval_ms`` (epoch milliseconds), so a
caller aligns day buckets to a time zone's midnight by passing the zone's
UTC offset. Only non-empty buckets are returned, oldest first; each count
is exactly what ``count()`` answers for the same query narrowed to that
bucket (the contract suite holds both backends to it). OpenSearch answers
with a ``date_histogram``, SQLite with one grouped query.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .query import QueryError

MIN_INTERVAL_MS = 60_000
MAX_BUCKETS = 2_000
OUTCOMES = ("success", "failure", "unknown")


@dataclass
class Bucket:
    start_ms: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def check(interval_ms: int, offset_ms: int) -> int:
    """The offset folded into ``[0, interval)``; QueryError for unusable intervals."""
    if interval_ms < MIN_INTERVAL_MS:
        raise QueryError("a chart bucket spans at least %(n)s seconds", n=MIN_INTERVAL_MS // 1000)
    return offset_ms % interval_ms


def bucket_of(ts_ms: int, interval_ms: int, offset_ms: int) -> int:
    """The start of the bucket holding ``ts_ms``."""
    return (ts_ms - offset_ms) // interval_ms * interval_ms + offset_ms


def collect(rows: list[tuple[int, str | None, int]]) -> list[Bucket]:
    """(bucket start, outcome, count) rows → buckets oldest first, outcomes as stored
    (a missing outcome counts as ``unknown``)."""
    by_start: dict[int, Bucket] = {}
    for start, outcome, n in rows:
        if not n:
            continue
        b = by_start.setdefault(int(start), Bucket(int(start)))
        key = outcome or "unknown"
        b.counts[key] = b.counts.get(key, 0) + int(n)
    if len(by_start) > MAX_BUCKETS:
        raise QueryError("the chart would have too many bars: choose a shorter period")
    return [by_start[k] for k in sorted(by_start)]
