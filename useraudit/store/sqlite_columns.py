"""Columns for schema fields added since a SQLite file was created.

A field added to :data:`useraudit.schema.FIELDS` is a nullable column at
the end of ``events``: ``ALTER TABLE ... ADD COLUMN`` changes no row, so an
existing file takes it on open, in one short transaction, without a file
version of its own. Older rows read NULL there, as if the field was absent.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence


def missing(con: sqlite3.Connection, wanted: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    have = {row[1] for row in con.execute("PRAGMA table_info(events)")}
    return [(col, sql_type) for col, sql_type in wanted if col not in have]


def add_missing(con: sqlite3.Connection, wanted: Sequence[tuple[str, str]]) -> list[str]:
    """Add the columns ``events`` lacks (``(column, SQL type)`` pairs); returns their names."""
    todo = missing(con, wanted)
    if not todo:
        return []
    con.execute("BEGIN IMMEDIATE")
    try:
        for col, sql_type in missing(con, wanted):  # again, under the write lock
            con.execute(f"ALTER TABLE events ADD COLUMN {col} {sql_type}")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return [col for col, _t in todo]
