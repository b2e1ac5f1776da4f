"""The integrity ledger: signed checkpoints kept in the store they describe.

Checkpoints (``useraudit.integrity.checkpoint``) are JSON documents keyed
by ``(account, seq)`` and written with create semantics: the first writer of
a key wins and everyone else is told it exists, which is how several
indexers share one chain per account (docs/integrity.md). The ledger never
updates or deletes a checkpoint.

:func:`ledger_for` gives the ledger of a Store: a ``ledger`` table in the
SQLite file (:mod:`.sqlite.ledger`), an index ``<prefix>-ledger`` on
OpenSearch (:mod:`.opensearch.ledger`).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from typing import Any

from .base import Store, StoreError


class Ledger(abc.ABC):
    @abc.abstractmethod
    def create(self, doc: dict[str, Any]) -> bool:
        """Store a checkpoint unless ``(account, seq)`` exists; True when this call created it."""

    def create_many(self, docs: Sequence[dict[str, Any]]) -> list[bool]:
        """:meth:`create` for checkpoints of *different* accounts, in one write where it can.

        One answer per checkpoint, in order. Each is created or refused on
        its own, as by :meth:`create`; a store error may leave some created.
        """
        return [self.create(doc) for doc in docs]

    @abc.abstractmethod
    def get(self, account: str, seq: int) -> dict[str, Any] | None:
        """One checkpoint, as last written (never stale)."""

    @abc.abstractmethod
    def head(self, account: str) -> int:
        """The highest seq of ``account`` (0 for none).

        May lag behind a checkpoint written a moment ago by another process
        (OpenSearch searches are near-real-time): writers walk forward from
        it with :meth:`create` and :meth:`get`, which never lag.
        """

    @abc.abstractmethod
    def iterate(self, account: str | None = None) -> Iterator[dict[str, Any]]:
        """Every checkpoint (of one account), by account then seq."""

    @abc.abstractmethod
    def accounts(self) -> list[str]:
        """Accounts that have checkpoints."""

    @abc.abstractmethod
    def drop(self) -> None:
        """Delete the whole ledger (tests and operators starting over)."""


def ledger_for(store: Store) -> Ledger:
    from .opensearch import OpenSearchStore
    from .sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        from .sqlite.ledger import SQLiteLedger

        return SQLiteLedger(store)
    if isinstance(store, OpenSearchStore):
        from .opensearch.ledger import OpenSearchLedger

        return OpenSearchLedger(store)
    raise StoreError(f"{type(store).__name__} keeps no integrity ledger")
