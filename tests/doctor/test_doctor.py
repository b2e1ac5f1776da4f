"""`useraudit doctor`: every check shown failing and passing, on real spools, a real SQLite
store and the real OpenSearch node."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support import free_port

from useraudit import doctor, spool_watch
from useraudit.indexer.shipper import Indexer
from useraudit.middleware.recorder import Recorder
from useraudit.spool import frame
from useraudit.store.sqlite import SQLiteStore


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("USERAUDIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


def record(spool: Path, n: int = 1, **kw: Any) -> None:
    kw.setdefault("user", "u-1")
    account = kw.pop("account", "acme")
    rec = Recorder(spool, durability="sync", account=account)
    for _ in range(n):
        rec.record("custom_role.created", **kw)
    rec.close()


def ship(spool: Path, url: str) -> None:
    store = SQLiteStore(url)
    with Indexer(spool, store) as ix:
        ix.drain()
    store.close()


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_spool_writable(spool: Path, tmp_path: Path) -> None:
    """A writable spool passes; a spool path under a regular file fails with a fix."""
    assert doctor.spool_writable(spool).ok
    (tmp_path / "a-file").write_text("x")
    bad = doctor.spool_writable(tmp_path / "a-file" / "spool")
    assert not bad.ok and "cannot write to the spool" in bad.found and "mkdir -p" in bad.fix


def test_indexer_reads_this_spool(spool: Path, sqlite_url: str) -> None:
    """No indexer: fails; a running indexer's heartbeat: passes; a stale one: fails."""
    assert not doctor.indexer_reads(spool).ok
    assert "no indexer has ever read it" in doctor.indexer_reads(spool).found
    store = SQLiteStore(sqlite_url)
    stop = threading.Event()
    with Indexer(spool, store) as ix:
        thread = threading.Thread(target=ix.run, args=(stop,))
        thread.start()
        deadline = time.monotonic() + 20
        while spool_watch.read_heartbeat(spool) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        thread.join()
    store.close()
    check = doctor.indexer_reads(spool)
    assert check.ok and sqlite_url in check.found
    beat = json.loads((spool / spool_watch.HEARTBEAT_FILE).read_text())
    beat["at"] -= spool_watch.STALE_AFTER + 1
    (spool / spool_watch.HEARTBEAT_FILE).write_text(json.dumps(beat))
    stale = doctor.indexer_reads(spool)
    assert not stale.ok and "the last read was" in stale.found


def test_no_unread_spools_elsewhere(spool: Path, tmp_path: Path) -> None:
    """Events written to another spool nobody reads: fails naming it; once read: passes."""
    assert doctor.other_spools(spool).ok
    record(tmp_path / "elsewhere")
    check = doctor.other_spools(spool)
    assert not check.ok and str(tmp_path / "elsewhere") in check.found
    spool_watch.write_heartbeat((tmp_path / "elsewhere").resolve())
    assert doctor.other_spools(spool).ok


def test_many_unread_spools_are_counted_and_the_newest_named(spool: Path, tmp_path: Path) -> None:
    """Hundreds of forgotten spools make one readable line: the newest few, then a count."""
    extra = doctor.SPOOLS_NAMED + 3
    for n in range(extra):
        record(tmp_path / f"old-{n}")
        seg = next((tmp_path / f"old-{n}").glob("*.seg"))
        when = time.time() - 3600 * (extra - n)  # old-0 the oldest
        os.utime(seg, (when, when))
    check = doctor.other_spools(spool)
    assert not check.ok and f"{extra} spool(s)" in check.found
    named = [n for n in range(extra) if f"old-{n} " in check.found]
    assert named == list(range(3, extra))  # the five written last
    assert "and 3 more, written longer ago" in check.found


def test_backlog(spool: Path, sqlite_url: str) -> None:
    """Empty: passes; fresh events: pass within max_lag; older than max_lag: fails."""
    assert doctor.backlog(spool, 300).ok
    record(spool, 3)
    fresh = doctor.backlog(spool, 300)
    assert fresh.ok and "bytes wait" in fresh.found
    time.sleep(1.1)
    late = doctor.backlog(spool, 1.0)
    assert not late.ok and "oldest unshipped event has waited" in late.found
    ship(spool, sqlite_url)
    assert doctor.backlog(spool, 1.0).ok


def test_dead_letters(spool: Path, sqlite_url: str) -> None:
    """None: passes; a record the indexer could not decode waits as a dead letter: fails."""
    assert doctor.dead_letters(spool).ok
    spool.joinpath("0-1-a.seg").write_bytes(frame(b"\xff not json"))
    ship(spool, sqlite_url)
    check = doctor.dead_letters(spool)
    assert not check.ok and "1 event(s)" in check.found and "dlq retry" in check.fix


def test_detection_skipped(spool: Path) -> None:
    """Events the running indexer's detection set aside: fails while it reports any."""
    assert doctor.detection_skipped(spool).ok  # no indexer at all: indexer_reads says so
    spool_watch.write_heartbeat(spool, store="x")  # an indexer without detection
    assert doctor.detection_skipped(spool).ok
    spool_watch.write_heartbeat(spool, store="x", detect_set_aside=0)
    assert doctor.detection_skipped(spool).ok
    spool_watch.write_heartbeat(spool, store="x", detect_set_aside=2)
    check = doctor.detection_skipped(spool)
    assert not check.ok and "skipped 2 stored event(s)" in check.found
    assert "detection skips its" in check.fix and "restart the indexer" in check.fix
    beat = json.loads((spool / spool_watch.HEARTBEAT_FILE).read_text())
    beat["at"] -= spool_watch.STALE_AFTER + 5  # that indexer stopped: nothing running skips
    (spool / spool_watch.HEARTBEAT_FILE).write_text(json.dumps(beat))
    assert doctor.detection_skipped(spool).ok


def test_store_reachable_and_schema_sqlite(tmp_path: Path, sqlite_url: str) -> None:
    """An OpenSearch URL nobody answers: unreachable; a SQLite file not created yet: schema
    fails; created: passes; an older file version: fails with the upgrade step."""
    down = by_name(list(doctor.store_checks(f"http://127.0.0.1:{free_port()}")))
    assert not down["store reachable"].ok and "USERAUDIT_STORE" in down["store reachable"].fix
    missing = doctor.schema_current(sqlite_url)
    assert not missing.ok and "does not exist yet" in missing.found
    store = SQLiteStore(sqlite_url)
    store.install()
    store.close()
    checks = by_name(list(doctor.store_checks(sqlite_url)))
    assert checks["store reachable"].ok and checks["schema installed and current"].ok
    with sqlite3.connect(tmp_path / "audit.db") as db:
        db.execute("PRAGMA user_version=6")
    old = doctor.schema_current(sqlite_url)
    assert not old.ok and "file version 6" in old.found and "upgrade" in old.fix


def test_schema_opensearch(opensearch_url: str, os_prefix: str) -> None:
    """On the real node: no template fails; installed passes; an older version fails."""
    from useraudit.store.opensearch import OpenSearchStore

    url = f"{opensearch_url}?prefix={os_prefix}"
    missing = doctor.schema_current(url)
    assert not missing.ok and "not installed" in missing.found
    store = OpenSearchStore(opensearch_url, prefix=os_prefix)
    try:
        store.install()
        assert doctor.schema_current(url).ok
        from useraudit import index_templates

        name = index_templates.template_name(os_prefix)
        body = index_templates.load_golden(os_prefix)
        body["version"] = 0
        store.client.indices.put_index_template(name=name, body=body)
        old = doctor.schema_current(url)
        assert not old.ok and "templates install" in old.fix
        reachable = by_name(list(doctor.store_checks(url)))
        assert reachable["store reachable"].ok
    finally:
        store.uninstall()
        store.close()


def test_events_have_an_account_and_a_user(spool: Path, sqlite_url: str) -> None:
    """Events with account and user pass both; an accountless one and a userless one fail."""
    record(spool, 2)
    ship(spool, sqlite_url)
    checks = by_name(list(doctor.store_checks(sqlite_url)))
    assert checks["events have an account"].ok and checks["events name a user"].ok
    record(spool, 1, account=None)
    record(spool, 1, user=None)
    ship(spool, sqlite_url)
    checks = by_name(list(doctor.store_checks(sqlite_url)))
    assert not checks["events have an account"].ok
    assert "1 event(s)" in checks["events have an account"].found
    assert "account=" in checks["events have an account"].fix
    assert not checks["events name a user"].ok
    assert "acme: 1 of the newest 3" in checks["events name a user"].found


def _flask_app(spool: Path, trusted: int) -> Any:
    from flask import Flask

    from useraudit.middleware.flask import UserAudit

    app = Flask("doctor")

    @app.get("/")
    def index() -> str:
        return "ok"

    rec = Recorder(spool, durability="sync", account="acme")
    UserAudit(app, recorder=rec, trusted_proxies=trusted)
    return app.test_client(), rec


@pytest.mark.parametrize(
    "trusted, headers, ok, says",
    [
        pytest.param(0, {}, True, "consistent", id="direct-and-0"),
        pytest.param(
            0, {"X-Forwarded-For": "6.6.6.6"}, False, "while trusted_proxies=0", id="xff-0"
        ),
        pytest.param(1, {"X-Forwarded-For": "203.0.113.9"}, True, "consistent", id="proxied-1"),
        pytest.param(1, {}, False, "clients reach the app directly", id="direct-but-1"),
        pytest.param(
            2, {"X-Forwarded-For": "203.0.113.9"}, False, "trusted_proxies=2", id="one-of-2"
        ),
    ],
)
def test_trusted_proxies(
    spool: Path, trusted: int, headers: dict, ok: bool, says: str, tmp_path: Path
) -> None:
    """What the requests carried against the setting: the mismatch fails with the fix."""
    assert doctor.trusted_proxies(spool).ok  # no requests seen yet
    client, rec = _flask_app(spool, trusted)
    assert client.get("/", headers=headers).status_code == 200
    rec.close()
    check = doctor.trusted_proxies(spool)
    assert check.ok is ok and says in check.found
    assert ok or "trusted_proxies" in check.fix
    assert not ok or check.found.startswith("1 request looked at so far")


def test_command_exit_code_and_output(spool: Path, sqlite_url: str, home: Path) -> None:
    """`useraudit doctor` exits 1 and prints FAIL with a fix while no indexer reads the spool,
    and 0 once every check passes."""
    record(spool, 2)
    ship(spool, sqlite_url)
    env = {**os.environ, "USERAUDIT_HOME": str(home), "USERAUDIT_SPOOL": str(spool)}
    env["USERAUDIT_STORE"] = sqlite_url

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "useraudit", "doctor"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    failing = run()
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "FAIL  indexer reads this spool" in failing.stdout and "fix: " in failing.stdout
    spool_watch.write_heartbeat(spool, store=sqlite_url)
    passing = run()
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "All checks passed." in passing.stdout and "FAIL" not in passing.stdout
