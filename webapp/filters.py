"""The User actions page's state, read from and written back to the URL.

Every filter lives in the query string, so a view can be bookmarked, shared
and reloaded. :class:`Filters` parses ``request.args`` (never trusting them:
anything malformed becomes a :class:`~useraudit.store.QueryError` with a
message safe to show) and builds the store's :class:`~useraudit.store.Query`
with the account taken from the route, never from the URL's arguments.

Parameters (multi-valued ones repeat, one value each: ``user=a&user=b``;
a value is never split on commas, which names and e-mails may contain).
Values of one parameter are ORed, parameters ANDed; ``group`` and
``action`` are one facet (the action picker), so they are ORed too:

==========  ==========================================================
product     product code (``common``, ``jaicp``, any registered)
group       ``product:Group name``: every action of a catalog group
action      action code (``custom_role.renamed``)
period      ``1h``, ``24h``, ``7d``, ``30d`` or ``custom`` (with from/to)
from, to    ``YYYY-MM-DDTHH:MM`` in the chosen time zone
tz          IANA time zone the page shows times in (default UTC)
user, target, impersonator, history, project, token, result, ip,
browser, os, device   the "more filters"
q           full text over comments
c           the cursor stack: one entry per page already passed
last        ``1``: paging from the end (Last), where ``b`` is the stack
b           of ``before`` cursors: one entry per Previous from the last page
size        page size (25, 50, 100)
==========  ==========================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from werkzeug.datastructures import MultiDict

from useraudit.catalog import CATALOG
from useraudit.store.query import MAX_TEXT, MAX_VALUES, Query, QueryError, decode_cursor

from .zones import find, is_offered

PERIODS: dict[str, tuple[str, timedelta | None]] = {
    "1h": ("Last hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
    "custom": ("Custom range", None),
}
DEFAULT_PERIOD = "7d"
PAGE_SIZES = (25, 50, 100)
DEFAULT_SIZE = 50
MAX_DEPTH = 200  # pages a cursor stack may hold; past that, narrow the filters
# A custom period's unreadable date, per field (translated where shown).
DATE_PROBLEMS = {
    "from": "the start date should look like %(example)s",
    "to": "the end date should look like %(example)s",
}

# URL parameter → (Query attribute, label shown on chips and in the export)
MULTI: dict[str, tuple[str, str]] = {
    "product": ("products", "Product"),
    "action": ("actions", "Action"),
    "user": ("users", "User"),
    "target": ("target_users", "Modified user"),
    "impersonator": ("impersonators", "Impersonator"),
    "history": ("history", "User history"),
    "project": ("projects", "Project"),
    "token": ("token_ids", "Token ID"),
    "result": ("outcomes", "Result"),
    "ip": ("ips", "IP"),
    "browser": ("browsers", "Browser"),
    "os": ("oses", "OS"),
    "device": ("devices", "Device"),
    "country": ("countries", "Country"),
    "request": ("request_ids", "Request"),
}
# Facet (store.query.FACETS key) → URL parameter a click on it sets.
FACET_PARAMS = {
    "action": "action",
    "result": "result",
    "user": "user",
    "target": "target",
    "impersonator": "impersonator",
    "project": "project",
    "product": "product",
    "browser": "browser",
    "os": "os",
    "device": "device",
    "country": "country",
}
FACET_LABELS = {
    "action": "Action",
    "result": "Result",
    "user": "User",
    "target": "Modified user",
    "impersonator": "Impersonator",
    "project": "Project",
    "product": "Product",
    "browser": "Browser",
    "os": "OS",
    "device": "Device",
    "country": "Country",
}
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
END_OF_MINUTE = timedelta(seconds=59, milliseconds=999)


def _values(args: MultiDict, name: str) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for raw in args.getlist(name):
        value = raw.strip()
        if value:
            out.setdefault(value[:256], None)
    if len(out) > MAX_VALUES:
        raise QueryError("at most %(n)s values per filter", n=MAX_VALUES)
    return tuple(out)


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# IANA names: Area/Location, letters, digits, _ + - only, short.
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]{0,30}(?:/[A-Za-z0-9_+-]{1,30}){0,2}")
# Custom periods are clamped here: no event is older (the indexer clamps
# timestamps before 2000) and every store and zone can represent these.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, 23, 59, tzinfo=UTC)


def zone(name: str) -> ZoneInfo:
    if not _ZONE_NAME.fullmatch(name):
        raise QueryError("unknown time zone %(name)s", name=repr(name[:64]))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # A folder of the zone database (America), or a file that is not one.
        raise QueryError("unknown time zone %(name)s", name=repr(name)) from None


@dataclass(frozen=True)
class Filters:
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    period: str = DEFAULT_PERIOD
    start_local: str = ""
    end_local: str = ""
    tz: str = "UTC"
    text: str = ""
    cursors: tuple[str, ...] = ()
    size: int = DEFAULT_SIZE
    # Paging from the end: Last, then one ``before`` cursor per Previous.
    from_end: bool = False
    befores: tuple[str, ...] = ()

    # -- parsing ---------------------------------------------------------------

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]], default_tz: str = "UTC") -> Filters:
        """The filters of (name, value) pairs, as a query string holds them.

        For callers without a Flask request (a CLI, a JSON API): the same
        parameters and checks as the User actions page.
        """
        return cls.parse(MultiDict(list(pairs)), default_tz)

    @classmethod
    def parse(cls, args: MultiDict, default_tz: str = "UTC") -> Filters:
        """Read the URL; raises QueryError with a friendly message on bad input."""
        for name, value in args.items(multi=True):
            if not _is_text(name) or not _is_text(value):
                # A lone surrogate cannot come out of a UTF-8 URL, but a caller
                # handing one in would otherwise crash the links built from it.
                raise QueryError("the address holds characters that are not text")
        values = {name: _values(args, name) for name in MULTI}
        values = {k: v for k, v in values.items() if v}
        groups = _values(args, "group")
        for g in groups:
            if ":" not in g:
                raise QueryError(
                    "group %(group)s should look like product:Group name", group=repr(g)
                )
        period = args.get("period") or DEFAULT_PERIOD
        if period not in PERIODS:
            raise QueryError("unknown period %(period)s", period=repr(period))
        tz = (args.get("tz") or default_tz).strip()
        if not is_offered(tz):
            tz = find(tz) or tz  # typed as a city ("berlin") or an old alias (Europe/Kiev)
        zone(tz)
        text = " ".join((args.get("q") or "").split())  # pasted tabs and line breaks: spaces
        if any(ch < " " or ch == "\x7f" for ch in text):
            raise QueryError("the search text holds control characters such as NUL")
        if len(text) > MAX_TEXT:
            raise QueryError("search text is limited to %(n)s characters", n=MAX_TEXT)
        cursors = tuple(c for c in args.getlist("c") if c)
        if len(cursors) > MAX_DEPTH:
            raise QueryError(
                "paging is limited to %(n)s pages: narrow the filters instead", n=MAX_DEPTH
            )
        from_end = args.get("last") == "1"
        befores = tuple(b for b in args.getlist("b") if b) if from_end else ()
        if cursors and from_end:
            raise QueryError("that page link is invalid or expired")
        if len(befores) > MAX_DEPTH:
            raise QueryError(
                "paging is limited to %(n)s pages: narrow the filters instead", n=MAX_DEPTH
            )
        for c in (*cursors, *befores):
            decode_cursor(c)  # crafted or damaged cursors fail here, politely
        try:
            size = int(args.get("size") or DEFAULT_SIZE)
        except ValueError:
            raise QueryError("page size must be a number") from None
        if size not in PAGE_SIZES:
            raise QueryError(
                "page size must be one of %(sizes)s", sizes=", ".join(map(str, PAGE_SIZES))
            )
        f = cls(
            values,
            groups,
            period,
            (args.get("from") or "").strip(),
            (args.get("to") or "").strip(),
            tz,
            text,
            cursors,
            size,
            from_end,
            befores,
        )
        f.bounds(datetime.now(UTC))  # validate the range now
        return f

    def bounds(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """(start, end) in UTC for the period."""
        delta = PERIODS[self.period][1]
        if delta is not None:
            return now - delta, None
        tz = zone(self.tz)

        def parse(value: str, problem: str) -> datetime | None:
            if not value:
                return None
            try:
                local = datetime.strptime(value[:16], LOCAL_FORMAT)
            except ValueError:
                raise QueryError(problem, example="2026-01-31T23:59") from None
            try:
                utc = local.replace(tzinfo=tz).astimezone(UTC)
            except OverflowError:  # year 1 east of UTC, year 9999 west of it
                utc = EARLIEST if local.year < 5000 else LATEST
            return min(max(utc, EARLIEST), LATEST)

        start, end = (
            parse(self.start_local, "the start date should look like %(example)s"),
            parse(self.end_local, "the end date should look like %(example)s"),
        )
        if end is not None:
            end += END_OF_MINUTE  # "To 10:59" includes everything up to 10:59:59.999
        if start and end and start > end:
            raise QueryError(
                "the period ends before it starts: To (%(to)s) is earlier than From (%(from)s); "
                "swap them or choose other dates",
                to=self.end_local.replace("T", " "),
                **{"from": self.start_local.replace("T", " ")},
            )
        return start, end

    def query(self, account: str, now: datetime | None = None) -> Query:
        start, end = self.bounds(now or datetime.now(UTC))
        kwargs = {MULTI[name][0]: vals for name, vals in self.values.items()}
        groups = tuple(tuple(g.split(":", 1)) for g in self.groups)
        return Query(account=account, start=start, end=end, groups=groups, text=self.text, **kwargs)  # type: ignore[arg-type]

    @property
    def cursor(self) -> str | None:
        return self.cursors[-1] if self.cursors else None

    @property
    def before(self) -> str | None:
        """Paging from the end: the page just newer than this cursor."""
        return self.befores[-1] if self.befores else None

    @property
    def last(self) -> bool:
        """Whether this is the Last page itself."""
        return self.from_end and not self.befores

    @property
    def page_number(self) -> int:
        return len(self.cursors) + 1

    @property
    def on_first_page(self) -> bool:
        return not self.cursors and not self.from_end

    def page_range(self, total: int, shown: int) -> tuple[int, int]:
        """The page's "first–last" numbers of ``total``.

        Paging from the end counts from the end: the last page holds
        ``total % size`` rows, so its pages line up with those from page 1.
        """
        if not self.from_end:
            first = (self.page_number - 1) * self.size + 1
            return first, first + shown - 1
        older = 0
        if self.befores:
            older = (total % self.size or self.size) + (len(self.befores) - 1) * self.size
        last = max(total - older, shown)
        return last - shown + 1, last

    # -- writing back ------------------------------------------------------------

    def args(self, *, keep_cursors: bool = False) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for name in MULTI:
            out.extend((name, v) for v in self.values.get(name, ()))
        out.extend(("group", g) for g in self.groups)
        if self.period != DEFAULT_PERIOD:
            out.append(("period", self.period))
        if self.period == "custom":
            if self.start_local:
                out.append(("from", self.start_local))
            if self.end_local:
                out.append(("to", self.end_local))
        if self.tz != "UTC":
            out.append(("tz", self.tz))
        if self.text:
            out.append(("q", self.text))
        if self.size != DEFAULT_SIZE:
            out.append(("size", str(self.size)))
        if keep_cursors:
            out.extend(("c", c) for c in self.cursors)
            if self.from_end:
                out.append(("last", "1"))
                out.extend(("b", b) for b in self.befores)
        return out

    def qs(self, **kw: bool) -> str:
        # Called for every facet and history link on the page: encode each
        # (name, value) pair once per process, not once per link.
        return "&".join(query_pair(name, value) for name, value in self.args(**kw))

    def with_values(self, name: str, values: Iterable[str]) -> Filters:
        new = dict(self.values)
        vals = tuple(dict.fromkeys(values))
        if vals:
            new[name] = vals
        else:
            new.pop(name, None)
        return replace(self, values=new, cursors=(), from_end=False, befores=())

    def toggled(self, name: str, value: str) -> Filters:
        """The filters with ``value`` added to (or removed from) ``name``; back to page 1."""
        current = self.values.get(name, ())
        if value in current:
            return self.with_values(name, (v for v in current if v != value))
        return self.with_values(name, (*current, value))

    def without_group(self, group: str) -> Filters:
        return replace(
            self,
            groups=tuple(g for g in self.groups if g != group),
            cursors=(),
            from_end=False,
            befores=(),
        )

    def without_text(self) -> Filters:
        return replace(self, text="", cursors=(), from_end=False, befores=())

    def next_page(self, cursor: str) -> Filters:
        if self.from_end:  # back towards Last: the stack of Previous steps unwinds
            return replace(self, befores=self.befores[:-1])
        return replace(self, cursors=(*self.cursors, cursor))

    def previous_page(self, newer: str | None = None) -> Filters:
        """The page before this one; from the end that needs the page's own ``newer`` cursor."""
        if self.from_end:
            if newer is None:
                raise ValueError("paging back from the end needs the page's prev_cursor")
            return replace(self, befores=(*self.befores, newer))
        return replace(self, cursors=self.cursors[:-1])

    def last_page(self) -> Filters:
        return replace(self, cursors=(), from_end=True, befores=())

    def is_active(self, name: str, value: str) -> bool:
        return value in self.values.get(name, ())

    def describe(self) -> list[tuple[str, str]]:
        """(label, value) pairs in words, for chips and the export's Filters sheet."""
        out: list[tuple[str, str]] = []
        for name, (_attr, label) in MULTI.items():
            for v in self.values.get(name, ()):
                out.append((label, value_label(name, v)))
        for g in self.groups:
            product, group = g.split(":", 1)
            p = CATALOG.product(product)
            out.append(("Group", f"{p.label if p else product} › {group}"))
        if self.text:
            out.append(("Comments contain", self.text))
        return out


@lru_cache(maxsize=4096)
def query_pair(name: str, value: str) -> str:
    """``name=value`` as a query string carries it (cached: links repeat values)."""
    return f"{quote_plus(name)}={quote_plus(value)}"


def value_label(param: str, value: str) -> str:
    """A filter value as people read it (action codes → labels, products → names)."""
    if param == "action":
        action = CATALOG.get(value)
        return action.label if action else value
    if param == "product":
        product = CATALOG.product(value)
        return product.label if product else value
    if param == "result":
        return value.capitalize()
    return value
