"""``facet_counts``: per account, facet, UTC month and value, how many events.

Kept exact in the same transaction as every write and delete, so the landing
page (an account and a period, nothing else) takes its total and facets for
the whole months of the period from here.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from functools import lru_cache
from operator import itemgetter
from typing import Any

from .layout import DAY_MS, FACET_COLUMNS, TOTAL
from .rows import COUNT_POSITIONS

_EPOCH_DAY = date(1970, 1, 1)


@lru_cache(maxsize=4096)
def month_of_day(day: int) -> int:
    d = _EPOCH_DAY + timedelta(days=day)
    return d.year * 12 + d.month - 1


def _month_first_day(month: int) -> int:
    return (date(month // 12, month % 12 + 1, 1) - _EPOCH_DAY).days


def month_start_ms(month: int) -> int:
    return _month_first_day(month) * DAY_MS


def add_counts(
    con: sqlite3.Connection, rows: Iterable[Sequence[Any]], sign: int, projected: bool = False
) -> None:
    """Add (or with ``sign`` -1 remove) rows to the monthly facet_counts rollup."""
    names = [name for name, _col in FACET_COLUMNS]
    pick = itemgetter(*COUNT_POSITIONS)
    # Rows grouped by (account, month) first: a batch spans few of those, and
    # each facet is then counted in one C-level pass over the group instead
    # of a key tuple per event and facet.
    groups: dict[tuple[str, int], list[Sequence[Any]]] = {}
    for row in rows:
        values = row if projected else pick(row)
        account = values[0]
        if type(account) is not str:  # None, or NULL_TEXT in a write row
            continue
        key = (account, month_of_day(values[1] // DAY_MS))
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
