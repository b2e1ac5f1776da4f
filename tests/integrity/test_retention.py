"""Retention per account and legal holds, on both real stores, with the ledger watching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from useraudit.cli import main
from useraudit.indexer.enrich import Enricher
from useraudit.integrity.keys import SigningKey
from useraudit.store.base import Store
from useraudit.store.ledger import ledger_for
from useraudit.store.query import Query

from .conftest import ship
from .test_verify import record_some, verify


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def stored(store: Store, account: str, ids: list[str]) -> set[str]:
    store.refresh()
    return set(store.get(ids)) & set(ids)


def test_each_account_keeps_its_own_retention(
    env_store: Store, spool_dir: Path, key: SigningKey, enricher: Enricher
) -> None:
    acme = {d: record_some(spool_dir, 2, "acme", days_ago=d) for d in (5, 25, 90)}
    globex = {d: record_some(spool_dir, 2, "globex", days_ago=d) for d in (5, 25, 90)}
    ship(spool_dir, env_store, key, enricher)
    assert cli("retention", "default", "20").exit_code == 0
    assert cli("retention", "set", "acme", "60").exit_code == 0
    result = cli("prune")
    assert result.exit_code == 0, result.output
    assert "acme: deleted 2 events" in result.output
    assert "globex: deleted 4 events" in result.output
    assert stored(env_store, "acme", sum(acme.values(), [])) == set(acme[5] + acme[25])
    assert stored(env_store, "globex", sum(globex.values(), [])) == set(globex[5])
    check = verify()
    assert check.exit_code == 0, check.output
    assert "pruned           2 event(s) of account acme" in check.output
    assert "pruned           4 event(s) of account globex" in check.output
    # The change of acme's retention is in acme's own audit trail, sealed.
    changes = list(env_store.iterate(Query("acme", actions=("audit_log.retention_changed",))))
    assert len(changes) == 1
    assert str(changes[0]["audit.params"]["to"]) == "60"


def test_a_legal_hold_stops_every_deletion_until_lifted(
    env_store: Store, spool_dir: Path, key: SigningKey, enricher: Enricher
) -> None:
    acme = record_some(spool_dir, 3, "acme", days_ago=40)
    globex = record_some(spool_dir, 3, "globex", days_ago=40)
    ship(spool_dir, env_store, key, enricher)
    assert cli("retention", "hold", "acme", "--reason", "case 2026-17").exit_code == 0
    assert cli("retention", "set", "acme", "1").exit_code == 0
    result = cli("prune", "--older-than", "10")
    assert result.exit_code == 0, result.output
    assert "acme: under legal hold, nothing deleted" in result.output
    assert stored(env_store, "acme", acme) == set(acme)
    assert stored(env_store, "globex", globex) == set()
    assert "acme: under legal hold" in cli("prune").output
    assert stored(env_store, "acme", acme) == set(acme)
    shown = cli("retention", "show").output
    assert '"reason": "case 2026-17"' in shown
    assert cli("retention", "release", "acme").exit_code == 0
    assert cli("retention", "release", "acme").exit_code == 1  # nothing left to lift
    assert cli("prune").exit_code == 0
    assert stored(env_store, "acme", acme) == set()
    trail = [
        d["event.action"]
        for d in env_store.iterate(Query("acme", actions=()))
        if d["event.action"].startswith("audit_log.")
    ]
    assert sorted(trail) == [
        "audit_log.legal_hold_lifted",
        "audit_log.legal_hold_placed",
        "audit_log.retention_changed",
    ]
    check = verify()
    assert check.exit_code == 0, check.output


def test_retention_apply_refuses_to_drop_indices_under_a_legal_hold(
    os_store: Store,
    monkeypatch: pytest.MonkeyPatch,
    enricher: Enricher,
    request: pytest.FixtureRequest,
) -> None:
    from .conftest import drop_side_indices, store_url

    request.addfinalizer(lambda: drop_side_indices(os_store))
    monkeypatch.setenv("USERAUDIT_STORE", store_url(os_store))
    old = enricher(
        {
            "event.id": "old-1",
            "@timestamp": "2024-01-05T10:00:00Z",
            "event.action": "user.signed_in",
            "organization.id": "acme",
        }
    )
    assert os_store.write([old])[0].status == "created"
    assert cli("retention", "hold", "acme", "--reason", "case 9").exit_code == 0
    refused = CliRunner().invoke(
        main, ["retention", "apply", "--warm-after", "0", "--delete-after", "30"]
    )
    assert refused.exit_code == 1
    assert "legal hold on acme" in refused.output
    os_store.refresh()
    assert os_store.get(["old-1"])  # still there


def test_retention_apply_signs_the_cutoff_so_verify_reports_pruned(
    env_store: Store,
    spool_dir: Path,
    key: SigningKey,
    enricher: Enricher,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """OpenSearch drops whole monthly indices, SQLite deletes rows: both sign first."""
    old = record_some(spool_dir, 3, "acme", days_ago=400) + record_some(
        spool_dir, 2, "globex", days_ago=400
    )
    new = record_some(spool_dir, 2, "acme") + record_some(spool_dir, 2, "globex")
    ship(spool_dir, env_store, key, enricher)
    args = ["retention", "apply", "--warm-after", "0", "--delete-after", "30"]
    # Without the key the deletion cannot be signed: refused, nothing deleted.
    monkeypatch.setenv("USERAUDIT_KEYS", str(tmp_path / "no-keys-here"))
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1, refused.output
    assert "no signing key was found" in refused.output
    assert stored(env_store, "acme", old) == set(old)
    monkeypatch.setenv("USERAUDIT_KEYS", str(tmp_path / "keys"))
    applied = cli(*args)
    assert applied.exit_code == 0, applied.output
    assert stored(env_store, "acme", old + new) == set(new)
    check = verify("--json")
    assert check.exit_code == 0, check.output
    lines = [json.loads(line) for line in check.output.splitlines()]
    assert sorted(f["event_id"] for f in lines if f.get("kind") == "pruned") == sorted(old)
    assert lines[-1]["clean"] is True and lines[-1]["events"] == len(new)
    prunes = [cp for cp in ledger_for(env_store).iterate() if cp["kind"] == "prune"]
    assert sorted(cp["account"] for cp in prunes) == ["acme", "globex"]
