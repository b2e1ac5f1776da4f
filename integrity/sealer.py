"""The sealer: the indexer stage that writes signed checkpoints.

Documents the store accepted are turned into entries and kept per account;
`Sealer.flush`, which the indexer calls before it commits spool
positions, appends one checkpoint per account (several for very many
events) to the account's chain. Documents answered "duplicate" (events
re-delivered after a crash) are read back and the stored version is
sealed: see docs/integrity.md for why that keeps kill -9 harmless.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from useraudit.stages import Stage
from useraudit.store.base import Store, StoreUnavailable, WriteResult
from useraudit.store.ledger import Ledger, ledger_for

from . import checkpoint
from .canonical import event_hash
from .keys import SigningKey

log = logging.getLogger("useraudit.integrity")

ORIGIN_ID = "audit.origin.id"
ORIGIN_SEQ = "audit.origin.seq"


def entry_of(doc: dict[str, Any]) -> checkpoint.Entry:
    return [
        doc["event.id"],
        doc.get("@timestamp"),
        doc.get(ORIGIN_ID),
        doc.get(ORIGIN_SEQ),
        event_hash(doc),
    ]


def account_of(doc: dict[str, Any]) -> str:
    return str(doc.get("organization.id") or "")


class Chains:
    """Appends checkpoints to per-account chains shared with other writers."""

    def __init__(self, ledger: Ledger, key: SigningKey) -> None:
        self.ledger = ledger
        self.key = key
        # account -> (seq, hash) of the last checkpoint we know of.
        self._heads: dict[str, tuple[int, str]] = {}

    def _head(self, account: str) -> tuple[int, str]:
        known = self._heads.get(account)
        if known is not None:
            return known
        seq = self.ledger.head(account)
        if seq == 0:
            return 0, ""
        doc = self.ledger.get(account, seq)
        if doc is None:  # the search saw it but the get did not: start from scratch
            return 0, ""
        return seq, checkpoint.checkpoint_hash(doc)

    def append(
        self,
        account: str,
        entries: Sequence[checkpoint.Entry] = (),
        *,
        kind: str = "events",
        before: str | None = None,
    ) -> dict[str, Any]:
        seq, prev = self._head(account)
        while True:
            doc = checkpoint.make(
                self.key, account, seq + 1, prev, entries=entries, kind=kind, before=before
            )
            if self.ledger.create(doc):
                self._heads[account] = (seq + 1, checkpoint.checkpoint_hash(doc))
                return doc
            # Another writer took seq + 1: chain onto theirs.
            theirs = self.ledger.get(account, seq + 1)
            if theirs is None:
                raise StoreUnavailable(
                    f"checkpoint {account}/{seq + 1} exists but cannot be read yet"
                )
            seq, prev = seq + 1, checkpoint.checkpoint_hash(theirs)


class Sealer(Stage):
    """Indexer stage (:class:`~useraudit.stages.Stage`) sealing what the store accepted."""

    name = "integrity"

    def __init__(self, store: Store, key: SigningKey, *, max_entries: int = 5000) -> None:
        self.store = store
        self.chains = Chains(ledger_for(store), key)
        self.max_entries = max_entries
        self._pending: dict[str, list[checkpoint.Entry]] = defaultdict(list)
        self.sealed = 0
        self.checkpoints = 0

    def delivered(self, docs: Sequence[dict], results: Sequence[WriteResult]) -> None:
        again: list[str] = []
        for doc, result in zip(docs, results, strict=True):
            if result.status == "created":
                self._pending[account_of(doc)].append(entry_of(doc))
            elif result.status == "duplicate":
                again.append(doc["event.id"])
        if again:
            # What is stored is what gets sealed (its first ingestion time).
            self.store.refresh()
            for doc in self.store.get(again).values():
                self._pending[account_of(doc)].append(entry_of(doc))

    def flush(self) -> None:
        for account in list(self._pending):
            entries = self._pending[account]
            while entries:
                chunk = entries[: self.max_entries]
                self.chains.append(account, chunk)
                del entries[: len(chunk)]
                self.sealed += len(chunk)
                self.checkpoints += 1
            del self._pending[account]

    def pending(self) -> int:
        return sum(len(v) for v in self._pending.values())
