"""`useraudit verify` on both real stores: clean history, then one edit at a time.

Each tamper test changes the store *directly* (SQL on the SQLite file, the
OpenSearch document API), the way someone with write access would, and
checks that verify exits 1 naming the event.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from useraudit.cli import main
from useraudit.indexer.enrich import Enricher
from useraudit.integrity.keys import SigningKey
from useraudit.middleware.recorder import Recorder
from useraudit.store.base import Store
from useraudit.store.ledger import ledger_for

from .conftest import ship

NOW = datetime.now(UTC)


def record_some(spool: Path, n: int = 12, account: str = "acme", days_ago: float = 0) -> list[str]:
    rec = Recorder(spool, durability="sync")
    ids = []
    for i in range(n):
        eid = rec.record(
            "user.signed_in",
            account=account,
            user={"id": f"u{i}", "name": f"user{i}", "email": f"user{i}@example.com"},
            params={"attempt": i, "tags": ["a", "b"]},
            timestamp=NOW - timedelta(days=days_ago, minutes=n - i),
        )
        assert eid
        ids.append(eid)
    rec.close()
    return ids


def verify(*args: str) -> Result:
    return CliRunner().invoke(main, ["verify", "--grace", "0", *args], catch_exceptions=False)


def findings(result: Result, kind: str) -> list[str]:
    return [line.split()[1] for line in result.output.splitlines() if line.startswith(kind + " ")]


def tamper_update(store: Store, event_id: str, comments: str) -> None:
    if hasattr(store, "path"):
        with sqlite3.connect(store.path) as con:
            con.execute(
                "UPDATE events SET audit_comments = ? WHERE event_id = ?", (comments, event_id)
            )
    else:
        doc = store.get([event_id])[event_id]
        index = store.index_for(doc)  # type: ignore[attr-defined]
        store.client.update(  # type: ignore[attr-defined]
            index=index, id=event_id, body={"doc": {"audit": {"comments": comments}}}, refresh=True
        )


def tamper_delete(store: Store, event_id: str) -> None:
    if hasattr(store, "path"):
        with sqlite3.connect(store.path) as con:
            con.execute("DELETE FROM events WHERE event_id = ?", (event_id,))
    else:
        doc = store.get([event_id])[event_id]
        store.client.delete(  # type: ignore[attr-defined]
            index=store.index_for(doc),
            id=event_id,
            refresh=True,  # type: ignore[attr-defined]
        )


@pytest.fixture
def sealed(
    env_store: Store, spool_dir: Path, key: SigningKey, enricher: Enricher
) -> tuple[Store, list[str]]:
    ids = record_some(spool_dir) + record_some(spool_dir, 5, account="globex")
    sealer = ship(spool_dir, env_store, key, enricher)
    assert sealer.sealed == 17
    return env_store, ids


def test_a_sealed_history_verifies_clean(sealed: tuple[Store, list[str]]) -> None:
    result = verify()
    assert result.exit_code == 0, result.output
    assert "verify: clean" in result.output
    summary = json.loads(verify("--json").output.splitlines()[-1])
    assert summary["sealed"] == summary["events"] == 17 and summary["checkpoints"] == 2


def test_one_changed_field_is_reported_modified(sealed: tuple[Store, list[str]]) -> None:
    store, ids = sealed
    tamper_update(store, ids[3], "nothing happened here")
    result = verify()
    assert result.exit_code == 1, result.output
    assert findings(result, "modified") == [ids[3]]
    assert verify("--account", "globex").exit_code == 0


def test_a_deleted_event_is_reported(sealed: tuple[Store, list[str]]) -> None:
    store, ids = sealed
    tamper_delete(store, ids[5])
    result = verify("--account", "acme")
    assert result.exit_code == 1, result.output
    assert findings(result, "deleted") == [ids[5]]


def test_a_forged_event_is_reported_inserted(
    sealed: tuple[Store, list[str]], enricher: Enricher
) -> None:
    store, _ids = sealed
    forged = enricher(
        {
            "event.id": "f" * 32,
            "@timestamp": (NOW - timedelta(minutes=3)).isoformat(),
            "event.action": "user.signed_in",
            "organization.id": "acme",
            "user.id": "u-mallory",
        }
    )
    assert store.write([forged])[0].status == "created"
    store.refresh()
    result = verify()
    assert result.exit_code == 1, result.output
    assert findings(result, "inserted") == ["f" * 32]
    # Within the grace period an unsealed event is only pending.
    pending = CliRunner().invoke(main, ["verify", "--grace", "600"])
    assert pending.exit_code == 0, pending.output
    assert "pending" in pending.output


def test_a_moved_event_is_modified_not_deleted(sealed: tuple[Store, list[str]]) -> None:
    store, ids = sealed
    if hasattr(store, "path"):
        with sqlite3.connect(store.path) as con:
            con.execute(
                "UPDATE events SET organization_id = 'globex' WHERE event_id = ?", (ids[0],)
            )
    else:
        doc = store.get([ids[0]])[ids[0]]
        store.client.update(  # type: ignore[attr-defined]
            index=store.index_for(doc),  # type: ignore[attr-defined]
            id=ids[0],
            body={"doc": {"organization": {"id": "globex"}}},
            refresh=True,
        )
    result = verify()
    assert result.exit_code == 1
    assert ids[0] in findings(result, "modified")
    assert findings(result, "deleted") == []


def test_a_removed_checkpoint_breaks_the_chain(
    sealed: tuple[Store, list[str]], spool_dir: Path, key: SigningKey, enricher: Enricher
) -> None:
    store, ids = sealed
    # A second interval gives acme a second checkpoint; drop the first one.
    later = record_some(spool_dir, 2)
    ship(spool_dir, store, key, enricher)
    ledger = ledger_for(store)
    assert ledger.head("acme") == 2
    if hasattr(store, "path"):
        with sqlite3.connect(store.path) as con:
            con.execute("DELETE FROM ledger WHERE account = 'acme' AND seq = 1")
    else:
        store.client.delete(  # type: ignore[attr-defined]
            index=ledger.index,
            id="acme/1",
            refresh=True,  # type: ignore[attr-defined]
        )
    result = verify("--account", "acme")
    assert result.exit_code == 1
    assert "out-of-sequence  acme/2 (account acme): checkpoint(s) 1 missing" in result.output
    assert not set(later) & set(findings(result, "inserted"))
    # Its events are no longer sealed by anything that can be trusted.
    assert set(findings(result, "inserted")) == set(ids[:12])


def test_a_forged_checkpoint_fails_its_signature(
    sealed: tuple[Store, list[str]], tmp_path: Path
) -> None:
    from useraudit.integrity import checkpoint
    from useraudit.integrity.keys import generate
    from useraudit.integrity.sealer import Chains

    store, ids = sealed
    tamper_delete(store, ids[1])
    mallory = generate(tmp_path / "mallory")
    chains = Chains(ledger_for(store), mallory)
    # A "prune" claiming retention removed it, signed with another key.
    chains.append("acme", kind="prune", before=checkpoint.now_iso())
    result = verify("--account", "acme")
    assert result.exit_code == 1
    assert "signature does not verify" in result.output
    assert findings(result, "deleted") == [ids[1]]


def test_prune_by_retention_is_reported_pruned_and_clean(
    env_store: Store, spool_dir: Path, key: SigningKey, enricher: Enricher
) -> None:
    old = record_some(spool_dir, 4, days_ago=40)
    new = record_some(spool_dir, 3)
    ship(spool_dir, env_store, key, enricher)
    pruned = CliRunner().invoke(main, ["prune", "--older-than", "30"], catch_exceptions=False)
    assert pruned.exit_code == 0, pruned.output
    assert "Deleted 4 events" in pruned.output
    env_store.refresh()
    result = verify("--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert sorted(f["event_id"] for f in lines if f.get("kind") == "pruned") == sorted(old)
    assert lines[-1]["clean"] is True and lines[-1]["events"] == len(new)
    # Deleting a recent event is still a deletion.
    tamper_delete(env_store, new[0])
    again = verify()
    assert again.exit_code == 1
    assert findings(again, "deleted") == [new[0]]


def tamper_drop_checkpoint(store: Store, account: str, seq: int) -> None:
    if hasattr(store, "path"):
        with sqlite3.connect(store.path) as con:
            con.execute("DELETE FROM ledger WHERE account = ? AND seq = ?", (account, seq))
    else:
        store.client.delete(  # type: ignore[attr-defined]
            index=f"{store.prefix}-ledger",  # type: ignore[attr-defined]
            id=f"{account}/{seq}",
            refresh=True,
        )


def test_truncating_the_newest_checkpoints_is_reported_against_heads_kept_elsewhere(
    sealed: tuple[Store, list[str]],
    spool_dir: Path,
    key: SigningKey,
    enricher: Enricher,
    tmp_path: Path,
) -> None:
    store, _ids = sealed
    early = CliRunner().invoke(main, ["integrity", "heads"])
    assert early.exit_code == 0, early.output
    later = record_some(spool_dir, 4)  # acme's checkpoint 2
    ship(spool_dir, store, key, enricher)
    newest = CliRunner().invoke(main, ["integrity", "heads", "--account", "acme"])
    heads = tmp_path / "heads.ndjson"  # forwarded to a sink the store's writers cannot reach
    heads.write_text(early.output + newest.output)
    assert [json.loads(line)["seq"] for line in heads.read_text().splitlines()] == [1, 1, 2]
    assert verify("--heads", str(heads)).exit_code == 0

    # Someone with write access removes acme's newest checkpoint and the events it seals.
    tamper_drop_checkpoint(store, "acme", 2)
    for event_id in later:
        tamper_delete(store, event_id)
    alone = verify()
    assert alone.exit_code == 0, alone.output  # consistent in itself: why heads are kept
    result = verify("--heads", str(heads))
    assert result.exit_code == 1, result.output
    assert sorted(findings(result, "truncated")) == sorted(["acme/2", *later])
    assert "the store's chain ends at checkpoint 1" in result.output
    assert verify("--heads", str(heads), "--account", "globex").exit_code == 0

    # A head that does not verify is never trusted.
    forged = json.loads(newest.output)
    forged["seq"] = 3
    heads.write_text(json.dumps(forged) + "\n")
    untrusted = verify("--heads", str(heads))
    assert untrusted.exit_code == 1 and findings(untrusted, "untrusted-head") == ["acme/3"]
    heads.write_text("not json\n")
    bad = CliRunner().invoke(main, ["verify", "--heads", str(heads)])
    assert bad.exit_code == 1 and "heads line 1 is not JSON" in bad.output
