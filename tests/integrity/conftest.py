"""Integrity fixtures: a real store of each kind, a signing key, a sealing pipeline."""

from __future__ import annotations

import os
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


@pytest.fixture(params=["opensearch", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "opensearch":
        os_store = request.getfixturevalue("os_store")
        try:
            yield os_store
        finally:
            ledger_for(os_store).drop()
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
def env_store(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("USERAUDIT_STORE", store_url(store))
    os.environ.pop("USERAUDIT_HOME", None)
    return store
