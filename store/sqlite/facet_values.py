"""Facet values: the many-valued facets of an event as small integers in ``events_hot``.

Counting the facets of a search that matches 100,000 events hands SQLite's
values to Python one object per value and row, and a small integer costs
far less than a string (docs/sqlite.md). So ``events`` keeps the action,
user name, target name and project as text (what a row shows) and beside
each an id in ``facet_values`` (``<column>_vid``), and ``events_hot``
holds the ids: counted per id, named once per distinct id.

One dictionary serves every such column. An id, once given, never changes
or goes away (retention leaves the table alone), so every connection may
cache it; ids are given inside the write transaction that first stores a
value and cached only after it commits, as in :mod:`.facet_combos`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Sequence

# (facet name, events column) of the facets counted through value ids.
VALUE_FACETS: tuple[tuple[str, str], ...] = (
    ("action", "event_action"),
    ("user", "user_name"),
    ("target", "user_target_name"),
    ("project", "audit_project_id"),
)
VALUE_COLUMNS: tuple[str, ...] = tuple(col for _name, col in VALUE_FACETS)

DDL = "CREATE TABLE IF NOT EXISTS facet_values (id INTEGER PRIMARY KEY, value TEXT NOT NULL UNIQUE)"

_CHUNK = 500


def id_column(column: str) -> str:
    """The events column holding ``column``'s value id."""
    return f"{column}_vid"


def filter_sql(column: str, count: int) -> str:
    """Condition for ``column IN (?, ...)`` with ``count`` parameters, through the value ids."""
    return (
        f"{id_column(column)} IN "
        f"(SELECT id FROM facet_values WHERE value IN ({','.join('?' * count)}))"
    )


class ValueIds:
    """Cached value ↔ id mapping of one store file."""

    # Cached values at most; past it the cache starts again from the file.
    limit = 200_000

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._values: dict[int, str] = {}
        self._lock = threading.Lock()
        self.known = self._ids.get

    def assign(self, con: sqlite3.Connection, values: Iterable[str]) -> dict[str, int]:
        """Ids for ``values``, inside the caller's write transaction; :meth:`remember` them
        after the commit."""
        wanted = list(dict.fromkeys(values))
        con.executemany(
            "INSERT INTO facet_values(value) VALUES (?) ON CONFLICT(value) DO NOTHING",
            [(v,) for v in wanted],
        )
        found: dict[str, int] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            found.update(
                con.execute(
                    f"SELECT value, id FROM facet_values WHERE value IN {_marks(chunk)}", chunk
                )
            )
        return found

    def remember(self, assigned: dict[str, int]) -> None:
        with self._lock:
            if len(self._values) + len(assigned) > self.limit:
                self._ids.clear()
                self._values.clear()
            self._ids.update(assigned)
            self._values.update((id_, value) for value, id_ in assigned.items())

    def by_value(self, con: sqlite3.Connection, counts: Counter) -> Counter:
        """``counts`` per value id → counts per value (ids not cached are read from the file)."""
        cached = self._values  # another thread may start it over meanwhile: get(), not []
        names = {i: v for i in counts if (v := cached.get(i)) is not None}
        missing = [i for i in counts if i is not None and i not in names]
        for start in range(0, len(missing), _CHUNK):
            chunk = missing[start : start + _CHUNK]
            names.update(
                con.execute(
                    f"SELECT id, value FROM facet_values WHERE id IN {_marks(chunk)}", chunk
                )
            )
        self.remember({names[i]: i for i in missing})
        out: Counter = Counter()
        for id_, n in counts.items():
            if id_ is not None:
                out[names[id_]] += n
        return out


def _marks(values: Sequence[object]) -> str:
    return f"({','.join('?' * len(values))})"


def fill(con: sqlite3.Connection, columns: Sequence[str] = VALUE_COLUMNS) -> None:
    """Give every stored event its value ids (file upgrades; inside their transaction)."""
    con.execute(DDL)
    con.execute(
        "INSERT INTO facet_values(value) SELECT value FROM ("
        + " UNION ".join(
            f"SELECT {col} AS value FROM events WHERE {col} IS NOT NULL" for col in columns
        )
        # WHERE true: an upsert after a SELECT needs one (SQLite's parsing).
        + ") WHERE true ORDER BY value ON CONFLICT(value) DO NOTHING"
    )
    con.execute(
        "UPDATE events SET "
        + ", ".join(
            f"{id_column(col)} = (SELECT id FROM facet_values WHERE value = events.{col})"
            for col in columns
        )
    )
