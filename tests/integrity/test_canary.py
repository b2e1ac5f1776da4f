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
