"""`useraudit migrate` copies the signed checkpoints: verify is clean on the target."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from useraudit.cli import main
from useraudit.indexer.enrich import Enricher
from useraudit.integrity.keys import SigningKey
from useraudit.store.base import Store
from useraudit.store.ledger import ledger_for
from useraudit.store.sqlite import SQLiteStore

from .conftest import drop_side_indices, ship, store_url
from .test_verify import record_some


def test_migrating_sqlite_to_opensearch_keeps_the_history_verifiable(
    os_store: Store, spool_dir: Path, key: SigningKey, enricher: Enricher, tmp_path: Path
) -> None:
    source = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    source.install()
    try:
        record_some(spool_dir, 7)
        record_some(spool_dir, 3, account="globex")
        ship(spool_dir, source, key, enricher)
        record_some(spool_dir, 2)  # acme's second checkpoint
        ship(spool_dir, source, key, enricher)
        runner = CliRunner()
        assert runner.invoke(main, ["verify", "--store", source.url]).exit_code == 0
        target = store_url(os_store)
        try:
            moved = runner.invoke(main, ["migrate", "--from", source.url, "--to", target])
            assert moved.exit_code == 0, moved.output
            assert "checkpoints: copied 3, already there 0" in moved.output
            assert [d["seq"] for d in ledger_for(os_store).iterate("acme")] == [1, 2]
            checked = runner.invoke(main, ["verify", "--store", target, "--json"])
            assert checked.exit_code == 0, checked.output
            assert '"checkpoints": 3' in checked.output and '"sealed": 12' in checked.output
            again = runner.invoke(main, ["migrate", "--from", source.url, "--to", target])
            assert again.exit_code == 0, again.output
            assert "checkpoints: copied 0, already there 3" in again.output

            # A target with a history of its own is not overwritten, and says so.
            forged = dict(next(ledger_for(source).iterate("globex")))
            ledger_for(source).drop()
            forged["time"] = "2000-01-01T00:00:00.000Z"
            ledger_for(source).create(forged)
            clash = runner.invoke(main, ["migrate", "--from", source.url, "--to", target])
            assert clash.exit_code == 1 and "globex/1" in clash.output
        finally:
            drop_side_indices(os_store)
    finally:
        source.close()
