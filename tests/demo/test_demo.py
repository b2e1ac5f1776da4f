"""`useraudit demo` seeds a realistic, complete audit trail through a real host app."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from useraudit.catalog import CATALOG
from useraudit.demo import traffic
from useraudit.store import Query, open_store
from useraudit.store.completeness import complete_up_to


def run_demo(home: Path, store_url: str) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "useraudit",
            "demo",
            "--no-serve",
            "--events",
            "250",
            "--home",
            str(home),
            "--store",
            store_url,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"USERAUDIT_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(params=["sqlite", "opensearch"])
def demo_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'demo' / 'audit.db'}"
    os_store = request.getfixturevalue("os_store")
    return f"{os_store.url}/?prefix={os_store.prefix}"


def test_demo_covers_the_catalog_and_the_stories(tmp_path: Path, demo_store_url: str) -> None:
    """Every catalog action per account, a blocked account, impersonation, tokens, IPv6
    and masked secrets are stored."""
    out = run_demo(tmp_path / "demo", demo_store_url)
    assert "shipped / dead-lettered" in out
    store = open_store(demo_store_url)
    store.refresh()
    codes = {a.code for p in ("common", "jaicp") for a in CATALOG.actions(p)}
    for account in traffic.ACCOUNTS:
        docs = list(store.iterate(Query(account=account)))
        assert {d["event.action"] for d in docs} >= codes, f"missing in {account}"
        assert all(d["organization.id"] == account for d in docs)
        assert all("sk_demo_should_never_be_stored" not in repr(d) for d in docs)
        assert any(d.get("source.ip", "").startswith("2001:db8:") for d in docs)
        assert any(d.get("user_agent.os.name") == "iOS" for d in docs)
        assert all("audit.flags" not in d for d in docs), [
            d["audit.flags"] for d in docs if "audit.flags" in d
        ]
    globex = list(store.iterate(Query(account="globex")))
    failed = [
        d
        for d in globex
        if d["event.action"] == "user.signed_in" and d["event.outcome"] == "failure"
    ]
    assert len(failed) >= 6
    (blocked,) = [
        d
        for d in globex
        if d["event.action"] == "user_account.blocked_failed_sign_ins"
        and "in a row" in d.get("audit.comments", "")
    ]
    assert blocked["user.target.name"] == failed[0]["user.name"]
    acme = list(store.iterate(Query(account="acme")))
    impersonated = [d for d in acme if d.get("audit.impersonator.name")]
    assert len(impersonated) >= 3
    assert any(
        d["event.action"] == "token.created" and d.get("audit.token.id") for d in impersonated
    )
    signed_out = [d for d in acme if d["event.action"] == "user.signed_out"]
    assert signed_out and all(d.get("user.name") for d in signed_out)
    store.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_demo_serves_the_ui_and_stops_on_a_signal(tmp_path: Path, sig: int) -> None:
    """The demo prints working sign-ins for the UI it serves, and Ctrl+C (SIGINT) or SIGTERM
    stops every server it started."""
    import re
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "useraudit",
            "demo",
            "--events",
            "80",
            "--port",
            str(port),
            "--home",
            str(tmp_path / "demo"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"USERAUDIT_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert proc.stdout is not None
    output = ""
    try:
        deadline = time.monotonic() + 180
        while "Ctrl+C stops everything" not in output and time.monotonic() < deadline:
            output += proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in output
        assert re.search(r"sign in as admin / \S+", output)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as resp:
            assert resp.status == 200 and b"csrf_token" in resp.read()
        # The demo's indexer publishes the completeness mark the User actions page shows.
        store = open_store(f"sqlite:///{tmp_path / 'demo' / 'audit.db'}")
        try:
            mark, limit = None, time.monotonic() + 20  # it publishes every 5 s
            while mark is None and time.monotonic() < limit:
                mark = complete_up_to(store, "acme")
                time.sleep(0.2)
            assert mark is not None, "the demo publishes no completeness mark"
        finally:
            store.close()
    finally:
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the UI port must be free again"
