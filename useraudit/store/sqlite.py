"""SQLiteStore: the embedded backend, one file, same answers as OpenSearch.

URL: ``sqlite:///var/lib/useraudit/audit.db`` (absolute; ``sqlite:////abs``
works too) or ``sqlite:relative/audit.db``.

Layout, derived from :data:`useraudit.schema.FIELDS`:

* ``events``: one column per field (dots → underscores, ``@timestamp`` →
  ``timestamp``); multi-valued fields and ``audit.params`` as JSON text.
  Extra columns: ``ts_ms`` (epoch milliseconds, the sort key with
  ``event_id``), ``<name>_fold`` beside the person name and e-mail fields
  (lowercased, Latin accents folded, like OpenSearch's ``.lower``
  normalizer; NULL when that changes nothing, as for most e-mail
  addresses, and read as ``coalesce(<name>_fold, <name>)``; the other NAME
  fields are not filtered on), ``ip_key``
  (16-byte IPv6 form of ``source.ip``, IPv4 mapped) so CIDR filters are
  index range scans, ``week`` (``ts_ms // WEEK_MS``) and ``combo``: the id
  in ``facet_combos`` of the event's result, product, browser, OS, device
  and impersonator together (see :mod:`.sqlite_combos`), and
  ``<column>_vid`` beside the action, user name, target name and project:
  the value's id in ``facet_values`` (see :mod:`.sqlite_values`).
* ``events_fts``: FTS5 over ``audit_comments`` and an account token, with
  the view ``events_fts_source`` over ``events`` as external content (the
  text is stored once), ``unicode61 remove_diacritics 2`` (Cyrillic is
  case-folded; Latin accents are ignored), prefix indexes for 2 and 3
  characters. Every MATCH names the account. ``bm25()`` and
  ``highlight()`` work on it.
* ``related_users``: (account, week, person, row) for every person of an
  event, and ``person_values``: (account, folded value, person) for every
  ``related.user`` value (see :mod:`.sqlite_people`): the User history
  filter is one index lookup per week of the period and person carrying
  the value, and the person filters (User, Modified user, Impersonator)
  find their candidates there before checking the role's own columns.
  People and IP addresses arrive in no order, so these keys lead with the
  week: new events only touch the current week's pages.
* ``facet_counts``: per account, facet, UTC month and value, how many
  events; updated in the same transaction as every write and delete. The
  landing page (account and period only) takes its facets and total from
  it for the whole months in the period and counts the partial months at
  its ends from ``events_hot``. Any other filter or search text counts the
  matching rows in one pass over ``events_hot``.

Indexes are few on purpose (each one costs ingest, most of all when its
keys arrive scattered and every batch rewrites hundreds of pages): event id;
``events_hot`` = account, time, event id, ``combo``, the value ids and the
token and group columns (the sort order, retention per account, and
counting/faceting without reading wide rows; action, outcome, project,
browser... filters scan it);
account + token; account + week + IP.

Where SQLite answers differently from OpenSearch (held by the contract
suite, ``tests/store/test_contract.py``):

* full text: FTS5's unicode61 ignores Latin accents (``cafe`` finds
  ``Café``; OpenSearch's standard analyzer does not) and splits on every
  non-alphanumeric character (``example`` finds ``alice@example.com``;
  OpenSearch keeps ``example.com`` as one token). Quoted phrases and whole
  addresses match on both.
* highlighting: a phrase is one ``<mark>`` here, one per word on OpenSearch.

Connections are per thread, in WAL mode with ``synchronous=FULL`` and a
busy timeout: readers never block the writer, and writes are short
``BEGIN IMMEDIATE`` transactions. Retention deletes in small batches, each
its own transaction, and pauses after each as long as it held the lock.
Every SQLite failure surfaces as a :class:`~useraudit.store.base.StoreError`
naming the file.
"""

from __future__ import annotations

import gc
import html
import ipaddress
import json
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from useraudit.schema import FIELDS, Kind

from . import histogram, sqlite_combos, sqlite_people, sqlite_values
from .base import Store, StoreError, StoreUnavailable, WriteResult
from .histogram import Bucket
from .query import (
    EXTRA_FILTERS,
    FACETS,
    FOLDED_FILTERS,
    HIGHLIGHT_POST,
    HIGHLIGHT_PRE,
    PERSON_FILTERS,
    PIVOT_FILTERS,
    TERM_FILTERS,
    Query,
    QueryError,
    SearchPage,
    SearchRequest,
    TextNode,
    decode_cursor,
    encode_cursor,
    fold,
    networks,
    parse_text,
    to_fts5,
    to_ms,
)
from .sqlite_combos import COMBO_COLUMNS, COMBO_FACETS, ComboIds
from .sqlite_people import People, persons_of
from .sqlite_values import VALUE_COLUMNS, VALUE_FACETS, ValueIds

BUSY_TIMEOUT_MS = 10_000
# Shared, frozen: building one per event cost ~0.5 us.
_CREATED = WriteResult("created")
_DUPLICATE = WriteResult("duplicate")
# SQLite's default limit on bound parameters is 32766; stay far below.
CHUNK = 500


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
# Indexes whose keys arrive in no time order (people, IP addresses) lead
# with the event's week, so a batch of new events dirties only the current
# week's part of them instead of pages all over the index (at 1M events
# those two indexes made ~8,000 random page writes per 5,000 events). A
# lookup seeks once per week of the period.
WEEK_MS = 7 * DAY_MS
# The file's own layout version (PRAGMA user_version); 1 had no week column,
# 2 had an index on related_users(rid) (a copy of the whole table) and
# indexes on time, outcome, action, project and product/group, 3 had the
# six few-valued facets as strings in events_hot instead of their combination,
# 4 listed every related.user value in related_users instead of persons,
# 5 had action, user, target and project as strings in events_hot instead
# of their value ids, 6 had no account tokens in events_fts.
FILE_VERSION = 7
_DROPPED_IN_3 = (
    "related_users_rid",
    "events_ts",
    "events_groups",
    "events_event_outcome",
    "events_event_action",
    "events_audit_project_id",
)
# Search text matching at most this many of the account's rows is answered by
# looking those rows up; more, and the account's events_hot entries are scanned.
FTS_DRIVE_LIMIT = 20_000
HOT = "events INDEXED BY events_hot"
# The planner would walk events_hot to avoid sorting; a network's few rows
# are found (and sorted) far sooner through the IP index.
BY_IP = "events INDEXED BY events_ip"
# Rollup rows: (account, facet, UTC month, value) → count, kept exact in the
# same transactions as writes and deletes. "_total" counts every event.
TOTAL = "_total"
# The few-valued facets live in events_hot as one combination id (see
# sqlite_combos); action, project, user and target, whose combinations are
# nearly as many as the rows, each as a value id (see sqlite_values).
assert all(FIELD_COLUMN[FACETS[name]] == col for name, col in COMBO_FACETS)
assert all(FIELD_COLUMN[FACETS[name]] == col for name, col in VALUE_FACETS)
assert set(FACETS) == {name for name, _c in COMBO_FACETS + VALUE_FACETS}
_COMBO_NAMES = frozenset(name for name, _col in COMBO_FACETS)
_VALUE_ID_COLUMN = {name: sqlite_values.id_column(col) for name, col in VALUE_FACETS}
# Term filters answered through the combination id.
_COMBO_FILTERS = {
    attr: FIELD_COLUMN[field]
    for attr, field in TERM_FILTERS.items()
    if FIELD_COLUMN[field] in COMBO_COLUMNS
}
# Term filters answered through the value ids.
_VALUE_FILTERS = {
    attr: FIELD_COLUMN[field]
    for attr, field in TERM_FILTERS.items()
    if FIELD_COLUMN[field] in VALUE_COLUMNS
}
_FACET_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (name, column(field)) for name, field in FACETS.items()
)

# (account, column, ts_ms) indexes: filter and order in one. Only for filters
# selective enough to beat walking the account's rows newest first (see
# _plan); person filters go through related_users (every person of an event
# is listed there), and actions, outcomes, browsers, OS, devices and
# product/group scan events_hot. Each index costs ingest, more so when its
# keys arrive scattered: dropping the outcome, group and time indexes took
# 200k events from 11,870 to 12,949 events/s, the action index (600
# insertion points per batch at 1M events, never chosen by _plan) 1M events
# from 12,137 to 13,640, and the project index (400 insertion points; a
# project filter scanning events_hot answers in ~45 ms instead of ~66 ms
# through it, the index only won for projects of a handful of events)
# 13,640 to 14,289. A token's events are few and tokens are mostly absent
# (NULL keys append): that index stays.
_INDEXED = ("audit_token_id",)
_VALUE_ID_COLUMNS = tuple(sqlite_values.id_column(col) for col in VALUE_COLUMNS)
_HOT = tuple(
    col
    for col in dict.fromkeys(
        [
            "combo",
            *_VALUE_ID_COLUMNS,
            *(column(f) for f in TERM_FILTERS.values()),
            "audit_group",
        ]
    )
    if col not in COMBO_COLUMNS and col not in VALUE_COLUMNS
)


def _ddl() -> list[str]:
    cols = [
        "rid INTEGER PRIMARY KEY",
        "event_id TEXT NOT NULL UNIQUE",
        "ts_ms INTEGER NOT NULL",
        "week INTEGER NOT NULL",
    ]
    for name, col, kind, multi in COLUMNS:
        if name == "event.id":
            continue
        sql_type = "TEXT" if multi or kind is Kind.FLAT else _SQL_TYPE.get(kind, "TEXT")
        cols.append(f"{col} {sql_type}")
    cols += [f"{col} TEXT" for _name, col in FOLDED]
    cols.append("ip_key BLOB")
    cols.append("combo INTEGER")  # facet_combos.id
    cols += [f"{col} INTEGER" for col in _VALUE_ID_COLUMNS]  # facet_values.id
    stmts = [
        "CREATE TABLE IF NOT EXISTS events (\n  " + ",\n  ".join(cols) + "\n)",
        # The sort order plus every facet and term-filter column: a narrow copy
        # of the hot part of each row, so counting and faceting many matches
        # never reads the wide rows (comments, user agent, params...).
        "CREATE INDEX IF NOT EXISTS events_hot "
        f"ON events(organization_id, ts_ms, event_id, {', '.join(_HOT)})",
        *(
            f"CREATE INDEX IF NOT EXISTS events_{col} ON events(organization_id, {col}, ts_ms)"
            for col in dict.fromkeys(_INDEXED)
        ),
        "CREATE INDEX IF NOT EXISTS events_ip ON events(organization_id, week, ip_key)",
        *sqlite_people.DDL,
        # month = year * 12 + month - 1 (UTC).
        "CREATE TABLE IF NOT EXISTS facet_counts (\n"
        "  organization_id TEXT NOT NULL, facet TEXT NOT NULL, month INTEGER NOT NULL,\n"
        "  value TEXT NOT NULL, n INTEGER NOT NULL,\n"
        "  PRIMARY KEY (organization_id, facet, month, value)) WITHOUT ROWID",
        sqlite_combos.DDL,
        sqlite_values.DDL,
        *_FTS_DDL,
    ]
    return stmts


# Search text is matched within one account: beside the comments, FTS5
# indexes one token per account and every MATCH asks for it. Matching the
# whole file instead handed SQLite every account's matches to keep or drop
# (1M events, `pro* -role`: 417,148 matches for the account's 125,514; the
# count 187 -> 135 ms). The token is "a" and the hex of the account id, as
# SQL's hex() writes it, so the external content can be a view over events:
# stored once, and rebuilt by FTS5's own 'rebuild'. Only events with
# comments are indexed.
_TOKENIZE = "tokenize='unicode61 remove_diacritics 2'"
_FTS_DDL = (
    "CREATE VIEW IF NOT EXISTS events_fts_source AS\n"
    "  SELECT rid, 'a' || hex(organization_id) AS account, audit_comments FROM events\n"
    "  WHERE audit_comments IS NOT NULL",
    "CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(\n"
    "  account, audit_comments, content='events_fts_source', content_rowid='rid',\n"
    f"  {_TOKENIZE}, prefix='2 3')",
)
# A page's comments, highlighted (see SQLiteStore._highlight).
_HIGHLIGHT_DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.highlights USING fts5(audit_comments, {_TOKENIZE})"
)


@lru_cache(maxsize=1024)
def _account_token(account: str) -> str:
    """An account's token in events_fts (what the view's ``'a' || hex(...)`` makes)."""
    return "a" + account.encode().hex().upper()


def _match(account: str, node: TextNode) -> str:
    """FTS5 MATCH text for ``node`` in the comments of ``account``'s events."""
    return f'account : "{_account_token(account)}" AND audit_comments : {to_fts5(node)}'


_INSERT_COLUMNS = (
    ["rid", "event_id", "ts_ms", "week"]
    + [col for name, col, _k, _m in COLUMNS if name != "event.id"]
    + [col for _n, col in FOLDED]
    + ["ip_key", "combo", *_VALUE_ID_COLUMNS]
)
# How a write row carries NULL. CPython's sqlite3 binds None through its
# adapter protocol, ~0.35 us per parameter (an event has ~25 absent fields:
# ~9 us of the ~23 us its INSERT took); an int or a str binds in ~0.05-0.1.
# So absent text and blob values travel as 0 and absent integers as '', and
# the INSERT turns them back into NULL: a text or blob value never equals
# the integer 0, an integer never equals ''.
NULL_TEXT = 0
NULL_INTEGER = ""
_INTEGER_COLUMNS = frozenset(
    col for _name, col, kind, multi in COLUMNS if not multi and kind is Kind.INTEGER
) | frozenset(_VALUE_ID_COLUMNS)
_NOT_NULL = frozenset(("rid", "event_id", "ts_ms", "week", "combo"))
_INSERT = (
    f"INSERT OR IGNORE INTO events ({', '.join(_INSERT_COLUMNS)}) VALUES ("
    + ", ".join(
        "?"
        if col in _NOT_NULL
        else f"nullif(?, {NULL_INTEGER!r})"
        if col in _INTEGER_COLUMNS
        else f"nullif(?, {NULL_TEXT})"
        for col in _INSERT_COLUMNS
    )
    + ")"
)
_READ_COLUMNS = [col for _n, col, _k, _m in COLUMNS]
_SELECT = "SELECT " + ", ".join(_READ_COLUMNS) + " FROM events"
_DECODERS: tuple[tuple[str, int, Callable[[Any], Any] | None], ...] = tuple(
    (name, i, json.loads if (multi or kind is Kind.FLAT) else None)
    for i, (name, _col, kind, multi) in enumerate(COLUMNS)
)


_V4_MAPPED = b"\0" * 10 + b"\xff\xff"


def ip_key(address: str) -> bytes:
    # inet_pton takes exactly the canonical forms ipaddress does, ~15x
    # faster (it was a quarter of building a row); zone ids go the long way.
    try:
        return _V4_MAPPED + socket.inet_pton(socket.AF_INET, address)
    except OSError:
        pass
    try:
        return socket.inet_pton(socket.AF_INET6, address)
    except OSError:
        pass
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed).packed
    return ip.packed


def ip_range(value: str) -> tuple[bytes, bytes]:
    """First and last 16-byte keys of an address or CIDR network."""
    net = networks(value)
    if isinstance(net, ipaddress.IPv4Network):
        return ip_key(str(net.network_address)), ip_key(str(net.broadcast_address))
    return net.network_address.packed, net.broadcast_address.packed


_encode_std = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False
).encode


def _encode(value: Any) -> str:
    """Compact JSON text: orjson (~8x faster), the standard library for what it refuses.

    orjson refuses lone surrogates and integers beyond 64 bits; what neither
    can encode raises TypeError, and write() rejects that event.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return _encode_std(value)


def _build_row_function() -> Callable[[dict, int, int], list]:
    """``_row(doc, rid, ts_ms)``: the INSERT parameters, as one generated expression.

    Absent values are :data:`NULL_TEXT` or :data:`NULL_INTEGER`, not None.

    Ingest speed is mostly Python per event; a loop over ~50 fields with
    branches per kind costs several times this straight-line code.
    """
    parts = ["rid", 'doc["event.id"]', "ts_ms", f"ts_ms // {WEEK_MS}"]
    for name, _col, kind, multi in COLUMNS:
        if name == "event.id":
            continue
        get = f"g({name!r})"
        if multi:
            parts.append(f"(NT if (v := {get}) is None else enc(v if type(v) is list else [v]))")
        elif kind is Kind.FLAT:
            parts.append(f"(NT if (v := {get}) is None else enc(v))")
        elif _col in _INTEGER_COLUMNS:
            parts.append(f"(NI if (v := {get}) is None else int(v))")
        else:
            parts.append(f"(NT if (v := {get}) is None else v if type(v) is str else str(v))")
    for name, _col in FOLDED:
        # Stored only where folding changes the value (the query reads
        # coalesce(fold, value)): most addresses and ids are lowercase already.
        parts.append(f"(f if (v := g({name!r})) and (f := fold(v)) != v else NT)")
    parts.append('(ipk(v) if (v := g("source.ip")) else NT)')
    parts.append("None")  # combo: given by write() from the row's own values
    parts += ["NI"] * len(_VALUE_ID_COLUMNS)  # value ids: given by write()
    src = (
        "def _row(doc, rid, ts_ms):\n    g = doc.get\n    return [\n        "
        + ",\n        ".join(parts)
        + "]\n"
    )
    namespace: dict[str, Any] = {
        "enc": _encode,
        "fold": _fold,
        "ipk": _ip_key_for_row,
        "NT": NULL_TEXT,
        "NI": NULL_INTEGER,
    }
    exec(compile(src, "<useraudit.store.sqlite row>", "exec"), namespace)  # noqa: S102 - our own code
    return namespace["_row"]


def _ip_key_for_row(address: str) -> bytearray | int:
    # A bytearray binds directly; bytes go through the adapter protocol (~0.5 us).
    try:
        return bytearray(ip_key(address))
    except ValueError:
        return NULL_TEXT


FOLD_FUNCTION = "useraudit_fold"


def _fold_or_none(value: Any) -> str | None:
    return None if value is None else _fold(value)


def _fold(value: Any) -> str:
    value = value if isinstance(value, str) else str(value)
    return value.lower() if value.isascii() else fold(value)


_row = _build_row_function()


def _doc(row: Sequence[Any]) -> dict:
    doc: dict[str, Any] = {}
    for name, i, decode in _DECODERS:
        v = row[i]
        if v is not None:
            doc[name] = decode(v) if decode else v
    return doc


def _timestamp_ms(value: Any) -> int:
    """Epoch milliseconds of an event's @timestamp (Python 3.11 parses "Z" itself)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    return to_ms(datetime.fromisoformat(value if type(value) is str else str(value)))


_INSERT_INDEX = {col: i for i, col in enumerate(_INSERT_COLUMNS)}
_WEEK = _INSERT_INDEX["week"]
_ACCOUNT = _INSERT_INDEX["organization_id"]
_COMBO = _INSERT_INDEX["combo"]
_COMMENTS = _INSERT_INDEX["audit_comments"]
_combo_of_row = itemgetter(*(_INSERT_INDEX[col] for col in COMBO_COLUMNS))
# (value, value id) positions in a write row.
_VALUE_SLOTS = tuple(
    (_INSERT_INDEX[col], _INSERT_INDEX[sqlite_values.id_column(col)]) for col in VALUE_COLUMNS
)


def _persons(get: Callable[[str], Any], users: Any) -> list[frozenset[str]]:
    """An event's persons (see sqlite_people), from its fields and related.user.

    write() and retention both find them here, so a delete finds exactly the
    related_users rows the write made (there is no index on rid to find them by).
    """
    if not users:
        return []
    return persons_of(get, users if isinstance(users, list) else [users], _fold)


# The person fields, to find a stored event's persons again (deletes, upgrades).
_ROLE_FIELDS = tuple(f for fields in sqlite_people.ROLE_FIELDS for f in fields)
_ROLE_SELECT = ", ".join(FIELD_COLUMN[f] for f in _ROLE_FIELDS)


def _stored_persons(role_values: Sequence[Any], related_json: str) -> list[frozenset[str]]:
    """:func:`_persons` of a stored event: its ``_ROLE_SELECT`` columns and related_user."""
    return _persons(dict(zip(_ROLE_FIELDS, role_values, strict=True)).get, json.loads(related_json))


# Where the account, ts_ms and facet values sit in an INSERT row...
_COUNT_POSITIONS = [
    _INSERT_INDEX["organization_id"],
    _INSERT_INDEX["ts_ms"],
    *(_INSERT_INDEX[col] for _name, col in _FACET_COLUMNS),
]
# ...and the same values as a SELECT list (for deletes).
_COUNT_SELECT = ", ".join(["organization_id", "ts_ms", *(col for _name, col in _FACET_COLUMNS)])


_EPOCH_DAY = date(1970, 1, 1)


@lru_cache(maxsize=4096)
def _month_of_day(day: int) -> int:
    d = _EPOCH_DAY + timedelta(days=day)
    return d.year * 12 + d.month - 1


def _month_first_day(month: int) -> int:
    return (date(month // 12, month % 12 + 1, 1) - _EPOCH_DAY).days


def _month_start_ms(month: int) -> int:
    return _month_first_day(month) * DAY_MS


def _add_counts(
    con: sqlite3.Connection, rows: Iterable[Sequence[Any]], sign: int, projected: bool = False
) -> None:
    """Add (or with ``sign`` -1 remove) rows to the monthly facet_counts rollup."""
    names = [name for name, _col in _FACET_COLUMNS]
    pick = itemgetter(*_COUNT_POSITIONS)
    # Rows grouped by (account, month) first: a batch spans few of those, and
    # each facet is then counted in one C-level pass over the group instead
    # of a key tuple per event and facet.
    groups: dict[tuple[str, int], list[Sequence[Any]]] = {}
    for row in rows:
        values = row if projected else pick(row)
        account = values[0]
        if type(account) is not str:  # None, or NULL_TEXT in a write row
            continue
        key = (account, _month_of_day(values[1] // DAY_MS))
        group = groups.get(key)
        if group is None:
            groups[key] = group = []
        group.append(values)
    if not groups:
        return
    changes: list[tuple[str, str, int, str, int]] = []
    for (account, month), group in groups.items():
        changes.append((account, TOTAL, month, "", sign * len(group)))
        for i, name in enumerate(names, start=2):
            for value, n in Counter(map(itemgetter(i), group)).items():
                if type(value) is str:
                    changes.append((account, name, month, value, sign * n))
    con.executemany(
        "INSERT INTO facet_counts(organization_id, facet, month, value, n) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(organization_id, facet, month, value) DO UPDATE SET n = n + excluded.n",
        changes,
    )
    if sign < 0:
        con.executemany(
            "DELETE FROM facet_counts WHERE organization_id = ? AND facet = ? AND month = ? "
            "AND value = ? AND n <= 0",
            [change[:4] for change in changes],
        )


def _top(counter: Counter, size: int) -> list[tuple[str, int]]:
    """Highest counts first, ties by value (code point order = OpenSearch's byte order)."""
    items = [(str(k), int(n)) for k, n in counter.items() if k is not None and n > 0]
    items.sort(key=lambda kv: (-kv[1], kv[0]))
    return items[:size]


def _upgrade(con: sqlite3.Connection, version: int) -> None:
    """An older file's rows brought to this layout (inside the install transaction).

    The caller's _ddl() runs afterwards: its IF NOT EXISTS statements create
    what is new (events_hot last, so the rewrite of every row below does not
    also maintain that index).
    """
    if version < 4:
        con.execute("DROP INDEX IF EXISTS events_hot")
        for index in _DROPPED_IN_3:
            con.execute(f"DROP INDEX IF EXISTS {index}")
        if version == 1:
            _upgrade_from_1(con)
        con.execute("ALTER TABLE events ADD COLUMN combo INTEGER")
        con.execute(sqlite_combos.DDL)
        sqlite_combos.fill(con)
    if version < 5:
        _rebuild_related_users(con)
    if version < 6:
        con.execute("DROP INDEX IF EXISTS events_hot")
        for col in _VALUE_ID_COLUMNS:
            con.execute(f"ALTER TABLE events ADD COLUMN {col} INTEGER")
        sqlite_values.fill(con)
    if version < 7:
        con.execute("DROP TABLE IF EXISTS events_fts")
        for stmt in _FTS_DDL:
            con.execute(stmt)
        con.execute("INSERT INTO events_fts(events_fts) VALUES ('rebuild')")


def _rebuild_related_users(con: sqlite3.Connection) -> None:
    """related_users by person (file version 5) from the events themselves."""
    con.execute("DROP TABLE IF EXISTS related_users")
    for stmt in sqlite_people.DDL:
        con.execute(stmt)
    people = People()
    last = 0
    while True:
        rows = con.execute(
            f"SELECT rid, organization_id, week, related_user, {_ROLE_SELECT} FROM events "
            "WHERE rid > ? AND related_user IS NOT NULL ORDER BY rid LIMIT 20000",
            (last,),
        ).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        mine = [(r, _stored_persons(r[4:], r[3])) for r in rows]
        ids = people.assign(con, {p for _r, persons in mine for p in persons})
        related: list[tuple[str, int, int, int]] = []
        pairs: dict[tuple[str, int], frozenset[str]] = {}
        for r, persons in mine:
            account = r[1] or ""
            for p in persons:
                related.append((account, r[2], ids[p], r[0]))
                pairs[(account, ids[p])] = p
        con.executemany(
            "INSERT OR IGNORE INTO related_users(organization_id, week, person, rid) "
            "VALUES (?, ?, ?, ?)",
            related,
        )
        people.remember(ids, people.list_values(con, pairs))


def _upgrade_from_1(con: sqlite3.Connection) -> None:
    """File version 1 → 2: the week column and the week-led IP index."""
    con.execute("ALTER TABLE events ADD COLUMN week INTEGER NOT NULL DEFAULT 0")
    # Floor division, as Python's // does for the rows written from now on.
    con.execute(
        f"UPDATE events SET week = ts_ms / {WEEK_MS} - (ts_ms < 0 AND ts_ms % {WEEK_MS} != 0)"
    )
    con.execute("DROP INDEX IF EXISTS events_ip_key")


def path_from_url(url: str) -> Path:
    if not url.lower().startswith("sqlite:"):
        raise StoreError(f"not a SQLite URL: {url!r} (use sqlite:///path/audit.db)")
    rest = url[len("sqlite:") :].split("?", 1)[0]
    if rest.startswith("//"):
        rest = rest[2:]
        if rest.startswith("//"):
            rest = rest[1:]
    if not rest or rest.lstrip("/") == ":memory:":
        raise StoreError("the SQLite store needs a file: sqlite:///path/audit.db")
    return Path(rest)


class SQLiteStore(Store):
    def __init__(self, url: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = path_from_url(url).expanduser()
        self.url = f"sqlite:///{self.path}" if self.path.is_absolute() else f"sqlite:{self.path}"
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._ready = False
        self._combos = ComboIds(absent=NULL_TEXT)
        self._values = ValueIds()
        self._people = People()

    # -- connections and errors --------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory for SQLite store {self.path}: {exc}"
            ) from exc
        with self._errors("open"):
            con = sqlite3.connect(
                str(self.path),
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                con.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
                mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"SQLite store {self.path} cannot use WAL mode (got {mode})")
                # FULL: each commit is on disk before write() returns, because
                # the indexer then moves the spool past those events (NORMAL
                # would let a power loss take back commits since the last
                # checkpoint). One fsync per batch: no ingest change measured.
                con.execute("PRAGMA synchronous=FULL")
                con.execute("PRAGMA cache_size=-65536")
                con.execute("PRAGMA temp_store=MEMORY")
                con.execute("PRAGMA mmap_size=268435456")
                # Checkpoint every 64 MiB of WAL instead of every 4 MiB: pages
                # written again and again (index leaves, FTS segments) are
                # copied once, not each time (1M-event file: 8,334 → 9,748
                # events/s). Measured alternative: a checkpoint thread with
                # autocheckpoint off gained nothing and let the WAL grow to 5 GB.
                con.execute("PRAGMA wal_autocheckpoint=16384")
                con.execute("PRAGMA journal_size_limit=67108864")
                con.execute(_HIGHLIGHT_DDL)  # temp: this connection's own
                # Case-insensitive filters on the few stored combinations and
                # on candidate rows' full names: folded as the query values are.
                con.create_function(FOLD_FUNCTION, 1, _fold_or_none, deterministic=True)
            except BaseException:
                con.close()
                raise
        return con

    @property
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._open()
            with self._lock:
                self._connections.append(con)
            self._local.con = con
            if not self._ready:
                self._install(con)
        return con

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc, action) from exc

    def _translate(self, exc: sqlite3.DatabaseError, action: str) -> Exception:
        msg = str(exc)
        low = msg.lower()
        where = f"SQLite store {self.path}"
        if "fts5" in low and "syntax" in low:
            return QueryError("the search text could not be understood")
        if "locked" in low or "busy" in low:
            return StoreUnavailable(
                f"{where} is locked by another process ({msg}); try again later"
            )
        if "not a database" in low or "malformed" in low or "corrupt" in low:
            return StoreError(
                f"{where} is damaged or not a useraudit database ({msg}): move it aside and "
                "restore a backup, or point --store at a new file"
            )
        if (
            "readonly" in low
            or "read-only" in low
            or "unable to open" in low
            or "permission" in low
        ):
            return StoreError(
                f"cannot {action} {where}: {msg} (check the file and directory permissions)"
            )
        if "disk" in low or "full" in low:
            # Often transient (space freed, I/O retried): the indexer should retry, not dead-letter.
            return StoreUnavailable(f"cannot {action} {where}: {msg} (disk full or failing?)")
        return StoreError(f"cannot {action} {where}: {msg}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A short IMMEDIATE transaction: one writer, never a lock upgrade deadlock."""
        con = self._con
        with self._errors("write"):
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- setup ---------------------------------------------------------------------

    def install(self) -> list[str]:
        con = self._con  # installs on first use
        with self._errors("read"):
            rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
        return [
            f"SQLite store {self.path} ready (file version {FILE_VERSION}, {rows} events, WAL mode)"
        ]

    def _install(self, con: sqlite3.Connection) -> None:
        with self._errors("set up"):
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > FILE_VERSION:
                raise StoreError(
                    f"SQLite store {self.path} has file version {version}, newer than this "
                    f"useraudit's {FILE_VERSION}: upgrade useraudit"
                )
            if version < FILE_VERSION:
                con.execute("BEGIN IMMEDIATE")
                try:
                    if version:
                        _upgrade(con, version)
                    for stmt in _ddl():
                        con.execute(stmt)
                    con.execute(f"PRAGMA user_version={FILE_VERSION}")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            else:
                # Fail now, naming the file, if the schema is not ours.
                con.execute("SELECT rid, event_id, ts_ms, week FROM events LIMIT 0")
        self._ready = True

    # -- writing -------------------------------------------------------------------

    def write(self, docs: Sequence[dict]) -> list[WriteResult]:
        if not docs:
            return []
        results: list[WriteResult | None] = [None] * len(docs)
        prepared: list[tuple[int, dict, int]] = []
        for i, doc in enumerate(docs):
            event_id = doc.get("event.id")
            if not event_id or not isinstance(event_id, str):
                results[i] = WriteResult("rejected", "event.id is missing")
                continue
            try:
                prepared.append((i, doc, _timestamp_ms(doc["@timestamp"])))
            except (KeyError, ValueError, TypeError) as exc:
                results[i] = WriteResult("rejected", f"@timestamp is missing or invalid: {exc}")
        with _gc_paused():
            return self._write_prepared(prepared, results)

    def _write_prepared(
        self, prepared: list[tuple[int, dict, int]], results: list[WriteResult | None]
    ) -> list[WriteResult]:
        # Everything Python does per event happens before taking the write lock.
        rows: list[list] = []
        kept: list[int] = []  # the position in docs of each row
        known = self._combos.known
        new_combos: list[list] = []  # rows whose combination has no cached id yet
        value_id = self._values.known
        new_values: set[str] = set()
        persons: list[list[frozenset[str]]] = []
        person_id = self._people.known
        pids: dict[frozenset[str], int] = {}  # taken now: the cache may start over meanwhile
        new_people: set[frozenset[str]] = set()
        for i, doc, ts in prepared:
            try:
                row = _row(doc, 0, ts)
                mine = _persons(doc.get, doc.get("related.user"))
            except (TypeError, ValueError) as exc:
                results[i] = WriteResult("rejected", f"cannot store: {exc}")
                continue
            if (combo := known(_combo_of_row(row))) is None:
                new_combos.append(row)
            row[_COMBO] = combo
            for src, dst in _VALUE_SLOTS:
                if (value := row[src]) is not NULL_TEXT:
                    if (vid := value_id(value)) is None:
                        new_values.add(value)
                    else:
                        row[dst] = vid
            for p in mine:
                if (pid := person_id(p)) is None:
                    new_people.add(p)
                else:
                    pids[p] = pid
            rows.append(row)
            persons.append(mine)
            kept.append(i)
        assigned: dict = {}
        values: dict[str, int] = {}
        people: dict[frozenset[str], int] = {}
        listed: set[tuple[str, int]] = set()
        with self._write() as con:
            if new_combos:
                assigned = self._combos.assign(con, map(_combo_of_row, new_combos))
                for row in new_combos:
                    row[_COMBO] = assigned[_combo_of_row(row)]
            if new_values:
                values = self._values.assign(con, new_values)
                for row in rows:
                    for src, dst in _VALUE_SLOTS:
                        if row[dst] == NULL_INTEGER and (value := row[src]) is not NULL_TEXT:
                            row[dst] = values[value]
            if new_people:
                people = self._people.assign(con, new_people)
                pids.update(people)
            base = con.execute("SELECT coalesce(max(rid), 0) FROM events").fetchone()[0]
            for k, row in enumerate(rows, start=base + 1):
                row[0] = k
            # Idempotence: a known event.id is ignored by the UNIQUE index; the
            # rows that are present afterwards in our fresh rid range are ours.
            con.executemany(_INSERT, rows)
            created = {
                r[0]
                for r in con.execute(
                    "SELECT rid FROM events WHERE rid BETWEEN ? AND ?", (base + 1, base + len(rows))
                )
            }
            fts: list[tuple[int, str | None, str]] = []
            related: list[tuple[str, int, int, int]] = []
            pairs: dict[tuple[str, int], frozenset[str]] = {}
            for row, mine, i in zip(rows, persons, kept, strict=True):
                rid = row[0]
                if rid not in created:
                    results[i] = _DUPLICATE
                    continue
                results[i] = _CREATED
                account = row[_ACCOUNT]
                if comments := row[_COMMENTS]:  # NULL_TEXT when absent
                    token = _account_token(account) if type(account) is str else None
                    fts.append((rid, token, comments))
                if mine:
                    account = account or ""
                    for person in mine:
                        pid = pids[person]
                        related.append((account, row[_WEEK], pid, rid))
                        pairs[(account, pid)] = person
            con.executemany(
                "INSERT INTO events_fts(rowid, account, audit_comments) VALUES (?, ?, ?)", fts
            )
            con.executemany(
                "INSERT OR IGNORE INTO related_users(organization_id, week, person, rid) "
                "VALUES (?, ?, ?, ?)",
                related,
            )
            listed = self._people.list_values(con, pairs)
            _add_counts(con, (rows[rid - base - 1] for rid in created), +1)
        # Only now: ids given in a transaction that rolled back are not taken.
        self._combos.remember(assigned)
        self._values.remember(values)
        self._people.remember(people, listed)
        return [r or WriteResult("retry", "not attempted") for r in results]

    def delete_older_than(
        self,
        cutoff: datetime,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete events before ``cutoff``, ``batch_size`` per short transaction."""
        limit = to_ms(cutoff)
        batch_size = max(1, int(batch_size))
        deleted = 0
        with self._errors("read"):
            accounts: list[str | None] = [*self._account_ids(), None]
        # Account by account through events_hot (account, time): no index on
        # time alone is kept just for retention.
        for account in accounts:
            which = "organization_id IS NULL" if account is None else "organization_id = ?"
            args = [] if account is None else [account]
            while True:
                started = time.monotonic()
                rows = self._delete_batch(which, [*args, limit, batch_size])
                if not rows:
                    break
                deleted += len(rows)
                if progress:
                    progress(len(rows))
                # Leave the write lock free as long as the batch held it. A
                # writer waiting for it (the indexer) sleeps in SQLite's busy
                # handler and retries up to 100 ms apart: without a pause it
                # almost never finds the lock free between two batches.
                time.sleep(time.monotonic() - started)
        return deleted

    def _delete_batch(self, which: str, params: list[Any]) -> list[tuple]:
        """Delete the oldest events of one account before a time; returns the rows deleted."""
        with self._write() as con:
            rows = con.execute(
                "SELECT rid, audit_comments, week, related_user, "
                f"{_ROLE_SELECT}, {_COUNT_SELECT} FROM {HOT} WHERE {which} AND ts_ms < ? "
                "ORDER BY ts_ms LIMIT ?",
                params,
            ).fetchall()
            if not rows:
                return rows
            counted = 4 + len(_ROLE_FIELDS)
            con.executemany(
                "INSERT INTO events_fts(events_fts, rowid, account, audit_comments) "
                "VALUES ('delete', ?, ?, ?)",
                [
                    (r[0], None if r[counted] is None else _account_token(r[counted]), r[1])
                    for r in rows
                    if r[1]
                ],
            )
            _add_counts(con, (r[counted:] for r in rows), -1, projected=True)
            # related_users rows by their whole key, as write() made them.
            mine = {r[0]: _stored_persons(r[4:counted], r[3]) for r in rows if r[3]}
            ids = self._people.find(con, {p for persons in mine.values() for p in persons})
            con.executemany(
                "DELETE FROM related_users WHERE organization_id = ? AND week = ? "
                "AND person = ? AND rid = ?",
                [
                    (r[counted] or "", r[2], ids[p], r[0])
                    for r in rows
                    for p in mine.get(r[0], ())
                    if p in ids
                ],
            )
            con.executemany("DELETE FROM events WHERE rid = ?", [(r[0],) for r in rows])
        return rows

    def _account_ids(self) -> list[str]:
        """Every account holding events, one index seek each (a loose index scan)."""
        return [
            r[0]
            for r in self._con.execute(
                "WITH RECURSIVE a(id) AS ("
                " SELECT (SELECT min(organization_id) FROM events)"
                " UNION ALL"
                " SELECT (SELECT min(organization_id) FROM events WHERE organization_id > a.id)"
                " FROM a WHERE a.id IS NOT NULL"
                ") SELECT id FROM a WHERE id IS NOT NULL"
            )
        ]

    # -- reading -------------------------------------------------------------------

    def where(
        self, query: Query, by_rid: bool = False, text_rids: str | None = None
    ) -> tuple[str, list[Any]]:
        """SQL condition and parameters for ``query``; the account comes first, always.

        ``by_rid``: the account test is written ``+organization_id`` so no
        account index is used and the few candidate rows named by a
        ``rid IN (...)`` subquery (people, history, rare words) drive the search.
        ``text_rids``: every row the search text matches, already found by
        :meth:`_plan` (the text is then not matched a second time).
        """
        clauses = ["+organization_id = ?" if by_rid else "organization_id = ?"]
        params: list[Any] = [query.account]
        by_week = query.history or query.ips or any(getattr(query, a) for a in PERSON_FILTERS)
        weeks = self._weeks(query) if by_week else []
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
                    clauses.append(sqlite_combos.filter_sql(f"{FOLD_FUNCTION}({col})", len(values)))
                    params.extend(_fold(v) for v in values)
                    continue
                if attr in _COMBO_FILTERS:  # events_hot holds these as the combination id
                    clauses.append(sqlite_combos.filter_sql(col, len(values)))
                elif attr in _VALUE_FILTERS:  # ...and these as value ids
                    clauses.append(sqlite_values.filter_sql(col, len(values)))
                else:
                    clauses.append(f"{col} IN ({_marks(values)})")
                params.extend(values)
        for attr, field in PIVOT_FILTERS.items():
            values = getattr(query, attr)
            if values:
                clauses.append(f"{FIELD_COLUMN[field]} IN ({_marks(values)})")
                params.extend(values)
        for attr, prefix in PERSON_FILTERS.items():
            values = getattr(query, attr)
            if values:
                # related_users lists every person of an event (folded): it finds
                # the candidates by index; the role's own columns decide.
                folded = [_fold(v) for v in values]
                clauses.append(
                    "rid IN (SELECT rid FROM related_users WHERE organization_id = ? "
                    f"AND week IN ({_marks(weeks)}) AND {sqlite_people.lookup_sql(len(values))})"
                    f" AND ({FIELD_COLUMN[prefix + '.id']} IN ({_marks(values)})"
                    f" OR {_folded(FIELD_COLUMN[prefix + '.name'])} IN ({_marks(values)})"
                    f" OR {_folded(FIELD_COLUMN[prefix + '.email'])} IN ({_marks(values)})"
                    f" OR {FOLD_FUNCTION}({FIELD_COLUMN[prefix + '.full_name']})"
                    f" IN ({_marks(values)}))"
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
                f"AND week IN ({_marks(weeks)}) AND {sqlite_people.lookup_sql(len(query.history))})"
            )
            params.append(query.account)
            params.extend(weeks)
            params.append(query.account)
            params.extend(_fold(v) for v in query.history)
        if query.ips:
            ranges = [ip_range(v) for v in query.ips]
            clauses.append(f"week IN ({_marks(weeks)})")
            params.extend(weeks)
            clauses.append("(" + " OR ".join("ip_key BETWEEN ? AND ?" for _ in ranges) + ")")
            for lo, hi in ranges:
                params += [lo, hi]
        if query.groups:
            # The action picker: any ticked group or any ticked action.
            product_is = sqlite_combos.filter_sql("audit_product", 1)
            picked = [f"(audit_group = ? AND {product_is})" for _ in query.groups]
            for product, group in query.groups:
                params += [group, product]
            if query.actions:
                picked.append(
                    sqlite_values.filter_sql(FIELD_COLUMN["event.action"], len(query.actions))
                    if "actions" in _VALUE_FILTERS
                    else f"{FIELD_COLUMN['event.action']} IN ({_marks(query.actions)})"
                )
                params.extend(query.actions)
            clauses.append("(" + " OR ".join(picked) + ")")
        if text_rids is not None:
            clauses.append("rid IN (SELECT value FROM json_each(?))")
            params.append(text_rids)
        elif (node := parse_text(query.text)) is not None:
            clauses.append("rid IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)")
            params.append(_match(query.account, node))
        return " AND ".join(clauses), params

    def _weeks(self, query: Query) -> list[int]:
        """The weeks of the query's period that can hold the account's events."""
        con = self._con
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

    def _plan(self, con: sqlite3.Connection, query: Query) -> tuple[str, bool, str | None]:
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
        if _by_ip(query):
            return BY_IP, False, None
        if query.token_ids:
            return "events", False, None
        node = parse_text(query.text)
        if node is not None:
            # Counted and listed in SQLite: a common word's first 20,001 row
            # ids as Python ints took ~7 ms only to learn they were too many.
            found, rids = con.execute(
                "SELECT count(*), json_group_array(rowid) FROM "
                "(SELECT rowid FROM events_fts WHERE events_fts MATCH ? LIMIT ?)",
                (_match(query.account, node), FTS_DRIVE_LIMIT + 1),
            ).fetchone()
            if found <= FTS_DRIVE_LIMIT:
                return "events", True, rids
        return HOT, False, None

    def search(self, request: SearchRequest) -> SearchPage:
        # Counting a common word's matches makes ~70,000 row tuples that die
        # by refcount; collections set off meanwhile found nothing and cost
        # up to 10 % of such a search (1M events, p95 320 -> 285 ms).
        with _gc_paused():
            return self._search(request)

    def _search(self, request: SearchRequest) -> SearchPage:
        con = self._con
        with self._errors("read"):
            source, by_rid, text_rids = self._plan(con, request.query)
        where, params = self.where(request.query, by_rid, text_rids)
        cursor = decode_cursor(request.cursor) if request.cursor else None
        with self._errors("read"):
            if source == HOT and not _period_only(request.query):
                rows, more, total, facets = self._scan_hot(con, request, where, params, cursor)
            else:
                page_where, page_params = where, list(params)
                if cursor:
                    page_where += " AND (ts_ms, event_id) < (?, ?)"
                    page_params += list(cursor)
                rows = con.execute(
                    f"SELECT rid, ts_ms, {', '.join(_READ_COLUMNS)} FROM {source} "
                    f"WHERE {page_where} ORDER BY ts_ms DESC, event_id DESC LIMIT ?",
                    [*page_params, request.size + 1],
                ).fetchall()
                more = len(rows) > request.size
                rows = rows[: request.size]
                total, facets = self._facets(con, request, where, params, source)
            hits = [_doc(r[2:]) for r in rows]
            if request.highlight:
                self._highlight(con, request.query, rows, hits)
        next_cursor = encode_cursor(rows[-1][1], hits[-1]["event.id"]) if more and rows else None
        return SearchPage(hits=hits, total=int(total), next_cursor=next_cursor, facets=facets)

    def _scan_hot(
        self,
        con: sqlite3.Connection,
        request: SearchRequest,
        where: str,
        params: list[Any],
        cursor: tuple[int, str] | None,
    ) -> tuple[list, bool, int, dict[str, list[tuple[str, int]]]]:
        """Page, total and facets from one ordered pass over the account's events_hot entries.

        The index is already in page order, so the same scan that counts
        every match also yields the page after the cursor: the search text
        is evaluated once, not once for the page and again for the counts.
        """
        # The few-valued facets arrive as one combination id per row (at 1M
        # events a common word matches ~67,000 rows of the largest account).
        cols = _hot_facet_columns(request.facets)
        counters: list[Counter] = [Counter() for _ in cols]
        need = request.size + 1
        page: list[int] = []
        total = 0
        # With a cursor, a second column tells whether the row is after it (a
        # small int, not the event id string of every match); without one,
        # every row is, and handing over one value less per match counts.
        after, after_params = ("(ts_ms, event_id) < (?, ?), ", list(cursor)) if cursor else ("", [])
        first = 2 if cursor else 1  # where the facet columns start
        cur = con.execute(
            f"SELECT rid, {after}{', '.join(cols) or '0'} FROM {HOT} WHERE {where} "
            "ORDER BY ts_ms DESC, event_id DESC",
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
        page = page[: request.size]
        by_rid = {
            r[0]: r
            for r in con.execute(
                f"SELECT rid, ts_ms, {', '.join(_READ_COLUMNS)} FROM events "
                f"WHERE rid IN ({_marks(page)})",
                page,
            )
        }
        rows = [by_rid[rid] for rid in page]
        facets = {name: _top(by_name[name], request.facet_size) for name in request.facets}
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
        if _period_only(query):
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
            name: _top(c, request.facet_size)
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
            m = _month_of_day(start // DAY_MS)
            lo = m if start == _month_start_ms(m) else m + 1
        if end is not None:
            m = _month_of_day(end // DAY_MS)
            hi = m if end == _month_start_ms(m + 1) - 1 else m - 1
        edges: list[tuple[int, int]] = []
        whole = lo is None or hi is None or lo <= hi
        if not whole:
            edges.append((start, end))  # type: ignore[arg-type]  # no whole month inside
        else:
            if start is not None and lo is not None and start < _month_start_ms(lo):
                edges.append((start, _month_start_ms(lo) - 1))
            if end is not None and hi is not None and end > _month_start_ms(hi + 1) - 1:
                edges.append((_month_start_ms(hi + 1), end))
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
        cols = _hot_facet_columns(request.facets)
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
        return total, {name: _top(counters[name], request.facet_size) for name in request.facets}

    def _by_facet(
        self, con: sqlite3.Connection, names: Sequence[str], counters: list[Counter]
    ) -> dict[str, Counter]:
        """Per-facet counts from counters over :func:`_hot_facet_columns`."""
        singles = [n for n in names if n not in _COMBO_NAMES]
        by_name = {
            name: self._values.by_value(con, counter)
            for name, counter in zip(singles, counters, strict=False)
        }
        if len(counters) > len(singles):
            by_name.update(self._combos.split(con, counters[-1], names))
        return by_name

    def _highlight(
        self, con: sqlite3.Connection, query: Query, rows: list, hits: list[dict]
    ) -> None:
        node = parse_text(query.text)
        marked: dict[int, str] = {}
        with_text = [
            (r[0], h["audit.comments"])
            for r, h in zip(rows, hits, strict=True)
            if h.get("audit.comments")
        ]
        if node is not None and with_text:
            # The page's comments go through FTS5 again in a scratch table of
            # the connection's own (same tokenizer): evaluating the search on
            # events_fts row by row seeks through the whole index's lists each
            # time (1M events, `pro* -role`: 31 ms for a page of 50).
            con.execute("DELETE FROM temp.highlights")
            con.executemany(
                "INSERT INTO temp.highlights(rowid, audit_comments) VALUES (?, ?)", with_text
            )
            marked.update(
                con.execute(
                    "SELECT rowid, highlight(highlights, 0, ?, ?) FROM temp.highlights "
                    "WHERE highlights MATCH ?",
                    [HIGHLIGHT_PRE, HIGHLIGHT_POST, to_fts5(node)],
                )
            )
        for row, hit in zip(rows, hits, strict=True):
            comments = hit.get("audit.comments")
            if comments:
                text = marked.get(row[0]) or comments
                hit["_highlight"] = (
                    html.escape(text, quote=True)
                    .replace(HIGHLIGHT_PRE, "<mark>")
                    .replace(HIGHLIGHT_POST, "</mark>")
                )

    def count(self, query: Query) -> int:
        con = self._con
        with self._errors("read"):
            source, by_rid, text_rids = self._plan(con, query)
            where, params = self.where(query, by_rid, text_rids)
            return int(
                con.execute(f"SELECT count(*) FROM {source} WHERE {where}", params).fetchone()[0]
            )

    def histogram(self, query: Query, interval_ms: int, offset_ms: int = 0) -> list[Bucket]:
        """Matches grouped by bucket and outcome in one query (see :mod:`.histogram`)."""
        offset = histogram.check(interval_ms, offset_ms)
        con = self._con
        with self._errors("read"):
            source, by_rid, text_rids = self._plan(con, query)
            where, params = self.where(query, by_rid, text_rids)
            rows = con.execute(
                f"SELECT (ts_ms - ?) / ? * ? + ?, combo, count(*) FROM {source} "
                f"WHERE {where} GROUP BY 1, 2",
                [offset, interval_ms, interval_ms, offset, *params],
            ).fetchall()
            outcomes = dict(con.execute("SELECT id, event_outcome FROM facet_combos").fetchall())
        return histogram.collect([(start, outcomes.get(combo), n) for start, combo, n in rows])

    def iterate(
        self, query: Query, batch_size: int = 1000, fields: Sequence[str] | None = None
    ) -> Iterator[dict]:
        """Every match newest first, from one read snapshot on a connection of its own.

        Like OpenSearch's point-in-time, later writes are not seen. While the
        snapshot is open the WAL cannot be checkpointed past it, so a very
        slow consumer lets the -wal file grow until the export ends.
        """
        where, params = self.where(query)
        batch_size = max(1, int(batch_size))
        self._con  # noqa: B018 - make sure the schema exists
        source = BY_IP if _by_ip(query) else "events"
        con = self._open()
        try:
            with self._errors("read"):
                con.execute("BEGIN")  # one snapshot, like OpenSearch's point-in-time
                cur = con.execute(
                    f"SELECT {', '.join(_READ_COLUMNS)} FROM {source} WHERE {where} "
                    "ORDER BY ts_ms DESC, event_id DESC",
                    params,
                )
                while True:
                    rows = cur.fetchmany(batch_size)
                    if not rows:
                        break
                    for row in rows:
                        yield _doc(row)
                con.execute("COMMIT")
        finally:
            con.close()

    def get(self, event_ids: Sequence[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        ids = list(event_ids)
        with self._errors("read"):
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                for row in self._con.execute(
                    f"{_SELECT} WHERE event_id IN ({_marks(chunk)})", chunk
                ):
                    doc = _doc(row)
                    out[doc["event.id"]] = doc
        return out

    def refresh(self) -> None:
        """Nothing to do: a committed write is visible to every later read."""
        self._con  # noqa: B018 - but do fail here on a broken file

    def accounts(self) -> list[str]:
        with self._errors("read"):
            return self._account_ids()

    def count_all(self) -> int:
        """Every event, all accounts (operators, tests)."""
        with self._errors("read"):
            return int(self._con.execute("SELECT count(*) FROM events").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for con in connections:
            try:
                con.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()


def _hot_facet_columns(names: Sequence[str]) -> list[str]:
    """events_hot columns that count ``names``: value ids, then ``combo`` if one is wanted."""
    cols = [_VALUE_ID_COLUMN[n] for n in names if n not in _COMBO_NAMES]
    if any(n in _COMBO_NAMES for n in names):
        cols.append("combo")
    return cols


def _period_only(query: Query) -> bool:
    """True when the query is just an account and a period (the rollup can answer it)."""
    if query.text.strip():
        return False
    return not any(
        getattr(query, name) for name in (*TERM_FILTERS, *PERSON_FILTERS, *EXTRA_FILTERS)
    )


def _by_ip(query: Query) -> bool:
    """Whether the IP index drives the query (people and history come first)."""
    return bool(query.ips) and not (
        query.history or any(getattr(query, name) for name in PERSON_FILTERS)
    )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection during a batch write or a search.

    A batch allocates tens of thousands of short-lived lists and tuples, all
    freed by reference counting; they set off dozens of full collections per
    200,000 events that found nothing (gc.get_stats: collected 0) and cost
    ~10 % of ingest. Collection resumes as soon as the batch is written; a
    concurrent caller re-enabling it early only costs speed, and only the
    caller that disabled it enables it again.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _folded(col: str) -> str:
    """A person column's folded form (its _fold shadow is NULL when folding changes nothing)."""
    return f"coalesce({col}_fold, {col})"


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


__all__ = ["SQLiteStore", "column", "ip_key", "ip_range", "path_from_url"]
