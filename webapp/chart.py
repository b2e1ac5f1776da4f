"""The activity chart above the table: events over the chosen period, success and failure stacked.

The numbers come with the table's own search (``SearchRequest.histogram``,
the same buckets ``Store.histogram`` answers; on OpenSearch an aggregation
of the page's one request), so a bar holds exactly the rows the table shows
for its span, and clicking a bar
opens that span as a custom period (the whole "To" minute included, see
:meth:`~.filters.Filters.bounds`). Bucket sizes follow the period (5 minutes
for the last hour, an hour for a day, 3 hours for a week, a day for a month;
custom periods take the smallest of those giving at most 56 bars). Buckets of
an hour and longer start on the chosen zone's hours and midnights.

Drawn as inline SVG: each bar is a link with its numbers in words for
screen readers and in its tooltip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from markupsafe import Markup

from useraudit.store import Query
from useraudit.store.histogram import Bucket

from .i18n import day_format, number_format
from .i18n import gettext as _

MINUTE = 60_000
STEPS_MS = (
    5 * MINUTE,
    15 * MINUTE,
    60 * MINUTE,
    3 * 60 * MINUTE,
    6 * 60 * MINUTE,
    12 * 60 * MINUTE,
    24 * 60 * MINUTE,
    7 * 24 * 60 * MINUTE,
)
MAX_BARS = 56  # 7 days in 3-hour bars; 30 days then take whole days
WIDTH, HEIGHT, TOP = 1000, 110, 8


def step_for(span_ms: int) -> int:
    """The smallest bucket giving at most MAX_BARS bars over ``span_ms``."""
    for step in STEPS_MS:
        if span_ms / step <= MAX_BARS:
            return step
    return STEPS_MS[-1]


@dataclass
class Bar:
    start: datetime
    end: datetime
    success: int
    failure: int
    other: int
    href: str

    @property
    def total(self) -> int:
        return self.success + self.failure + self.other


def plan(query: Query, tz: ZoneInfo, now: datetime | None = None) -> tuple[int, int] | None:
    """(bucket size, offset) in ms for ``query``'s period; None without a start."""
    if query.start is None:
        return None
    end = query.end or (now or datetime.now(UTC))
    if end <= query.start:
        return None
    step = step_for(int((end - query.start).total_seconds() * 1000))
    offset = 0
    if step >= 60 * MINUTE:  # hours and days start on the zone's hours and midnights
        delta = end.astimezone(tz).utcoffset() or timedelta()
        offset = -int(delta.total_seconds() * 1000)
    return step, offset


@dataclass
class Frame:
    """The chart before its counts: every bar's period, link, words and place.

    The period alone decides these, so the page builds them while the store
    searches; :func:`fill` adds the answer's counts.
    """

    step: int
    first_ms: int  # the first bar's bucket key
    bars: list[Bar]
    spans: list[str]  # each bar's period in words
    hits: list[str]  # each bar's full-height link target
    places: list[tuple[float, float]]  # each bar's x and width


def frame(
    query: Query,
    spec: tuple[int, int],
    tz: ZoneInfo,
    page_url: str,
    base_args: list[tuple[str, str]],
    now: datetime | None = None,
) -> Frame:
    """Every bucket of the period as a bar without counts (see :class:`Frame`)."""
    assert query.start is not None
    step, offset = spec
    start = query.start
    end = query.end or (now or datetime.now(UTC))
    first = (int(start.timestamp() * 1000) - offset) // step * step + offset
    last = int(end.timestamp() * 1000)
    bars = []
    ms = first
    # The filters every bar keeps, encoded once; each bar adds its period.
    keep = urlencode([*base_args, ("period", "custom")])
    start_local = start.astimezone(tz)
    hi = datetime.fromtimestamp(first / 1000, UTC).astimezone(tz)
    while ms <= last:
        lo = hi  # a bar starts where the one before it ends
        hi = datetime.fromtimestamp((ms + step) / 1000, UTC).astimezone(tz)
        shown_from = max(lo, start_local)
        # urlencode's output for these two digits-and-colons values, without its per-bar cost.
        span = (
            f"from={_minute(shown_from).replace(':', '%3A')}"
            f"&to={_minute(hi - timedelta(minutes=1)).replace(':', '%3A')}"
        )
        bars.append(Bar(lo, hi, 0, 0, 0, f"{page_url}?{keep}&{span}"))
        ms += step
    day_fmt = day_format()
    slot = WIDTH / max(len(bars), 1)
    gap = min(2.0, slot * 0.15)
    return Frame(
        step,
        first,
        bars,
        [_span(b, step, day_fmt) for b in bars],
        [
            f'<rect class="bar-hit" x="{i * slot:.2f}" y="0" width="{slot:.2f}" '
            f'height="{HEIGHT + TOP}"/>'
            for i in range(len(bars))
        ],
        [(i * slot + gap / 2, max(slot - gap, 1)) for i in range(len(bars))],
    )


def fill(found: list[Bucket], shape: Frame) -> dict[str, Any]:
    """The chart's bars with the answer's counts, and its SVG."""
    buckets = {b.start_ms: b for b in found}
    first, step = shape.first_ms, shape.step
    bars = []
    for i, bar in enumerate(shape.bars):
        b = buckets.get(first + i * step) or Bucket(first + i * step)
        success, failure = b.counts.get("success", 0), b.counts.get("failure", 0)
        bars.append(
            Bar(bar.start, bar.end, success, failure, b.total - success - failure, bar.href)
        )
    return {
        "bars": bars,
        "svg": svg(bars, shape),
        "step_ms": step,
        "total": sum(b.total for b in bars),
    }


def covers(shape: Frame, found: list[Bucket]) -> bool:
    """Whether every bucket the store found has its bar (a bucket may begin between
    building the frame and the answer)."""
    last = shape.first_ms + (len(shape.bars) - 1) * shape.step
    return all(b.start_ms <= last for b in found)


def _minute(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M")


def _span(bar: Bar, step: int, day_fmt: str) -> str:
    """A bar's period in words: its day(s), or its day and hours (``day_fmt``: the page's)."""
    start = bar.start.strftime(day_fmt)
    if step >= 24 * 60 * MINUTE:
        return (
            start
            if step == 24 * 60 * MINUTE
            else f"{start} – {(bar.end - timedelta(minutes=1)).strftime(day_fmt)}"
        )
    return f"{start} {bar.start:%H:%M}–{bar.end:%H:%M}"


def svg(bars: list[Bar], shape: Frame) -> Markup:
    """Stacked bars (failure on success, others on top), each a link narrowing the period."""
    from markupsafe import escape

    peak = max((b.total for b in bars), default=0) or 1
    out = [
        f'<svg class="chart-svg" viewBox="0 0 {WIDTH} {HEIGHT + TOP}" preserveAspectRatio="none" '
        'role="group" aria-labelledby="chart-title" data-testid="chart-svg">'
    ]
    # Translated once, filled per bar (a gettext call per bar cost more than the bars).
    template = _("%(span)s: %(n)s events, %(ok)s succeeded, %(bad)s failed")
    number = number_format()
    for b, span, hit, (x, w) in zip(bars, shape.spans, shape.hits, shape.places, strict=True):
        words = template % {
            "span": span,
            "n": number(b.total),
            "ok": number(b.success),
            "bad": number(b.failure),
        }
        y: float = HEIGHT + TOP
        parts = []
        for value, cls in ((b.success, "bar-ok"), (b.failure, "bar-bad"), (b.other, "bar-other")):
            if not value:
                continue
            h = value / peak * HEIGHT
            y -= h
            parts.append(
                f'<rect class="{cls}" x="{x:.2f}" y="{y:.2f}" width="{w:.2f}" height="{h:.2f}"/>'
            )
        # The whole column is the link's target, however short the bar.
        said = escape(words)
        out.append(
            f'<a href="{escape(b.href)}" class="bar" aria-label="{said}" '
            f'data-total="{b.total}" data-failure="{b.failure}" data-testid="chart-bar">'
            f"<title>{said}</title>{hit}{''.join(parts)}</a>"
        )
    out.append("</svg>")
    return Markup("".join(out))
