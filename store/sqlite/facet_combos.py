"""Facet combinations: the few-valued facets of an event as one small integer.

A search whose text matches tens of thousands of events counts every facet
over all of them, and handing each matching row's values from SQLite to
Python costs per object: a string per value (~250 ns each with its
hashing). The result, product, browser, OS, device and impersonator of an
event take few combinations next to the number of events (at 1M events the
largest account's common-word matches hold ~170 of them), so ``events``
stores the combination's id in ``combo`` and ``events_hot`` holds that
integer instead of six strings: a matching row hands over one int, counted
per combination and split into the six facets once per distinct id.

``facet_combos`` maps ids to values; an id, once given, never changes or
goes away (retention leaves the table alone: it stays tiny), so every
connection may cache it. Ids are given inside the write transaction that
first stores a combination, and cached only after that transaction
commits: a rolled-back id may be given again to another combination.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

# (facet name, events column), in key order.
COMBO_FACETS: tuple[tuple[str, str], ...] = (
    ("result", "event_outcome"),
    ("product", "audit_product"),
    ("browser", "user_agent_name"),
    ("os", "user_agent_os_name"),
    ("device", "user_agent_device_name"),
    ("impersonator", "audit_impersonator_name"),
    ("country", "source_geo_country_iso_code"),
)
COMBO_COLUMNS: tuple[str, ...] = tuple(col for _name, col in COMBO_FACETS)

DDL = (
    "CREATE TABLE IF NOT EXISTS facet_combos (\n"
    "  id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,\n  "
    + ", ".join(f"{col} TEXT" for col in COMBO_COLUMNS)
    + ")"
)

Combo = tuple[Any, ...]


def combo_key(values: Sequence[Any]) -> str:
    """The UNIQUE text of a combination (NULLs included, unlike a UNIQUE over columns)."""
    return orjson.dumps(list(values)).decode()


def filter_sql(column: str, count: int) -> str:
    """``combo`` condition for ``column IN (?, ...)`` with ``count`` parameters."""
    return f"combo IN (SELECT id FROM facet_combos WHERE {column} IN ({','.join('?' * count)}))"


def stored(combo: Combo) -> Combo:
    """A combination as stored: every value a string or None (write rows mark NULL otherwise)."""
    return tuple(v if type(v) is str else None for v in combo)


class ComboIds:
    """Cached id ↔ combination mapping of one store file.

    Lookups take combinations as write rows carry them, NULL as ``absent``.
    """

    # Cached combinations at most; past it the cache starts again from the file.
    limit = 100_000

    def __init__(self, absent: Any = None) -> None:
        self._absent = absent
        self._ids: dict[Combo, int] = {}
        self._values: dict[int, Combo] = {}
        self._lock = threading.Lock()

    def known(self, combo: Combo) -> int | None:
        return self._ids.get(combo)

    def assign(self, con: sqlite3.Connection, combos: Iterable[Combo]) -> dict[Combo, int]:
        """Ids for ``combos`` not in the cache, inside the caller's write transaction.

        Not cached here: call :meth:`remember` after the commit.
        """
        wanted = {c: combo_key(stored(c)) for c in dict.fromkeys(combos)}
        if not wanted:
            return {}
        con.executemany(
            "INSERT INTO facet_combos(key, "
            + ", ".join(COMBO_COLUMNS)
            + ") VALUES (?"
            + ", ?" * len(COMBO_COLUMNS)
            + ") ON CONFLICT(key) DO NOTHING",
            [(key, *stored(combo)) for combo, key in wanted.items()],
        )
        by_key = {key: combo for combo, key in wanted.items()}
        found: dict[Combo, int] = {}
        keys = list(by_key)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            for id_, key in con.execute(
                f"SELECT id, key FROM facet_combos WHERE key IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                found[by_key[key]] = id_
        return found

    def remember(self, assigned: dict[Combo, int]) -> None:
        absent = self._absent
        with self._lock:
            if len(self._values) + len(assigned) > self.limit:
                self._ids.clear()
                self._values.clear()
            for combo, id_ in assigned.items():
                values = stored(combo)
                self._ids[tuple(absent if v is None else v for v in values)] = id_
                self._values[id_] = values

    def values(self, con: sqlite3.Connection, ids: Iterable[int]) -> dict[int, Combo]:
        """The combination of each id (read from the file for ids not cached yet)."""
        found: dict[int, Combo] = {}
        missing: list[int] = []
        for i in ids:
            if i is not None:
                if (combo := self._values.get(i)) is not None:
                    found[i] = combo
                else:
                    missing.append(i)
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            rows = con.execute(
                f"SELECT id, {', '.join(COMBO_COLUMNS)} FROM facet_combos "
                f"WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            read = {r[0]: tuple(r[1:]) for r in rows}
            found.update(read)
            self.remember({combo: id_ for id_, combo in read.items()})
        return found

    def split(
        self, con: sqlite3.Connection, counts: Counter, names: Sequence[str]
    ) -> dict[str, Counter]:
        """Per-facet counters for ``names`` from counts per combination id."""
        positions = [(name, i) for i, (name, _col) in enumerate(COMBO_FACETS) if name in names]
        out: dict[str, Counter] = {name: Counter() for name, _i in positions}
        for id_, combo in self.values(con, counts).items():
            n = counts[id_]
            for name, i in positions:
                value = combo[i]
                if value is not None:
                    out[name][value] += n
        return out


def fill(con: sqlite3.Connection) -> None:
    """Give every stored event its ``combo`` (file upgrades; inside their transaction)."""
    cols = ", ".join(COMBO_COLUMNS)
    combos = [tuple(r) for r in con.execute(f"SELECT DISTINCT {cols} FROM events")]
    ComboIds().assign(con, combos)
    # One lookup per row through the UNIQUE key, with the same key text
    # Python makes for new events.
    con.create_function(
        "useraudit_combo_key", len(COMBO_COLUMNS), lambda *v: combo_key(v), deterministic=True
    )
    # The columns named through events: facet_combos has columns of the same names.
    of_event = ", ".join(f"events.{col}" for col in COMBO_COLUMNS)
    try:
        con.execute(
            "UPDATE events SET combo = (SELECT id FROM facet_combos "
            f"WHERE key = useraudit_combo_key({of_event}))"
        )
    finally:
        con.create_function("useraudit_combo_key", len(COMBO_COLUMNS), None)
