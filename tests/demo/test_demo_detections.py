"""The demo's normal traffic raises no high-severity alert; its one attack does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from useraudit.demo import traffic
from useraudit.store import open_store
from useraudit.store.alerts import detection_store


def run_demo(home: Path, store_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "useraudit", "demo", "--no-serve", "--events", "250"]
        + ["--home", str(home), "--store", store_url],
        capture_output=True,
        text=True,
        timeout=300,
        env={"USERAUDIT_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_only_the_demo_attack_is_high_severity(tmp_path: Path) -> None:
    """High alerts: the attack's spraying and takeover; the rest stays low or medium."""
    url = f"sqlite:///{tmp_path / 'demo' / 'audit.db'}"
    run_demo(tmp_path / "demo", url)
    store = open_store(url)
    alerts = detection_store(store)
    try:
        high = sorted(
            (a.account, a.rule, a.subject)
            for account in ("acme", "globex")
            for a in alerts.list_alerts(account)
            if a.severity == "high"
        )
        assert high == [
            ("acme", "password_spraying", "185.220.101.0/24"),
            ("acme", "takeover", "u-110"),
        ]
        takeover = next(a for a in alerts.list_alerts("acme") if a.rule == "takeover")
        assert takeover.count == 4  # the sprayed attempt, two guesses, the success
        # Blocks: only the scripted lockout in each account, none from random traffic.
        people = traffic.directory()
        members = {
            acc: [u for u, p in people.items() if acc in p["accounts"]] for acc in traffic.ACCOUNTS
        }
        locked_out = sorted(
            (acc, people[next(u for u in members[acc][2:] if not people[u]["admin"])]["id"])
            for acc in traffic.ACCOUNTS
        )
        blocked = sorted(
            (a.account, a.subject)
            for account in traffic.ACCOUNTS
            for a in alerts.list_alerts(account)
            if a.rule == "account_blocked"
        )
        assert blocked == locked_out
    finally:
        alerts.close()
        store.close()
