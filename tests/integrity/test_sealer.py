"""The sealer's shortcuts keep what it seals equal to what is stored, on both real stores.

Entries are worked out on the indexer's read-ahead thread (``prepare``) and
every account's checkpoint of a flush goes in one ledger write; these tests
change the document after it was prepared, send one event id twice in a
batch, and let two writers race for the same checkpoint numbers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson
import pytest

from useraudit.indexer.enrich import Enricher
from useraudit.indexer.shipper import Indexer
from useraudit.integrity import checkpoint
from useraudit.integrity.canonical import event_hash
from useraudit.integrity.keys import Keyring, SigningKey
from useraudit.integrity.sealer import Sealer
from useraudit.integrity.verify import Verifier
from useraudit.spool import SpoolWriter
from useraudit.stages import Stage
from useraudit.store.base import Store, StoreUnavailable
from useraudit.store.ledger import Ledger, ledger_for

from .test_verify import record_some


class AddsComments(Stage):
    """A stage that changes a hashed field in prepare()."""

    name = "adds-comments"

    def prepare(self, doc: dict) -> None:
        doc["audit.comments"] = "changed before the sealer prepared"


def clean(store: Store, key: SigningKey) -> tuple[bool, list[str]]:
    store.refresh()
    report = Verifier(store, Keyring({key.id: key.public}), grace=0).run()
    return report.clean, [f.line() for f in report.findings]


def test_a_stage_preparing_after_the_sealer_is_refused(
    store: Store, spool_dir: Path, key: SigningKey, enricher: Enricher
) -> None:
    """The sealer hashes in prepare(): a field added after it would be sealed wrong."""
    with pytest.raises(ValueError, match="'adds-comments' come after it"):
        Indexer(spool_dir, store, enricher=enricher, stages=[Sealer(store, key), AddsComments()])
    ids = record_some(spool_dir, 6)
    sealer = Sealer(store, key)
    with Indexer(spool_dir, store, enricher=enricher, stages=[AddsComments(), sealer]) as ix:
        ix.drain()
    assert sealer.sealed == 6
    ok, findings = clean(store, key)
    assert ok, findings
    stored = store.get(ids)
    assert {d["audit.comments"] for d in stored.values()} == {"changed before the sealer prepared"}
    sealed = {e[0]: e[4] for cp in ledger_for(store).iterate("acme") for e in cp["leaves"]}
    assert sealed == {eid: event_hash(doc) for eid, doc in stored.items()}


def test_one_event_id_twice_in_a_batch_seals_the_stored_one(
    store: Store, spool_dir: Path, key: SigningKey, enricher: Enricher
) -> None:
    writer = SpoolWriter(spool_dir, durability="sync")
    first = {
        "event.id": "0123456789abcdef0123456789abcdef",
        "@timestamp": "2026-01-01T00:00:00.000Z",
        "event.action": "user.signed_in",
        "organization.id": "acme",
    }
    for comments in ("the first", "the second, answered duplicate"):
        writer.append(orjson.dumps({**first, "audit.comments": comments}))
    writer.close()
    sealer = Sealer(store, key)
    with Indexer(spool_dir, store, enricher=enricher, stages=[sealer]) as ix:
        stats = ix.drain()
    assert stats.shipped == 1 and stats.duplicates == 1
    ok, findings = clean(store, key)
    assert ok, findings
    assert store.get([first["event.id"]])[first["event.id"]]["audit.comments"] == "the first"


def test_writers_racing_for_checkpoint_numbers_keep_one_chain_per_account(
    store: Store, key: SigningKey
) -> None:
    """Each writer's flush covers several accounts; the other took some numbers meanwhile."""
    mine, theirs = Sealer(store, key), Sealer(store, key)

    def entries(tag: str, n: int) -> list[checkpoint.Entry]:
        return [[f"{tag}-{i}", "2026-01-01T00:00:00.000Z", None, None, "00" * 32] for i in range(n)]

    mine.chains.append("acme", entries("m1", 1))  # mine now believes acme's head is 1
    theirs.chains.append("acme", entries("t1", 3))
    theirs.chains.append("acme", entries("t2", 1))
    chunks = [(a, entries(a, 2)) for a in ("acme", "globex", "initech")]
    mine.chains.append_many([(a, e, [checkpoint.entry_leaf(x) for x in e]) for a, e in chunks])
    ledger = ledger_for(store)
    assert [cp["seq"] for cp in ledger.iterate("acme")] == [1, 2, 3, 4]
    assert [cp["leaves"][0][0] for cp in ledger.iterate("acme")] == [
        "m1-0",
        "t1-0",
        "t2-0",
        "acme-0",
    ]
    assert ledger.head("globex") == 1 and ledger.head("initech") == 1
    chain = list(ledger.iterate("acme"))
    for before, after in zip(chain, chain[1:], strict=False):
        assert after["prev"] == checkpoint.checkpoint_hash(before)
    assert all(checkpoint.check(cp, Keyring({key.id: key.public})) is None for cp in chain)


def test_events_prepared_but_never_delivered_are_forgotten_past_a_bound(
    store: Store, key: SigningKey
) -> None:
    sealer = Sealer(store, key)
    sealer.max_prepared = 100
    for i in range(250):
        sealer.prepare({"event.id": f"refused-{i}", "organization.id": "acme"})
    assert len(sealer._prepared) == 100
    kept = [doc["event.id"] for doc, *_ in sealer._prepared.values()]
    assert kept == [f"refused-{i}" for i in range(150, 250)]  # the oldest went first


class FailsFirstWrites(Ledger):
    """The real ledger of the store, refusing its first ``failures`` checkpoint writes.

    A fault put in front of the real store (which stays real behind it): the
    ledger cannot be made to fail on cue otherwise.
    """

    def __init__(self, real: Ledger, failures: int) -> None:
        self.real = real
        self.failures = failures

    def create(self, doc: dict) -> bool:
        return self.create_many([doc])[0]

    def create_many(self, docs: Sequence[dict]) -> list[bool]:
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailable("the ledger is down (injected)")
        return self.real.create_many(docs)

    def get(self, account: str, seq: int) -> dict | None:
        return self.real.get(account, seq)

    def head(self, account: str) -> int:
        return self.real.head(account)

    def iterate(self, account: str | None = None) -> Iterator[dict]:
        return self.real.iterate(account)

    def accounts(self) -> list[str]:
        return self.real.accounts()

    def drop(self) -> None:
        self.real.drop()


def wait_ready(sealer: Sealer) -> None:
    deadline = time.monotonic() + 30
    while not sealer.ready():
        assert time.monotonic() < deadline, "the checkpoint write ahead never finished"
        time.sleep(0.01)


def test_checkpoints_are_written_ahead_of_flush_under_load(
    store: Store, spool_dir: Path, key: SigningKey, enricher: Enricher
) -> None:
    """Past ``write_ahead`` entries delivered() starts the checkpoints; flush() waits for them."""
    record_some(spool_dir, 30)
    sealer = Sealer(store, key)
    sealer.write_ahead = 10
    with Indexer(spool_dir, store, enricher=enricher, batch_records=12, stages=[sealer]) as ix:
        prepared = ix._prepare()
        ix._ship(prepared)  # 12 delivered: written ahead, no flush called yet
        wait_ready(sealer)
        ledger = ledger_for(store)
        assert ledger.head("acme") == 1 and sealer.pending() == 0
        assert len(ledger.get("acme", 1)["leaves"]) == 12  # type: ignore[index]
        ix.drain()
    assert sealer.sealed == 30
    ok, findings = clean(store, key)
    assert ok, findings


def test_a_failed_write_ahead_is_written_by_flush_before_positions_move(
    store: Store, spool_dir: Path, key: SigningKey, enricher: Enricher
) -> None:
    ids = record_some(spool_dir, 12)
    sealer = Sealer(store, key)
    sealer.write_ahead = 5
    sealer.chains.ledger = FailsFirstWrites(sealer.chains.ledger, failures=2)
    with Indexer(spool_dir, store, enricher=enricher, batch_records=6, stages=[sealer]) as ix:
        ix._ship(ix._prepare())  # written ahead: refused (the first failure)
        wait_ready(sealer)
        # The commit's flush meets the second failure: the positions must stay.
        ix.commit()
        assert sealer.pending() == 6 and sealer.sealed == 0
        assert ix._uncommitted.cursor, "positions moved past unsealed events"
        ix.drain()  # the store is back: everything is sealed, in spool order
    assert sealer.sealed == 12
    sealed = [e[0] for cp in ledger_for(store).iterate("acme") for e in cp["leaves"]]
    assert sealed == ids
    ok, findings = clean(store, key)
    assert ok, findings
