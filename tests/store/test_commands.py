"""``useraudit retention``, ``prune`` and ``migrate`` on real stores (SQLite
files, the OpenSearch node)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from useraudit.cli import main
from useraudit.store.base import Store
from useraudit.store.opensearch import OpenSearchStore
from useraudit.store.query import Query
from useraudit.store.sqlite import SQLiteStore

from .conftest import ACCOUNT, DATASET, OTHER, mirror, write_all

NOW = datetime.now(UTC)


def days_since(ts: str) -> float:
    return (NOW - datetime.fromisoformat(ts.replace("Z", "+00:00"))).total_seconds() / 86400


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def sqlite_seeded(tmp_path: Path, enricher) -> SQLiteStore:  # noqa: ANN001
    store = SQLiteStore(f"sqlite:///{tmp_path / 'source.db'}")
    write_all(store, [enricher(e) for e in DATASET + mirror(DATASET)])
    return store


def test_prune_sqlite_in_batches(sqlite_seeded: SQLiteStore) -> None:
    """prune deletes exactly the events older than the cutoff, reports the count,
    and keeps the rest searchable."""
    # Halfway between a05 (2026-01-09) and a06 (2026-01-10).
    days = (days_since("2026-01-09T09:00:00Z") + days_since("2026-01-10T09:00:00Z")) / 2
    code, out = run(
        "prune", "--older-than", f"{days:.4f}", "--store", sqlite_seeded.url, "--batch", "3"
    )
    assert code == 0, out
    assert "Deleted 10 events" in out
    assert sqlite_seeded.count(Query(ACCOUNT)) == len(DATASET) - 5
    assert sqlite_seeded.count(Query(OTHER, text="token")) == 1


def test_prune_opensearch(
    os_store: OpenSearchStore, os_prefix: str, opensearch_url: str, enricher
) -> None:  # noqa: ANN001
    """prune works on OpenSearch too (one server-side delete-by-query)."""
    write_all(os_store, [enricher(e) for e in DATASET + mirror(DATASET)])
    days = (days_since("2026-01-09T09:00:00Z") + days_since("2026-01-10T09:00:00Z")) / 2
    code, out = run(
        "prune", "--older-than", f"{days:.4f}", "--store", f"{opensearch_url}?prefix={os_prefix}"
    )
    assert code == 0, out
    assert "Deleted 10 events" in out
    os_store.refresh()
    assert os_store.count(Query(ACCOUNT)) == len(DATASET) - 5


def test_prune_reports_a_broken_store_cleanly(tmp_path: Path) -> None:
    """A damaged database file is a one-line error naming the file, not a traceback."""
    bad = tmp_path / "broken.db"
    bad.write_bytes(b"this is not a database" * 500)
    code, out = run("prune", "--older-than", "30", "--store", f"sqlite:///{bad}")
    assert code == 1
    assert str(bad) in out and "Traceback" not in out


def _same_documents(a: Store, b: Store) -> None:
    for account in (ACCOUNT, OTHER):
        docs_a = list(a.iterate(Query(account)))
        docs_b = list(b.iterate(Query(account)))
        assert docs_a == docs_b


def test_migrate_sqlite_to_opensearch_and_back(
    sqlite_seeded: SQLiteStore,
    os_store: OpenSearchStore,
    os_prefix: str,
    opensearch_url: str,
    tmp_path: Path,
) -> None:
    """migrate copies every account SQLite → OpenSearch → SQLite with identical
    documents and verified counts."""
    os_url = f"{opensearch_url}?prefix={os_prefix}"
    code, out = run("migrate", "--from", sqlite_seeded.url, "--to", os_url, "--batch", "4")
    assert code == 0, out
    assert f"created {2 * len(DATASET)}, already there 0" in out
    assert f"{ACCOUNT}: source {len(DATASET)}, target {len(DATASET)}" in out
    assert "verified" in out
    os_store.refresh()
    _same_documents(sqlite_seeded, os_store)

    back = f"sqlite:///{tmp_path / 'back.db'}"
    code, out = run("migrate", "--from", os_url, "--to", back)
    assert code == 0, out
    assert f"created {2 * len(DATASET)}" in out
    with SQLiteStore(back) as copy:
        _same_documents(os_store, copy)


def test_migrate_resumes(sqlite_seeded: SQLiteStore, tmp_path: Path) -> None:
    """Re-running an interrupted migration copies only what is missing and still verifies."""
    target_url = f"sqlite:///{tmp_path / 'target.db'}"
    with SQLiteStore(target_url) as target:
        # As if a first run stopped after five of acme's events.
        target.write(list(sqlite_seeded.iterate(Query(ACCOUNT)))[:5])
    code, out = run("migrate", "--from", sqlite_seeded.url, "--to", target_url, "--batch", "3")
    assert code == 0, out
    assert f"created {2 * len(DATASET) - 5}, already there 5" in out
    code, out = run("migrate", "--from", sqlite_seeded.url, "--to", target_url)
    assert code == 0, out
    assert f"created 0, already there {2 * len(DATASET)}" in out


def test_migrate_one_account(sqlite_seeded: SQLiteStore, tmp_path: Path) -> None:
    """--account limits the copy to the accounts named."""
    target_url = f"sqlite:///{tmp_path / 'one.db'}"
    code, out = run("migrate", "--from", sqlite_seeded.url, "--to", target_url, "--account", OTHER)
    assert code == 0, out
    with SQLiteStore(target_url) as target:
        assert target.accounts() == [OTHER]


def test_migrate_refuses_same_store(sqlite_seeded: SQLiteStore) -> None:
    """Copying a store onto itself is refused."""
    code, out = run("migrate", "--from", sqlite_seeded.url, "--to", sqlite_seeded.url)
    assert code == 1 and "same store" in out


def test_retention_apply_on_sqlite_deletes_past_delete_after(sqlite_seeded: SQLiteStore) -> None:
    """`retention apply` is one command for both stores: on SQLite it deletes what
    --delete-after has expired (after a dry run that only counts)."""
    # A whole number of days whose cutoff falls between a05 (Jan 9) and a06 (Jan 10).
    delete_after = math.ceil(days_since("2026-01-10T09:00:00Z"))
    args = ["retention", "apply", "--store", sqlite_seeded.url, "--delete-after", str(delete_after)]
    code, out = run(*args, "--dry-run")
    assert code == 0, out
    assert "would delete 10 events" in out
    assert sqlite_seeded.count(Query(ACCOUNT)) == len(DATASET)
    code, out = run(*args, "--batch", "3")
    assert code == 0, out
    assert "Deleted 10 events" in out
    assert sqlite_seeded.count(Query(ACCOUNT)) == len(DATASET) - 5


def test_retention_has_one_set_of_defaults() -> None:
    """`templates install` (ISM) and `retention apply` offer the same options and defaults,
    the ones in useraudit.config."""
    from useraudit import config
    from useraudit.index_templates.commands import install
    from useraudit.store.retention import DEFAULT
    from useraudit.store_commands import apply

    def defaults(command: click.Command) -> dict[str, object]:
        wanted = ("warm_after", "delete_after")
        return {p.name: p.default for p in command.params if p.name in wanted}

    expected = {
        "warm_after": config.DEFAULT_WARM_AFTER_DAYS,
        "delete_after": config.DEFAULT_DELETE_AFTER_DAYS,
    }
    assert defaults(install) == defaults(apply) == expected
    assert (DEFAULT.warm_after, DEFAULT.delete_after) == tuple(expected.values())


def test_retention_refuses_warm_after_not_before_delete_after(sqlite_seeded: SQLiteStore) -> None:
    """An impossible policy is a one-line error, and nothing is deleted."""
    code, out = run(
        "retention",
        "apply",
        "--store",
        sqlite_seeded.url,
        "--warm-after",
        "400",
        "--delete-after",
        "365",
    )
    assert code == 1
    assert "warm_after must be shorter than delete_after" in out
    assert sqlite_seeded.count(Query(ACCOUNT)) == len(DATASET)
