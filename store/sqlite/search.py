"""Answering a search on SQLite: the SQL condition, the plan, the page, the total and the facets.

:class:`Search` works on one connection. :meth:`Search.plan` picks what
drives a query (the people index, the IP index, the full-text row ids, or a
scan of the account's ``events_hot`` entries); the total and the facets come
from the same pass as the page where they can, from the monthly rollup for
an account and a period. docs/sqlite.md has the measurements behind each choice.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from .. import histogram
from ..histogram import Bucket
from ..query import (
    EXTRA_FILTERS,
    FACETS,
    FOLDED_FILTERS,
    PERSON_FILTERS,
    PIVOT_FILTERS,
    TERM_FILTERS,
    Query,
    SearchPage,
    SearchRequest,
    backward_page,
    decode_cursor,
    encode_cursor,
    parse_text,
    to_ms,
)
from . import facet_combos, facet_values, related_users
from .highlight import highlight
from .layout import (
    BY_IP,
    COMBO_FILTERS,
    COMBO_NAMES,
    DAY_MS,
    FIELD_COLUMN,
    HOT,
    TOTAL,
    VALUE_FILTERS,
    VALUE_ID_COLUMN,
    WEEK_MS,
    marks,
    match,
)
from .rollup import month_of_day, month_start_ms
from .rows import FOLD_FUNCTION, READ_COLUMNS, fold_value, ip_range, read_doc
from .writes import Ids

# Search text matching at most this many of the account's rows is answered by
# looking those rows up; more, and the account's events_hot entries are scanned.
FTS_DRIVE_LIMIT = 20_000


class Search:
    """Queries of one store on one connection (the caller translates SQLite's errors)."""

    def __init__(self, con: sqlite3.Connection, ids: Ids) -> None:
        self.con = con
        self.ids = ids

    def where(
        self, query: Query, by_rid: bool = False, text_rids: str | None = None
    ) -> tuple[str, list[Any]]:
        """SQL condition and parameters for ``query``; the account comes first, always.

        ``by_rid``: the account test is written ``+organization_id`` so no
        account index is used and the few candidate rows named by a
        ``rid IN (...)`` subquery (people, history, rare words) drive the search.
        ``text_rids``: every row the search text matches, already found by
        :meth:`plan` (the text is then not matched a second time).
        """
        clauses = ["+organization_id = ?" if by_rid else "organization_id = ?"]
        params: list[Any] = [query.account]
        by_week = query.history or query.ips or any(getattr(query, a) for a in PERSON_FILTERS)
        weeks = self.weeks(query) if by_week else []
        if query.start:
            clauses.append("ts_ms >= ?")
            params.append(to_ms(query.start))
        if query.end:
            clauses.append("ts_ms <= ?")
            params.append(to_ms(query.end))
        for attr, field in TERM_FILTERS.items():
            values = getattr(query, attr)
            if values and attr == "actions" and query.groups:
                continue  # with groups: one facet (the action picker), below
            if values:
                col = FIELD_COLUMN[field]
                if attr in FOLDED_FILTERS:  # case-insensitive: the few combinations, folded
                    clauses.append(facet_combos.filter_sql(f"{FOLD_FUNCTION}({col})", len(values)))
                    params.extend(fold_value(v) for v in values)
                    continue
                if attr in COMBO_FILTERS:  # events_hot holds these as the combination id
                    clauses.append(facet_combos.filter_sql(col, len(values)))
                elif attr in VALUE_FILTERS:  # ...and these as value ids
                    clauses.append(facet_values.filter_sql(col, len(values)))
                else:
                    clauses.append(f"{col} IN ({marks(values)})")
                params.extend(values)
        for attr, field in PIVOT_FILTERS.items():
            values = getattr(query, attr)
            if values:
                clauses.append(f"{FIELD_COLUMN[field]} IN ({marks(values)})")
                params.extend(values)
        for attr, prefix in PERSON_FILTERS.items():
            values = getattr(query, attr)
            if values:
                # related_users lists every person of an event (folded): it finds
                # the candidates by index; the role's own columns decide.
                folded = [fold_value(v) for v in values]
                clauses.append(
                    "rid IN (SELECT rid FROM related_users WHERE organization_id = ? "
                    f"AND week IN ({marks(weeks)}) AND {related_users.lookup_sql(len(values))})"
                    f" AND ({FIELD_COLUMN[prefix + '.id']} IN ({marks(values)})"
                    f" OR {folded_sql(FIELD_COLUMN[prefix + '.name'])} IN ({marks(values)})"
                    f" OR {folded_sql(FIELD_COLUMN[prefix + '.email'])} IN ({marks(values)})"
                    f" OR {FOLD_FUNCTION}({FIELD_COLUMN[prefix + '.full_name']})"
                    f" IN ({marks(values)}))"
                )
                params.extend(
                    [
                        query.account,
                        *weeks,
                        query.account,
                        *folded,
                        *values,
                        *folded,
                        *folded,
                        *folded,
                    ]
                )
        if query.history:
            clauses.append(
                "rid IN (SELECT rid FROM related_users WHERE organization_id = ? "
                f"AND week IN ({marks(weeks)}) AND {related_users.lookup_sql(len(query.history))})"
            )
            params.append(query.account)
            params.extend(weeks)
            params.append(query.account)
            params.extend(fold_value(v) for v in query.history)
        if query.ips:
            ranges = [ip_range(v) for v in query.ips]
            clauses.append(f"week IN ({marks(weeks)})")
            params.extend(weeks)
            clauses.append("(" + " OR ".join("ip_key BETWEEN ? AND ?" for _ in ranges) + ")")
            for lo, hi in ranges:
                params += [lo, hi]
        if query.groups:
            # The action picker: any ticked group or any ticked action.
            product_is = facet_combos.filter_sql("audit_product", 1)
            picked = [f"(audit_group = ? AND {product_is})" for _ in query.groups]
            for product, group in query.groups:
                params += [group, product]
            if query.actions:
                picked.append(
                    facet_values.filter_sql(FIELD_COLUMN["event.action"], len(query.actions))
                    if "actions" in VALUE_FILTERS
                    else f"{FIELD_COLUMN['event.action']} IN ({marks(query.actions)})"
                )
                params.extend(query.actions)
            clauses.append("(" + " OR ".join(picked) + ")")
        if text_rids is not None:
            clauses.append("rid IN (SELECT value FROM json_each(?))")
            params.append(text_rids)
        elif (node := parse_text(query.text)) is not None:
            clauses.append("rid IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)")
            params.append(match(query.account, node))
        return " AND ".join(clauses), params

    def weeks(self, query: Query) -> list[int]:
        """The weeks of the query's period that can hold the account's events."""
        con = self.con
        first, last = (
            con.execute(
                f"SELECT {fn}(ts_ms) FROM events WHERE organization_id = ?", (query.account,)
            ).fetchone()[0]
            for fn in ("min", "max")
        )
        if first is None:
            return []
        lo = max(first, to_ms(query.start)) if query.start else first
        hi = min(last, to_ms(query.end)) if query.end else last
        return list(range(lo // WEEK_MS, hi // WEEK_MS + 1)) if lo <= hi else []

    def plan(self, con: sqlite3.Connection, query: Query) -> tuple[str, bool, str | None]:
        """(table source for counting, drive by rid?, rows the text matches) for ``query``.

        The rows the text matches, if given, are a JSON array of row ids.

        People and history filters have few candidates in related_users:
        drive from them. IP and token filters have their own indexes.
        Search text drives from FTS5's row ids when it matches few of the
        account's rows, and those row ids are passed on: matching a phrase
        costs as much as the rest of such a search, so it is done once. A
        common word instead scans the account's narrow ``events_hot``
        entries, which costs less than reading that many wide rows one by
        one. Everything else (projects, actions, outcomes...) scans
        ``events_hot``.
        """
        if query.history or any(getattr(query, name) for name in PERSON_FILTERS):
            return "events", True, None
        if driven_by_ip(query):
            return BY_IP, False, None
        if query.token_ids:
            return "events", False, None
        node = parse_text(query.text)
        if node is not None:
            # Counted and listed in SQLite, not as Python ints (docs/sqlite.md).
            found, rids = con.execute(
                "SELECT count(*), json_group_array(rowid) FROM "
                "(SELECT rowid FROM events_fts WHERE events_fts MATCH ? LIMIT ?)",
                (match(query.account, node), FTS_DRIVE_LIMIT + 1),
            ).fetchone()
            if found <= FTS_DRIVE_LIMIT:
                return "events", True, rids
        return HOT, False, None

    def search(self, request: SearchRequest) -> SearchPage:
        """One page of matches with the total and facets of every match."""
        con = self.con
        source, by_rid, text_rids = self.plan(con, request.query)
        where, params = self.where(request.query, by_rid, text_rids)
        position = request.before or request.cursor
        cursor = decode_cursor(position) if position else None
        # Backward (``before``/``last``) reads oldest first and turns the page round.
        order, past = ("ASC", ">") if request.backward else ("DESC", "<")
        if source == HOT and not period_only(request.query):
            rows, more, total, facets = self._scan_hot(
                con, request, where, params, cursor, order, past
            )
        else:
            page_where, page_params = where, list(params)
            if cursor:
                page_where += f" AND (ts_ms, event_id) {past} (?, ?)"
                page_params += list(cursor)
            rows = con.execute(
                f"SELECT rid, ts_ms, {', '.join(READ_COLUMNS)} FROM {source} "
                f"WHERE {page_where} ORDER BY ts_ms {order}, event_id {order} LIMIT ?",
                [*page_params, request.size + 1],
            ).fetchall()
            more = len(rows) > request.size
            total, facets = self._facets(con, request, where, params, source)
        newer = bool(request.cursor)
        if request.backward:
            rows, newer = backward_page(rows, int(total), request)
            more = request.before is not None  # the ``before`` row itself is older
        else:
            rows = rows[: request.size]
        hits = [read_doc(r[2:]) for r in rows]
        if request.highlight:
            highlight(con, request.query, rows, hits)
        next_cursor = encode_cursor(rows[-1][1], hits[-1]["event.id"]) if more and rows else None
        prev_cursor = encode_cursor(rows[0][1], hits[0]["event.id"]) if newer and rows else None
        return SearchPage(
            hits=hits,
            total=int(total),
            next_cursor=next_cursor,
            facets=facets,
            prev_cursor=prev_cursor,
        )

    def _scan_hot(
        self,
        con: sqlite3.Connection,
        request: SearchRequest,
        where: str,
        params: list[Any],
        cursor: tuple[int, str] | None,
        order: str = "DESC",
        past: str = "<",
    ) -> tuple[list, bool, int, dict[str, list[tuple[str, int]]]]:
        """Page, total and facets from one ordered pass over the account's events_hot entries.

        The index is already in page order, so the same scan that counts
        every match also yields the page after the cursor: the search text
        is evaluated once, not once for the page and again for the counts.
        """
        # The few-valued facets arrive as one combination id per row.
        cols = hot_facet_columns(request.facets)
        counters: list[Counter] = [Counter() for _ in cols]
        need = request.size + 1
        page: list[int] = []
        total = 0
        # With a cursor, a second column tells whether the row is after it (a
        # small int, not the event id string of every match); without one,
        # every row is, and handing over one value less per match counts.
        after, after_params = (
            (f"(ts_ms, event_id) {past} (?, ?), ", list(cursor)) if cursor else ("", [])
        )
        first = 2 if cursor else 1  # where the facet columns start
        cur = con.execute(
            f"SELECT rid, {after}{', '.join(cols) or '0'} FROM {HOT} WHERE {where} "
            f"ORDER BY ts_ms {order}, event_id {order}",
            [*after_params, *params],
        )
        while chunk := cur.fetchmany(20_000):
            total += len(chunk)
            for i, counter in enumerate(counters, start=first):
                counter.update(map(itemgetter(i), chunk))
            if len(page) < need:
                if cursor:
                    page += [r[0] for r in chunk if r[1]][: need - len(page)]
                else:
                    page += [r[0] for r in chunk[: need - len(page)]]
        by_name = self._by_facet(con, request.facets, counters)
        more = len(page) > request.size
        by_rid = {
            r[0]: r
            for r in con.execute(
                f"SELECT rid, ts_ms, {', '.join(READ_COLUMNS)} FROM events "
                f"WHERE rid IN ({marks(page)})",
                page,
            )
        }
        rows = [by_rid[rid] for rid in page]
        facets = {name: top(by_name[name], request.facet_size) for name in request.facets}
        return rows, more, total, facets

    def _facets(
        self,
        con: sqlite3.Connection,
        request: SearchRequest,
        where: str,
        params: list[Any],
        source: str,
    ) -> tuple[int, dict[str, list[tuple[str, int]]]]:
        """Total and facet counts for every match (the cursor does not narrow them)."""
        query = request.query
        if period_only(query):
            return self._facets_from_rollup(con, request)
        if not request.facets:
            return int(
                con.execute(f"SELECT count(*) FROM {source} WHERE {where}", params).fetchone()[0]
            ), {}
        # One pass over the matches counts every facet (instead of one scan per facet).
        cols = [FIELD_COLUMN[FACETS[name]] for name in request.facets]
        counters: list[Counter] = [Counter() for _ in cols]
        total = 0
        cur = con.execute(f"SELECT {', '.join(cols)} FROM {source} WHERE {where}", params)
        while rows := cur.fetchmany(20_000):
            total += len(rows)
            for i, counter in enumerate(counters):
                counter.update(map(itemgetter(i), rows))
        return total, {
            name: top(c, request.facet_size)
            for name, c in zip(request.facets, counters, strict=True)
        }

    def _facets_from_rollup(
        self, con: sqlite3.Connection, request: SearchRequest
    ) -> tuple[int, dict[str, list[tuple[str, int]]]]:
        """Whole months from facet_counts, the rest of the period from events_hot."""
        query = request.query
        start = to_ms(query.start) if query.start else None
        end = to_ms(query.end) if query.end else None
        lo = hi = None  # whole months inside the period (None: open)
        if start is not None:
            m = month_of_day(start // DAY_MS)
            lo = m if start == month_start_ms(m) else m + 1
        if end is not None:
            m = month_of_day(end // DAY_MS)
            hi = m if end == month_start_ms(m + 1) - 1 else m - 1
        edges: list[tuple[int, int]] = []
        whole = lo is None or hi is None or lo <= hi
        if not whole:
            edges.append((start, end))  # type: ignore[arg-type]  # no whole month inside
        else:
            if start is not None and lo is not None and start < month_start_ms(lo):
                edges.append((start, month_start_ms(lo) - 1))
            if end is not None and hi is not None and end > month_start_ms(hi + 1) - 1:
                edges.append((month_start_ms(hi + 1), end))
        names = [TOTAL, *request.facets]
        counters: dict[str, Counter] = {name: Counter() for name in names}
        if whole:
            sql, args = "", []
            if lo is not None:
                sql += " AND month >= ?"
                args.append(lo)
            if hi is not None:
                sql += " AND month <= ?"
                args.append(hi)
            for name in names:
                counters[name].update(
                    dict(
                        con.execute(
                            "SELECT value, sum(n) FROM facet_counts "
                            "WHERE organization_id = ? AND facet = ?"
                            f"{sql} GROUP BY value",
                            [query.account, name, *args],
                        )
                    )
                )
        cols = hot_facet_columns(request.facets)
        edge_counters: list[Counter] = [Counter() for _ in cols]
        for e_lo, e_hi in edges:
            cur = con.execute(
                f"SELECT ts_ms{''.join(', ' + c for c in cols)} FROM {HOT} "
                "WHERE organization_id = ? AND ts_ms BETWEEN ? AND ?",
                [query.account, e_lo, e_hi],
            )
            while rows := cur.fetchmany(20_000):
                counters[TOTAL][""] += len(rows)
                for i, counter in enumerate(edge_counters, start=1):
                    counter.update(map(itemgetter(i), rows))
        if edges:
            for name, counter in self._by_facet(con, request.facets, edge_counters).items():
                counters[name].update(counter)
        total = int(counters[TOTAL].get("", 0))
        return total, {name: top(counters[name], request.facet_size) for name in request.facets}

    def _by_facet(
        self, con: sqlite3.Connection, names: Sequence[str], counters: list[Counter]
    ) -> dict[str, Counter]:
        """Per-facet counts from counters over :func:`hot_facet_columns`."""
        singles = [n for n in names if n not in COMBO_NAMES]
        by_name = {
            name: self.ids.values.by_value(con, counter)
            for name, counter in zip(singles, counters, strict=False)
        }
        if len(counters) > len(singles):
            by_name.update(self.ids.combos.split(con, counters[-1], names))
        return by_name

    def histogram(self, query: Query, interval_ms: int, offset_ms: int = 0) -> list[Bucket]:
        """Matches grouped by bucket and outcome in one query (see :mod:`..histogram`)."""
        offset = histogram.check(interval_ms, offset_ms)
        source, by_rid, text_rids = self.plan(self.con, query)
        where, params = self.where(query, by_rid, text_rids)
        rows = self.con.execute(
            f"SELECT (ts_ms - ?) / ? * ? + ?, combo, count(*) FROM {source} "
            f"WHERE {where} GROUP BY 1, 2",
            [offset, interval_ms, interval_ms, offset, *params],
        ).fetchall()
        outcomes = dict(self.con.execute("SELECT id, event_outcome FROM facet_combos").fetchall())
        return histogram.collect([(start, outcomes.get(combo), n) for start, combo, n in rows])

    def count(self, query: Query) -> int:
        source, by_rid, text_rids = self.plan(self.con, query)
        where, params = self.where(query, by_rid, text_rids)
        return int(
            self.con.execute(f"SELECT count(*) FROM {source} WHERE {where}", params).fetchone()[0]
        )


def hot_facet_columns(names: Sequence[str]) -> list[str]:
    """events_hot columns that count ``names``: value ids, then ``combo`` if one is wanted."""
    cols = [VALUE_ID_COLUMN[n] for n in names if n not in COMBO_NAMES]
    if any(n in COMBO_NAMES for n in names):
        cols.append("combo")
    return cols


def period_only(query: Query) -> bool:
    """True when the query is just an account and a period (the rollup can answer it)."""
    if query.text.strip():
        return False
    return not any(
        getattr(query, name) for name in (*TERM_FILTERS, *PERSON_FILTERS, *EXTRA_FILTERS)
    )


def driven_by_ip(query: Query) -> bool:
    """Whether the IP index drives the query (people and history come first)."""
    return bool(query.ips) and not (
        query.history or any(getattr(query, name) for name in PERSON_FILTERS)
    )


def folded_sql(col: str) -> str:
    """A person column's folded form (its _fold shadow is NULL when folding changes nothing)."""
    return f"coalesce({col}_fold, {col})"


def top(counter: Counter, size: int) -> list[tuple[str, int]]:
    """Highest counts first, ties by value (code point order = OpenSearch's byte order)."""
    items = [(str(k), int(n)) for k, n in counter.items() if k is not None and n > 0]
    items.sort(key=lambda kv: (-kv[1], kv[0]))
    return items[:size]
