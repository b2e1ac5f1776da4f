"""The SQLite file's tables and indexes, derived from :data:`useraudit.schema.FIELDS`.

What each table is for is described in :mod:`useraudit.store.sqlite`; why the
indexes are the few they are, with the measurements, in docs/sqlite.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from useraudit.schema import FIELDS, Kind

from ..query import FACETS, PERSON_FILTERS, TERM_FILTERS, TextNode, to_fts5
from . import facet_combos, facet_values, related_users
from .facet_combos import COMBO_COLUMNS, COMBO_FACETS
from .facet_values import VALUE_COLUMNS, VALUE_FACETS
from .stems import stem_node


def column(name: str) -> str:
    """SQL column for a schema field: ``user.target.name`` → ``user_target_name``."""
    return name.lstrip("@").replace(".", "_")


# (field name, column, kind, multi) for every stored field, in schema order.
COLUMNS: tuple[tuple[str, str, Kind, bool], ...] = tuple(
    (f.name, column(f.name), f.kind, f.multi) for f in FIELDS if f.name != "related.user"
) + (("related.user", "related_user", Kind.NAME, True),)
# Lowercase, accent-folded shadows of the person fields the filters match on.
FOLDED: tuple[tuple[str, str], ...] = tuple(
    (f"{prefix}.{part}", column(f"{prefix}.{part}") + "_fold")
    for prefix in PERSON_FILTERS.values()
    for part in ("name", "email")
)
FIELD_COLUMN: dict[str, str] = {name: col for name, col, _k, _m in COLUMNS}
assert all(col in FIELD_COLUMN.values() for col in (column(f) for f in FACETS.values()))

_SQL_TYPE = {Kind.INTEGER: "INTEGER", Kind.BOOLEAN: "INTEGER"}

DAY_MS = 86_400_000
# Indexes whose keys arrive in no time order (people, IP addresses) lead with
# the event's week, so new events dirty only the current week's pages (docs/sqlite.md).
WEEK_MS = 7 * DAY_MS

HOT = "events INDEXED BY events_hot"
# The planner would walk events_hot to avoid sorting; a network's few rows
# are found (and sorted) far sooner through the IP index.
BY_IP = "events INDEXED BY events_ip"
# Rollup rows: (account, facet, UTC month, value) → count, kept exact in the
# same transactions as writes and deletes. "_total" counts every event.
TOTAL = "_total"
# The few-valued facets live in events_hot as one combination id (see
# facet_combos); action, project, user and target, whose combinations are
# nearly as many as the rows, each as a value id (see facet_values).
assert all(FIELD_COLUMN[FACETS[name]] == col for name, col in COMBO_FACETS)
assert all(FIELD_COLUMN[FACETS[name]] == col for name, col in VALUE_FACETS)
assert set(FACETS) == {name for name, _c in COMBO_FACETS + VALUE_FACETS}
COMBO_NAMES = frozenset(name for name, _col in COMBO_FACETS)
VALUE_ID_COLUMN = {name: facet_values.id_column(col) for name, col in VALUE_FACETS}
# Term filters answered through the combination id.
COMBO_FILTERS = {
    attr: FIELD_COLUMN[field]
    for attr, field in TERM_FILTERS.items()
    if FIELD_COLUMN[field] in COMBO_COLUMNS
}
# Term filters answered through the value ids.
VALUE_FILTERS = {
    attr: FIELD_COLUMN[field]
    for attr, field in TERM_FILTERS.items()
    if FIELD_COLUMN[field] in VALUE_COLUMNS
}
FACET_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (name, column(field)) for name, field in FACETS.items()
)

# (account, column, ts_ms) indexes: filter and order in one, only for filters
# selective enough to beat walking the account's rows (docs/sqlite.md: each
# index dropped and why).
_INDEXED = ("audit_token_id",)
VALUE_ID_COLUMNS = tuple(facet_values.id_column(col) for col in VALUE_COLUMNS)
HOT_COLUMNS = tuple(
    col
    for col in dict.fromkeys(
        [
            "combo",
            *VALUE_ID_COLUMNS,
            *(column(f) for f in TERM_FILTERS.values()),
            "audit_group",
        ]
    )
    if col not in COMBO_COLUMNS and col not in VALUE_COLUMNS
)


def event_columns() -> list[tuple[str, str]]:
    """(column, SQL type) of every ``events`` column but the key columns; all nullable."""
    cols = []
    for name, col, kind, multi in COLUMNS:
        if name == "event.id":
            continue
        cols.append((col, "TEXT" if multi or kind is Kind.FLAT else _SQL_TYPE.get(kind, "TEXT")))
    cols += [(col, "TEXT") for _name, col in FOLDED]
    cols.append(("ip_key", "BLOB"))
    cols.append(("combo", "INTEGER"))  # facet_combos.id
    cols += [(col, "INTEGER") for col in VALUE_ID_COLUMNS]  # facet_values.id
    return cols


def ddl() -> list[str]:
    """Every table, index and view of a new file (each IF NOT EXISTS)."""
    cols = [
        "rid INTEGER PRIMARY KEY",
        "event_id TEXT NOT NULL UNIQUE",
        "ts_ms INTEGER NOT NULL",
        "week INTEGER NOT NULL",
        *(f"{col} {sql_type}" for col, sql_type in event_columns()),
    ]
    stmts = [
        "CREATE TABLE IF NOT EXISTS events (\n  " + ",\n  ".join(cols) + "\n)",
        # The sort order plus every facet and term-filter column: a narrow copy
        # of the hot part of each row, so counting and faceting many matches
        # never reads the wide rows (comments, user agent, params...).
        "CREATE INDEX IF NOT EXISTS events_hot "
        f"ON events(organization_id, ts_ms, event_id, {', '.join(HOT_COLUMNS)})",
        *(
            f"CREATE INDEX IF NOT EXISTS events_{col} ON events(organization_id, {col}, ts_ms)"
            for col in dict.fromkeys(_INDEXED)
        ),
        "CREATE INDEX IF NOT EXISTS events_ip ON events(organization_id, week, ip_key)",
        *related_users.DDL,
        # month = year * 12 + month - 1 (UTC).
        "CREATE TABLE IF NOT EXISTS facet_counts (\n"
        "  organization_id TEXT NOT NULL, facet TEXT NOT NULL, month INTEGER NOT NULL,\n"
        "  value TEXT NOT NULL, n INTEGER NOT NULL,\n"
        "  PRIMARY KEY (organization_id, facet, month, value)) WITHOUT ROWID",
        facet_combos.DDL,
        facet_values.DDL,
        *FTS_DDL,
    ]
    return stmts


# Search text is matched within one account: FTS5 indexes one token per
# account beside the comments and every MATCH names it (docs/sqlite.md). The
# token is "a" and the hex of the account id, as SQL's hex() writes it, so the
# external content can be a view over events. Only events with comments are indexed.
# FTS5 indexes the comments' stems (.stems), which the view computes with a
# function every connection of the store registers (STEMS_FUNCTION).
TOKENIZE = "tokenize='unicode61 remove_diacritics 2'"
STEMS_FUNCTION = "useraudit_stems"
FTS_DDL = (
    "CREATE VIEW IF NOT EXISTS events_fts_source AS\n"
    f"  SELECT rid, 'a' || hex(organization_id) AS account, {STEMS_FUNCTION}(audit_comments)"
    " AS audit_comments FROM events\n"
    "  WHERE audit_comments IS NOT NULL",
    "CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(\n"
    "  account, audit_comments, content='events_fts_source', content_rowid='rid',\n"
    f"  {TOKENIZE}, prefix='2 3')",
)


@lru_cache(maxsize=1024)
def account_token(account: str) -> str:
    """An account's token in events_fts (what the view's ``'a' || hex(...)`` makes)."""
    return "a" + account.encode().hex().upper()


def match(account: str, node: TextNode) -> str:
    """FTS5 MATCH text for ``node`` (as stems) in the comments of ``account``'s events."""
    return f'account : "{account_token(account)}" AND audit_comments : {to_fts5(stem_node(node))}'


def marks(values: Sequence[Any]) -> str:
    """``?,?,?``: one SQL parameter per value."""
    return ",".join("?" * len(values))
