"""Proof-carrying exports: made from either store, checked offline with the public key only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from useraudit.indexer.enrich import Enricher

from useraudit.cli import main
from useraudit.integrity.keys import SigningKey, generate
from useraudit.store.base import Store

from .conftest import ship
from .test_verify import record_some


@pytest.fixture
def exported(
    env_store: Store,
    spool_dir: Path,
    key: SigningKey,
    key_dir: Path,
    enricher: Enricher,
    tmp_path: Path,
) -> tuple[Path, Path, list[str]]:
    ids = record_some(spool_dir, 9) + record_some(spool_dir, 4, account="globex")
    ship(spool_dir, env_store, key, enricher)
    more = record_some(spool_dir, 3)  # a second checkpoint for acme
    ship(spool_dir, env_store, key, enricher)
    out = tmp_path / "acme.ndjson"
    result = CliRunner().invoke(
        main, ["integrity", "export", "--account", "acme", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "exported 12 events, 12 with proof, 2 checkpoints" in result.output
    public = tmp_path / "published.pem"
    keyring = CliRunner().invoke(main, ["integrity", "public-key"])
    public.write_text(keyring.output)
    return out, public, ids[:9] + more


def verify_export(path: Path, public: Path) -> subprocess.CompletedProcess[str]:
    """Run as a separate process with no store configured: offline."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "useraudit",
            "verify-export",
            str(path),
            "--public-key",
            str(public),
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "USERAUDIT_HOME": str(path.parent / "nowhere")},
    )


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write(path: Path, objs: list[dict]) -> None:
    path.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs))


def test_an_untouched_export_verifies_offline(exported: tuple[Path, Path, list[str]]) -> None:
    path, public, ids = exported
    events = [o for o in lines(path) if "event.id" in o]
    assert sorted(e["event.id"] for e in events) == sorted(ids)
    assert all(e["organization.id"] == "acme" for e in events)
    result = verify_export(path, public)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified: 12 events" in result.stdout


def test_a_changed_field_fails_naming_the_line(exported: tuple[Path, Path, list[str]]) -> None:
    path, public, _ids = exported
    objs = lines(path)
    objs[4]["user.id"] = "someone-else"
    write(path, objs)
    result = verify_export(path, public)
    assert result.returncode == 1
    assert result.stdout.startswith(f"line 5: event {objs[4]['event.id']}: does not match")


def test_inserted_and_swapped_lines_fail(exported: tuple[Path, Path, list[str]]) -> None:
    path, public, _ids = exported
    objs = lines(path)
    objs[1], objs[2] = objs[2], objs[1]
    forged = {**objs[0], "event.id": "f" * 32}
    objs.insert(11, forged)
    write(path, objs)
    out = verify_export(path, public).stdout
    assert "line 2: event" in out and "line 3: event" in out
    assert f"line 12: event {'f' * 32}" in out


def test_a_checkpoint_signed_by_another_key_fails(
    exported: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    path, _public, _ids = exported
    other = tmp_path / "other.pem"
    from useraudit.integrity.keys import public_pem

    other.write_bytes(public_pem(generate(tmp_path / "other").public))
    result = verify_export(path, other)
    assert result.returncode == 1
    assert "signature does not verify" in result.stdout


def test_rotation_keeps_old_exports_verifiable(
    exported: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    path, _public, _ids = exported
    assert CliRunner().invoke(main, ["integrity", "rotate"]).exit_code == 0
    keyring = tmp_path / "keyring.pem"
    keyring.write_text(CliRunner().invoke(main, ["integrity", "public-key"]).output)
    assert keyring.read_text().count("BEGIN PUBLIC KEY") == 2
    assert verify_export(path, keyring).returncode == 0
