"""Writing and deleting events: one batch of rows, its ids, its side tables.

A write is built in Python before the write lock is taken (:class:`Batch`),
then inserted in one short ``BEGIN IMMEDIATE`` transaction with everything
that depends on it: the full-text index, ``related_users``, the monthly
``facet_counts``. Ids given in that transaction (combinations, values,
persons) are cached only after it commits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..base import WriteResult
from .facet_combos import ComboIds
from .facet_values import ValueIds
from .layout import account_token
from .related_users import People
from .rollup import add_counts
from .rows import (
    ACCOUNT,
    COMBO,
    COMMENTS,
    COUNT_SELECT,
    INSERT,
    NULL_INTEGER,
    NULL_TEXT,
    ROLE_FIELDS,
    ROLE_SELECT,
    VALUE_SLOTS,
    WEEK,
    build_row,
    combo_of_row,
    persons_in,
    stored_persons,
    timestamp_ms,
)
from .stems import stem_text

# Shared, frozen: one WriteResult per event cost ~0.5 us.
CREATED = WriteResult("created")
DUPLICATE = WriteResult("duplicate")
Person = frozenset[str]


@dataclass
class Ids:
    """A store's caches of the small ids its rows refer to (combinations, values, persons)."""

    combos: ComboIds = field(default_factory=lambda: ComboIds(absent=NULL_TEXT))
    values: ValueIds = field(default_factory=ValueIds)
    people: People = field(default_factory=People)


def prepare(docs: Sequence[dict]) -> tuple[list[tuple[int, dict, int]], list[WriteResult | None]]:
    """(position, event, epoch ms) of each writable event, and a result slot for each event.

    Events without an ``event.id`` or a readable ``@timestamp`` are rejected here.
    """
    results: list[WriteResult | None] = [None] * len(docs)
    prepared: list[tuple[int, dict, int]] = []
    for i, doc in enumerate(docs):
        event_id = doc.get("event.id")
        if not event_id or not isinstance(event_id, str):
            results[i] = WriteResult("rejected", "event.id is missing")
            continue
        try:
            prepared.append((i, doc, timestamp_ms(doc["@timestamp"])))
        except (KeyError, ValueError, TypeError) as exc:
            results[i] = WriteResult("rejected", f"@timestamp is missing or invalid: {exc}")
    return prepared, results


class Batch:
    """The rows of one write, with the ids they need; built before the write lock is taken."""

    def __init__(self, ids: Ids, results: list[WriteResult | None]) -> None:
        self.ids = ids
        self.results = results
        self.rows: list[list] = []
        self.kept: list[int] = []  # the position in docs of each row
        self.persons: list[list[Person]] = []
        self.new_combos: list[list] = []  # rows whose combination has no cached id yet
        self.new_values: set[str] = set()
        self.new_people: set[Person] = set()
        self.pids: dict[Person, int] = {}  # taken now: the cache may start over meanwhile
        # Given inside the transaction, cached by remember() once it committed.
        self.combo_ids: dict = {}
        self.value_ids: dict[str, int] = {}
        self.person_ids: dict[Person, int] = {}
        self.listed: set[tuple[str, int]] = set()

    def add(self, prepared: list[tuple[int, dict, int]]) -> None:
        """Every event as a row, with the ids already cached filled in."""
        for i, doc, ts in prepared:
            try:
                row = build_row(doc, 0, ts)
                mine = persons_in(doc.get, doc.get("related.user"))
            except (TypeError, ValueError) as exc:
                self.results[i] = WriteResult("rejected", f"cannot store: {exc}")
                continue
            self._known_ids(row, mine)
            self.rows.append(row)
            self.persons.append(mine)
            self.kept.append(i)

    def _known_ids(self, row: list, mine: list[Person]) -> None:
        if (combo := self.ids.combos.known(combo_of_row(row))) is None:
            self.new_combos.append(row)
        row[COMBO] = combo
        value_id = self.ids.values.known
        for src, dst in VALUE_SLOTS:
            if (value := row[src]) is not NULL_TEXT:
                if (vid := value_id(value)) is None:
                    self.new_values.add(value)
                else:
                    row[dst] = vid
        for p in mine:
            if (pid := self.ids.people.known(p)) is None:
                self.new_people.add(p)
            else:
                self.pids[p] = pid

    def write(self, con: sqlite3.Connection) -> None:
        """Insert the rows and what depends on them (inside the caller's transaction)."""
        self._assign_ids(con)
        base, created = self._insert(con)
        self._index(con, base, created)

    def _assign_ids(self, con: sqlite3.Connection) -> None:
        if self.new_combos:
            self.combo_ids = self.ids.combos.assign(con, map(combo_of_row, self.new_combos))
            for row in self.new_combos:
                row[COMBO] = self.combo_ids[combo_of_row(row)]
        if self.new_values:
            self.value_ids = self.ids.values.assign(con, self.new_values)
            for row in self.rows:
                for src, dst in VALUE_SLOTS:
                    if row[dst] == NULL_INTEGER and (value := row[src]) is not NULL_TEXT:
                        row[dst] = self.value_ids[value]
        if self.new_people:
            self.person_ids = self.ids.people.assign(con, self.new_people)
            self.pids.update(self.person_ids)

    def _insert(self, con: sqlite3.Connection) -> tuple[int, set[int]]:
        """(the rid before ours, the rids of the rows that were new)."""
        base = con.execute("SELECT coalesce(max(rid), 0) FROM events").fetchone()[0]
        for k, row in enumerate(self.rows, start=base + 1):
            row[0] = k
        # Idempotence: a known event.id is ignored by the UNIQUE index; the
        # rows that are present afterwards in our fresh rid range are ours.
        con.executemany(INSERT, self.rows)
        created = {
            r[0]
            for r in con.execute(
                "SELECT rid FROM events WHERE rid BETWEEN ? AND ?",
                (base + 1, base + len(self.rows)),
            )
        }
        return base, created

    def _index(self, con: sqlite3.Connection, base: int, created: set[int]) -> None:
        """Full text, related_users and facet_counts for the new rows; a result for every row."""
        fts: list[tuple[int, str | None, str]] = []
        related: list[tuple[str, int, int, int]] = []
        pairs: dict[tuple[str, int], Person] = {}
        for row, mine, i in zip(self.rows, self.persons, self.kept, strict=True):
            rid = row[0]
            if rid not in created:
                self.results[i] = DUPLICATE
                continue
            self.results[i] = CREATED
            account = row[ACCOUNT]
            if comments := row[COMMENTS]:  # NULL_TEXT when absent
                token = account_token(account) if type(account) is str else None
                fts.append((rid, token, stem_text(comments)))
            account = account or ""
            for person in mine:
                pid = self.pids[person]
                related.append((account, row[WEEK], pid, rid))
                pairs[(account, pid)] = person
        con.executemany(
            "INSERT INTO events_fts(rowid, account, audit_comments) VALUES (?, ?, ?)", fts
        )
        con.executemany(
            "INSERT OR IGNORE INTO related_users(organization_id, week, person, rid) "
            "VALUES (?, ?, ?, ?)",
            related,
        )
        self.listed = self.ids.people.list_values(con, pairs)
        add_counts(con, (self.rows[rid - base - 1] for rid in created), +1)

    def remember(self) -> None:
        """Cache the ids given in the write (only now: a rolled-back id is not taken)."""
        self.ids.combos.remember(self.combo_ids)
        self.ids.values.remember(self.value_ids)
        self.ids.people.remember(self.person_ids, self.listed)


def delete_batch(
    con: sqlite3.Connection, people: People, source: str, which: str, params: list[Any]
) -> list[tuple]:
    """Delete the oldest events of one account before a time; returns the rows deleted.

    ``source`` is the table (index) to read them through, ``which`` the
    account condition; ``params`` its parameters, the time and the batch size.
    """
    rows = con.execute(
        "SELECT rid, audit_comments, week, related_user, "
        f"{ROLE_SELECT}, {COUNT_SELECT} FROM {source} WHERE {which} AND ts_ms < ? "
        "ORDER BY ts_ms LIMIT ?",
        params,
    ).fetchall()
    if not rows:
        return rows
    counted = 4 + len(ROLE_FIELDS)
    con.executemany(
        "INSERT INTO events_fts(events_fts, rowid, account, audit_comments) "
        "VALUES ('delete', ?, ?, ?)",
        [
            (r[0], None if r[counted] is None else account_token(r[counted]), stem_text(r[1]))
            for r in rows
            if r[1]
        ],
    )
    add_counts(con, (r[counted:] for r in rows), -1, projected=True)
    # related_users rows by their whole key, as write() made them.
    mine = {r[0]: stored_persons(r[4:counted], r[3]) for r in rows if r[3]}
    ids = people.find(con, {p for persons in mine.values() for p in persons})
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
