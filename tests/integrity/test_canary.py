"""Canary events measure capture-to-searchable latency through a running indexer."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from click.testing import CliRunner

from useraudit.canary import measure, percentile
from useraudit.cli import main
from useraudit.indexer.enrich import Enricher
from useraudit.indexer.shipper import Indexer
from useraudit.store.base import Store

from .conftest import store_url


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 50) is None
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0


def test_canaries_are_timed_until_a_search_finds_them(
    store: Store, spool_dir: Path, enricher: Enricher
) -> None:
    stop = threading.Event()
    indexer = Indexer(spool_dir, store, enricher=enricher)
    runner = threading.Thread(target=indexer.run, args=(stop,), kwargs={"idle": 0.05})
    runner.start()
    try:
        report = measure(spool_dir, store, count=3, interval=0.0, timeout=30)
        assert report.sent == report.found == 3
        assert report.p50_ms is not None and report.p99_ms is not None
        assert 0 < report.p50_ms <= report.p99_ms < 30_000
        result = CliRunner().invoke(
            main,
            ["canary", "--spool", str(spool_dir), "--store", store_url(store)]
            + ["--count", "2", "--interval", "0"],
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.output.splitlines()[-1])["found"] == 2
    finally:
        stop.set()
        runner.join(timeout=30)
        indexer.close()
    # With no indexer running, a canary is never found: the command says so, exit 1.
    lost = CliRunner().invoke(
        main,
        ["canary", "--spool", str(spool_dir), "--store", store_url(store)]
        + ["--count", "1", "--timeout", "1"],
    )
    assert lost.exit_code == 1
    assert json.loads(lost.output.splitlines()[-1]) == {
        "sent": 1,
        "found": 0,
        "p50_ms": None,
        "p99_ms": None,
    }


def test_metrics_serve_the_last_canary_and_the_mark(store: Store, tmp_path: Path) -> None:
    import time

    from useraudit.store.completeness import publish, publish_canary
    from useraudit.webapp.app import create_app
    from useraudit.webapp.users import UserStore

    publish_canary(store, {"sent": 5, "found": 5, "p50_ms": 212.5, "p99_ms": 1480.0})
    publish(store, tmp_path / "spool", 1_800_000_000.0, time.time())
    client = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "USERAUDIT_STORE": store,
            "USERAUDIT_USERS": UserStore(tmp_path / "webusers.db"),
            "USERAUDIT_METRICS": True,
        }
    ).test_client()
    text = client.get("/metrics").get_data(as_text=True)
    assert 'useraudit_capture_to_searchable_ms{quantile="0.5"} 212.5' in text
    assert 'useraudit_capture_to_searchable_ms{quantile="0.99"} 1480.0' in text
    assert "useraudit_complete_up_to_seconds 1.8e+09" in text


def test_scheduled_canaries_publish_a_rolling_p50_p99_and_stay_out_of_admins_reach(
    store: Store, spool_dir: Path, enricher: Enricher, tmp_path: Path
) -> None:
    """``useraudit canary --every``: a real process beside a running indexer, SIGTERM stops it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import pytest

    from useraudit.schema import CANARY_ACCOUNT
    from useraudit.store.base import StoreUnavailable
    from useraudit.store.completeness import last_canary
    from useraudit.store.query import Query
    from useraudit.webapp.app import create_app
    from useraudit.webapp.users import UserStore

    stop = threading.Event()
    indexer = Indexer(spool_dir, store, enricher=enricher)
    runner = threading.Thread(target=indexer.run, args=(stop,), kwargs={"idle": 0.05})
    runner.start()
    service = subprocess.Popen(
        [sys.executable, "-m", "useraudit", "canary", "--spool", str(spool_dir)]
        + ["--store", store_url(store), "--every", "0.5", "--window", "3", "--timeout", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "USERAUDIT_HOME": str(tmp_path / "home")},
    )
    try:
        deadline = time.time() + 90
        figures: dict = {}
        while time.time() < deadline and figures.get("found", 0) < 3:
            time.sleep(0.5)
            try:
                figures = last_canary(store)
            except StoreUnavailable:  # the settings index its first publish created is starting
                continue
        service.send_signal(signal.SIGTERM)
        out, err = service.communicate(timeout=60)
    finally:
        if service.poll() is None:
            service.kill()
            service.communicate()
        stop.set()
        runner.join(timeout=30)
        indexer.close()
    assert service.returncode == 0, err
    # The window holds the latest three; each later canary replaced the oldest.
    assert figures["sent"] == figures["found"] == 3 and figures["every"] == 0.5
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] < 30_000
    final = json.loads(out.decode().splitlines()[-1])
    assert final["sent"] == 3 and final["found"] == 3
    store.refresh()
    canaries = list(store.iterate(Query(CANARY_ACCOUNT)))
    assert len(canaries) >= 3  # stored like any event, in the reserved account
    assert {d["event.action"] for d in canaries} == {"audit_log.canary"}

    users = UserStore(tmp_path / "webusers.db")
    users.add("alice", "correct horse battery staple")
    with pytest.raises(ValueError, match="reserved"):
        users.grant("alice", CANARY_ACCOUNT)
    client = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "USERAUDIT_STORE": store,
            "USERAUDIT_USERS": users,
            "USERAUDIT_METRICS": True,
        }
    ).test_client()
    text = client.get("/metrics").get_data(as_text=True)
    latest = last_canary(store)  # canaries published after the loop saw three
    assert f'useraudit_capture_to_searchable_ms{{quantile="0.99"}} {latest["p99_ms"]}' in text
    assert "useraudit_canary_published_seconds 1." in text
