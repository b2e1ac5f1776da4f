"""Integrity fixtures: a real store of each kind, a signing key, a sealing pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from useraudit.indexer.enrich import Enricher
from useraudit.indexer.shipper import Indexer
from useraudit.integrity.keys import SigningKey, generate
from useraudit.integrity.sealer import Sealer
from useraudit.store.base import Store
from useraudit.store.ledger import ledger_for


@pytest.fixture(scope="session")
def enricher() -> Enricher:
    return Enricher()


@pytest.fixture
def key_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys"
    monkeypatch.setenv("USERAUDIT_KEYS", str(path))
    return path


@pytest.fixture
def key(key_dir: Path) -> SigningKey:
    return generate(key_dir)


def drop_side_indices(store: Store) -> None:
    """The ledger and settings indices beside the events (os_store removes only those)."""
    from useraudit.store.account_settings import AccountSettings

    ledger_for(store).drop()
    AccountSettings(store).drop()


@pytest.fixture(params=["opensearch", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "opensearch":
        os_store = request.getfixturevalue("os_store")
        try:
            yield os_store
        finally:
            drop_side_indices(os_store)
    else:
        from useraudit.store.sqlite import SQLiteStore

        sqlite_store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
        sqlite_store.install()
        try:
            yield sqlite_store
        finally:
            sqlite_store.close()


def store_url(store: Store) -> str:
    prefix = getattr(store, "prefix", None)
    return f"{store.url}?prefix={prefix}" if prefix else store.url


def ship(spool: Path, store: Store, key: SigningKey, enricher: Enricher) -> Sealer:
    """Run the indexer with the sealer over everything in ``spool``."""
    sealer = Sealer(store, key)
    with Indexer(spool, store, enricher=enricher, stages=[sealer]) as ix:
        ix.drain()
    store.refresh()
    return sealer


@pytest.fixture
def env_store(store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Store:
    monkeypatch.setenv("USERAUDIT_STORE", store_url(store))
    monkeypatch.setenv("USERAUDIT_HOME", str(tmp_path / "home"))
    return store
