"""The sealer: the indexer stage that writes signed checkpoints.

Documents the store accepted are turned into entries and kept per account;
`Sealer.flush`, which the indexer calls before it commits spool
positions, appends one checkpoint per account (several for very many
events) to the account's chain. Under load, the checkpoints of what was
delivered are written ahead on a helper thread while the indexer writes
the next batch; `flush` waits for that write and writes what is left.
Documents answered "duplicate" (events re-delivered after a crash) are
read back and the stored version is sealed: see docs/integrity.md for why
that keeps kill -9 harmless.
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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


# (account, entries, their Merkle leaves): what one checkpoint seals.
Chunk = tuple[str, Sequence[checkpoint.Entry], Sequence[bytes]]


def entry_of(doc: dict[str, Any]) -> checkpoint.Entry:
    # A tuple: one allocation, and the garbage collector stops tracking it.
    return (
        doc["event.id"],
        doc.get("@timestamp"),
        doc.get(ORIGIN_ID),
        doc.get(ORIGIN_SEQ),
        event_hash(doc),
    )


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
        leaves: Sequence[bytes] | None = None,
    ) -> dict[str, Any]:
        seq, prev = self._head(account)
        while True:
            doc = checkpoint.make(
                self.key,
                account,
                seq + 1,
                prev,
                entries=entries,
                kind=kind,
                before=before,
                leaves=leaves,
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

    def append_many(self, chunks: Sequence[Chunk]) -> None:
        """One ``events`` checkpoint per (account, entries, their leaves), accounts all different.

        Written in one ledger write; an account whose next seq another writer
        took meanwhile chains onto theirs, as :meth:`append` does.
        """
        docs = []
        for account, entries, leaves in chunks:
            seq, prev = self._head(account)
            docs.append(
                checkpoint.make(self.key, account, seq + 1, prev, entries=entries, leaves=leaves)
            )
        created = self.ledger.create_many(docs)
        for (account, entries, leaves), doc, ok in zip(chunks, docs, created, strict=True):
            if ok:
                self._heads[account] = (doc["seq"], checkpoint.checkpoint_hash(doc))
                continue
            theirs = self.ledger.get(account, doc["seq"])
            if theirs is None:
                raise StoreUnavailable(
                    f"checkpoint {account}/{doc['seq']} exists but cannot be read yet"
                )
            self._heads[account] = (doc["seq"], checkpoint.checkpoint_hash(theirs))
            self.append(account, entries, leaves=leaves)


class _Pending:
    """One account's entries waiting for a checkpoint, with their Merkle leaves."""

    __slots__ = ("entries", "leaves")

    def __init__(self) -> None:
        self.entries: list[checkpoint.Entry] = []
        self.leaves: list[bytes] = []

    def add(self, entry: checkpoint.Entry, leaf: bytes) -> None:
        self.entries.append(entry)
        self.leaves.append(leaf)


class Sealer(Stage):
    """Indexer stage (:class:`~useraudit.stages.Stage`) sealing what the store accepted.

    The entry and leaf of each event are worked out in :meth:`prepare`, on
    the indexer's read-ahead thread while the previous batch is written;
    ``prepares_last`` makes the indexer refuse any stage that prepares (adds
    fields) after it. An event that was never prepared (``delivered`` called
    directly) is worked out on delivery.
    """

    name = "integrity"
    prepares_last = True
    # Events prepared but never delivered (refused by the store) are forgotten
    # past this many, oldest first; one forgotten too early is worked out again.
    max_prepared = 20_000
    # Once this many entries wait, delivered() starts their checkpoints on a
    # helper thread: the ledger's round trip then overlaps the next batch's
    # write instead of holding up the commit. Fewer (a trickle) wait for flush().
    write_ahead = 1000

    def __init__(self, store: Store, key: SigningKey, *, max_entries: int = 5000) -> None:
        self.store = store
        self.chains = Chains(ledger_for(store), key)
        self.max_entries = max_entries
        self._pending: dict[str, _Pending] = defaultdict(_Pending)
        # id(document) -> (the document prepared, its entry, its leaf, its account)
        self._prepared: dict[int, tuple[dict, checkpoint.Entry, bytes, str]] = {}
        self.sealed = 0
        self.checkpoints = 0
        # One helper thread, so the chains are only ever appended to by one
        # thread at a time: flush() waits for it before writing on its own.
        self._writer: ThreadPoolExecutor | None = None
        self._writing: tuple[Future[None], list[Chunk]] | None = None

    def prepare(self, doc: dict) -> None:
        entry = entry_of(doc)
        prepared = self._prepared
        # Keyed by the document itself: held here, its id() cannot be reused
        # by another document meanwhile, and delivery finds it without reading
        # the document again (it is cold by then).
        prepared[id(doc)] = (doc, entry, checkpoint.entry_leaf(entry), account_of(doc))
        if len(prepared) > self.max_prepared:
            for key in list(itertools.islice(prepared, len(prepared) - self.max_prepared)):
                del prepared[key]

    def delivered(self, docs: Sequence[dict], results: Sequence[WriteResult]) -> None:
        again: list[str] = []
        prepared = self._prepared
        pending = self._pending
        for doc, result in zip(docs, results, strict=True):
            early = prepared.pop(id(doc), None)
            status = result.status
            if status == "created":
                if early is None:
                    entry = entry_of(doc)
                    pending[account_of(doc)].add(entry, checkpoint.entry_leaf(entry))
                else:
                    p = pending[early[3]]
                    p.entries.append(early[1])
                    p.leaves.append(early[2])
            elif status == "duplicate":
                again.append(doc["event.id"])
        if again:
            # What is stored is what gets sealed (its first ingestion time).
            self.store.refresh()
            for doc in self.store.get(again).values():
                entry = entry_of(doc)
                pending[account_of(doc)].add(entry, checkpoint.entry_leaf(entry))
        if self._writing is not None and self._writing[0].done():
            self._settle()
        if self._writing is None and self.pending() >= self.write_ahead:
            chunks = self._take()
            if self._writer is None:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="useraudit-seal")
            self._writing = (self._writer.submit(self.chains.append_many, chunks), chunks)

    def flush(self) -> None:
        self._settle()
        # One ledger write per round: every account's next checkpoint together.
        while self._pending:
            chunks = self._take()
            try:
                self.chains.append_many(chunks)
            except BaseException:
                self._give_back(chunks)  # held for the next flush; the positions stay
                raise
            self._written(chunks)

    def ready(self) -> bool:
        return self._writing is None or self._writing[0].done()

    def close(self) -> None:
        if self._writing is not None:
            self._writing[0].exception()  # wait; what it did not write is re-delivered
        if self._writer is not None:
            self._writer.shutdown(wait=True)

    def pending(self) -> int:
        return sum(len(p.entries) for p in self._pending.values())

    def _take(self) -> list[Chunk]:
        """Every account's next checkpoint (up to ``max_entries``), out of the pending ones."""
        n = self.max_entries
        chunks: list[Chunk] = []
        for account, p in list(self._pending.items()):
            chunks.append((account, p.entries[:n], p.leaves[:n]))
            del p.entries[:n], p.leaves[:n]
            if not p.entries:
                del self._pending[account]
        return chunks

    def _give_back(self, chunks: list[Chunk]) -> None:
        """Chunks not written pend again, before what was delivered since (spool order)."""
        for account, entries, leaves in chunks:
            p = self._pending[account]
            p.entries[:0] = list(entries)
            p.leaves[:0] = list(leaves)

    def _written(self, chunks: list[Chunk]) -> None:
        for _account, entries, _leaves in chunks:
            self.sealed += len(entries)
            self.checkpoints += 1

    def _settle(self) -> None:
        """Wait for the write ahead; what it failed to write pends again for flush()."""
        if self._writing is None:
            return
        future, chunks = self._writing
        self._writing = None
        error = future.exception()
        if error is None:
            self._written(chunks)
            return
        # flush() writes them again (some may be written: sealed twice, which verify accepts).
        log.warning("integrity: writing checkpoints ahead failed (%s); flush writes them", error)
        self._give_back(chunks)
