"""The file's layout version, upgrades of older files, and columns for new fields.

``PRAGMA user_version`` holds :data:`FILE_VERSION`. A file of an older
version is upgraded in place when it is opened; a newer one is refused.
A field added to :data:`useraudit.schema.FIELDS` needs no new version: its
column is added to existing files on open (:func:`add_missing_columns`,
nullable), so features can add fields without taking version numbers.
"""

from __future__ import annotations

import sqlite3

from . import facet_combos, facet_values, related_users
from .layout import COLUMNS, FTS_DDL, VALUE_ID_COLUMNS, WEEK_MS, event_columns
from .related_users import People
from .rows import ROLE_SELECT, stored_persons

# The file's own layout version (PRAGMA user_version); 1 had no week column,
# 2 had an index on related_users(rid) (a copy of the whole table) and
# indexes on time, outcome, action, project and product/group, 3 had the
# six few-valued facets as strings in events_hot instead of their combination,
# 4 listed every related.user value in related_users instead of persons,
# 5 had action, user, target and project as strings in events_hot instead
# of their value ids, 6 had no account tokens in events_fts, 7 indexed
# words instead of their stems (.stems), 8 had no country (GeoIP) in the
# facet combinations and events_hot.
FILE_VERSION = 9
_DROPPED_IN_3 = (
    "related_users_rid",
    "events_ts",
    "events_groups",
    "events_event_outcome",
    "events_event_action",
    "events_audit_project_id",
)


def upgrade(con: sqlite3.Connection, version: int) -> None:
    """An older file's rows brought to this layout (inside the install transaction).

    The caller's ddl() runs afterwards: its IF NOT EXISTS statements create
    what is new (events_hot last, so the rewrite of every row below does not
    also maintain that index).
    """
    # Schema fields' new columns first: later steps (and events_hot) read
    # them. Our own columns (combo, value ids) are the steps' business.
    have = {row[1] for row in con.execute("PRAGMA table_info(events)")}
    fields = {column for _name, column, _kind, _multi in COLUMNS}
    for col, sql_type in event_columns():
        if col in fields and col not in have:
            con.execute(f"ALTER TABLE events ADD COLUMN {col} {sql_type}")
    if version < 4:
        con.execute("DROP INDEX IF EXISTS events_hot")
        for index in _DROPPED_IN_3:
            con.execute(f"DROP INDEX IF EXISTS {index}")
        if version == 1:
            _upgrade_from_1(con)
        con.execute("ALTER TABLE events ADD COLUMN combo INTEGER")
        con.execute(facet_combos.DDL)
        facet_combos.fill(con)
    if version < 5:
        _rebuild_related_users(con)
    if version < 6:
        con.execute("DROP INDEX IF EXISTS events_hot")
        for col in VALUE_ID_COLUMNS:
            con.execute(f"ALTER TABLE events ADD COLUMN {col} INTEGER")
        facet_values.fill(con)
    if version < 8:
        con.execute("DROP TABLE IF EXISTS events_fts")
        con.execute("DROP VIEW IF EXISTS events_fts_source")
        for stmt in FTS_DDL:
            con.execute(stmt)
        con.execute("INSERT INTO events_fts(events_fts) VALUES ('rebuild')")
    if version < 9:
        _country_in_combos(con)


def _country_in_combos(con: sqlite3.Connection) -> None:
    """File version 9: the GeoIP country is a facet, so a part of every combination.

    Older rows have no GeoIP fields: their combinations get a NULL country
    (keys rewritten to the new length, ids unchanged), and events_hot is
    rebuilt by ddl() with the country column.
    """
    have = {row[1] for row in con.execute("PRAGMA table_info(facet_combos)")}
    if have and "source_geo_country_iso_code" not in have:
        con.execute("ALTER TABLE facet_combos ADD COLUMN source_geo_country_iso_code TEXT")
        con.execute("UPDATE facet_combos SET key = json_insert(key, '$[#]', NULL)")
    con.execute("DROP INDEX IF EXISTS events_hot")


def _rebuild_related_users(con: sqlite3.Connection) -> None:
    """related_users by person (file version 5) from the events themselves."""
    con.execute("DROP TABLE IF EXISTS related_users")
    for stmt in related_users.DDL:
        con.execute(stmt)
    people = People()
    last = 0
    while True:
        rows = con.execute(
            f"SELECT rid, organization_id, week, related_user, {ROLE_SELECT} FROM events "
            "WHERE rid > ? AND related_user IS NOT NULL ORDER BY rid LIMIT 20000",
            (last,),
        ).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        mine = [(r, stored_persons(r[4:], r[3])) for r in rows]
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


def missing_columns(con: sqlite3.Connection) -> list[tuple[str, str]]:
    """(column, SQL type) of ``events`` columns the file lacks: fields added since it was made."""
    have = {row[1] for row in con.execute("PRAGMA table_info(events)")}
    return [(col, sql_type) for col, sql_type in event_columns() if col not in have]


def add_missing_columns(con: sqlite3.Connection) -> list[str]:
    """Add the columns of new schema fields (nullable; inside the caller's transaction).

    Events written before have NULL there, as events that lack the field.
    A new term filter's column is not in an existing ``events_hot`` index:
    filters on it read the rows instead, which is slower, never wrong.
    """
    added = []
    for col, sql_type in missing_columns(con):
        con.execute(f"ALTER TABLE events ADD COLUMN {col} {sql_type}")
        added.append(col)
    return added
