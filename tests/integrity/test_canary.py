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
