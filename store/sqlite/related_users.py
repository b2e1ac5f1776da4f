"""People: the persons of an event as small integers, for the history and person filters.

``related.user`` lists every id, name and e-mail of an event's actor, target
and impersonator (three values per person, folded). Listing each value
beside the event cost ~3.6 rows per event in ``related_users``, the most
expensive of a write's inserts after the event itself. An event has one to
three persons, so ``related_users`` now holds (account, week, person, row)
once per person, and ``person_values`` maps each folded value of an
account to the persons carrying it (written once per account and person).
A lookup by value goes value → persons → rows.

A person is the set of folded values one role (actor, target,
impersonator) contributes to ``related.user``; a value of ``related.user``
that no role accounts for is a person of its own. The rows found for a
value are thus exactly the events whose ``related.user`` holds it.

``people`` gives each set an id once (never changed or reused, so caches
stay valid); ids and listed pairs are cached only after the transaction
that wrote them commits, as with :mod:`.facet_combos`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import orjson

from useraudit.schema import PERSONS

DDL = (
    "CREATE TABLE IF NOT EXISTS related_users (\n"
    "  organization_id TEXT NOT NULL, week INTEGER NOT NULL, person INTEGER NOT NULL,\n"
    "  rid INTEGER NOT NULL,\n"
    "  PRIMARY KEY (organization_id, week, person, rid)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS people (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS person_values (\n"
    "  organization_id TEXT NOT NULL, value TEXT NOT NULL, person INTEGER NOT NULL,\n"
    "  PRIMARY KEY (organization_id, value, person)) WITHOUT ROWID",
)

# The fields each role contributes to related.user.
ROLE_FIELDS: tuple[tuple[str, ...], ...] = tuple(
    tuple(f"{prefix}.{part}" for part in ("id", "name", "email", "full_name"))
    for prefix, _role in PERSONS
)

Person = frozenset[str]


def persons_of(
    get: Callable[[str], Any], related: Iterable[Any], fold: Callable[[Any], str]
) -> list[Person]:
    """The persons of one event: ``get`` reads its fields, ``related`` is its related.user."""
    # Roles are matched on the values as given (the enricher copies them into
    # related.user unchanged) and each value is folded once: this runs for
    # every event written.
    try:
        return _persons_of(get, related, fold)
    except TypeError:  # an unhashable value (not from the enricher): one person per value
        return [frozenset((v,)) for v in {fold(v) for v in related if v}]


def _persons_of(
    get: Callable[[str], Any], related: Iterable[Any], fold: Callable[[Any], str]
) -> list[Person]:
    rest = set(related)
    out: list[Person] = []
    for fields in ROLE_FIELDS:
        values: tuple[Any, ...] = tuple(map(get, fields))
        if not all(values):
            values = tuple(filter(None, values))
            if not values:
                continue
        # A role value missing from related.user (a document not made by the
        # enricher) must not be found through it: such a role's listed values
        # stay in ``rest``, each a person of its own.
        if rest.issuperset(values):
            out.append(_person(values, fold))
            rest.difference_update(values)
        elif len(values) > 1 and get(fields[-1]) and rest.issuperset(values[:-1]):
            # Stored before related.user listed full names: the person
            # without theirs, as it was written then.
            out.append(_person(values[:-1], fold))
            rest.difference_update(values[:-1])
    if rest:
        out += [frozenset((fold(v),)) for v in rest if v]
    return out


@lru_cache(maxsize=65536)
def _person(values: tuple[Any, ...], fold: Callable[[Any], str]) -> Person:
    # The same people act again and again: fold their values once.
    return frozenset(map(fold, values))


def _key(person: Person) -> str:
    return orjson.dumps(sorted(person)).decode()


def lookup_sql(count: int) -> str:
    """A ``related_users`` condition: the persons carrying any of ``count`` folded values.

    Parameters: the account, then the ``count`` values.
    """
    return (
        "person IN (SELECT person FROM person_values WHERE organization_id = ? "
        f"AND value IN ({','.join('?' * count)}))"
    )


class People:
    """Cached person ids and listed (account, person) pairs of one store file."""

    # Cached persons and listed pairs at most; past it the cache starts again from the file.
    limit = 200_000

    def __init__(self) -> None:
        self._ids: dict[Person, int] = {}
        self._listed: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def known(self, person: Person) -> int | None:
        return self._ids.get(person)

    def assign(self, con: sqlite3.Connection, persons: Iterable[Person]) -> dict[Person, int]:
        """Ids for ``persons`` (new ones given), inside the caller's write transaction."""
        wanted = {p: _key(p) for p in persons}
        if not wanted:
            return {}
        con.executemany(
            "INSERT INTO people(key) VALUES (?) ON CONFLICT(key) DO NOTHING",
            [(k,) for k in wanted.values()],
        )
        return self._read(con, wanted)

    def find(self, con: sqlite3.Connection, persons: Iterable[Person]) -> dict[Person, int]:
        """Ids of ``persons`` that have one (cached or in the file); none are given."""
        out: dict[Person, int] = {}
        wanted: dict[Person, str] = {}
        for p in persons:
            if (id_ := self._ids.get(p)) is not None:
                out[p] = id_
            else:
                wanted[p] = _key(p)
        out.update(self._read(con, wanted))
        return out

    @staticmethod
    def _read(con: sqlite3.Connection, wanted: dict[Person, str]) -> dict[Person, int]:
        by_key = {k: p for p, k in wanted.items()}
        keys = list(by_key)
        found: dict[Person, int] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            for id_, key in con.execute(
                f"SELECT id, key FROM people WHERE key IN ({','.join('?' * len(chunk))})", chunk
            ):
                found[by_key[key]] = id_
        return found

    def list_values(
        self, con: sqlite3.Connection, pairs: dict[tuple[str, int], Person]
    ) -> set[tuple[str, int]]:
        """Write person_values for (account, person) pairs not listed yet; returns them."""
        new = {pair: p for pair, p in pairs.items() if pair not in self._listed}
        con.executemany(
            "INSERT OR IGNORE INTO person_values(organization_id, value, person) VALUES (?, ?, ?)",
            [(account, value, id_) for (account, id_), p in new.items() for value in p],
        )
        return set(new)

    def remember(self, assigned: dict[Person, int], listed: set[tuple[str, int]]) -> None:
        with self._lock:
            if len(self._ids) + len(self._listed) + len(assigned) + len(listed) > self.limit:
                self._ids.clear()
                self._listed.clear()
            self._ids.update(assigned)
            self._listed |= listed
