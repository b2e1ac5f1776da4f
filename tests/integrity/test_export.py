"""Proof-carrying exports: made from either store, checked offline with the public key only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from useraudit.cli import main
from useraudit.indexer.enrich import Enricher
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
    events = [o for o in lines(path) if "event" in o]
    assert sorted(e["event"]["id"] for e in events) == sorted(ids)
    assert all(e["organization"]["id"] == "acme" for e in events)
    result = verify_export(path, public)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified: 12 events" in result.stdout


def test_a_changed_field_fails_naming_the_line(exported: tuple[Path, Path, list[str]]) -> None:
    path, public, _ids = exported
    objs = lines(path)
    objs[4]["user"]["id"] = "someone-else"
    write(path, objs)
    result = verify_export(path, public)
    assert result.returncode == 1
    assert result.stdout.startswith(f"line 5: event {objs[4]['event']['id']}: does not match")


def test_inserted_and_swapped_lines_fail(exported: tuple[Path, Path, list[str]]) -> None:
    path, public, _ids = exported
    objs = lines(path)
    objs[1], objs[2] = objs[2], objs[1]
    forged = {**objs[0], "event": {**objs[0]["event"], "id": "f" * 32}}
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


def test_the_ui_ndjson_export_carries_the_same_proof(
    exported: tuple[Path, Path, list[str]], env_store: Store, tmp_path: Path
) -> None:
    """``actions.ndjson?proof=1`` of the admin UI verifies offline like the CLI's file."""
    from support import CSRF_RE

    from useraudit.webapp.app import create_app
    from useraudit.webapp.users import UserStore

    _path, public, ids = exported
    users = UserStore(tmp_path / "webusers.db")
    users.add("alice", "correct horse battery staple")
    users.grant("alice", "acme", "USER_ADMIN")
    client = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SESSION_COOKIE_SECURE": False,
            "USERAUDIT_STORE": env_store,
            "USERAUDIT_USERS": users,
        }
    ).test_client()
    token = CSRF_RE.search(client.get("/login").get_data(as_text=True))
    assert token
    client.post(
        "/login",
        data={
            "username": "alice",
            "password": "correct horse battery staple",
            "csrf_token": token.group(1),
        },
    )
    plain = client.get("/a/acme/actions.ndjson?period=30d").get_data(as_text=True)
    proven = client.get("/a/acme/actions.ndjson?period=30d&proof=1").get_data(as_text=True)
    assert proven.startswith(plain)  # the same lines, then the proof
    ui_file = tmp_path / "ui.ndjson"
    ui_file.write_text(proven)
    result = verify_export(ui_file, public)
    assert result.returncode == 0, result.stdout
    assert f"verified: {len(ids)} events" in result.stdout
    assert verify_export(_path.parent / "missing", public).returncode != 0
