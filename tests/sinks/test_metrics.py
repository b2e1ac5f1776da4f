"""The indexer's Prometheus endpoint, scraped over HTTP while it runs."""

from __future__ import annotations

import socket
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from support.receivers import WebhookReceiver
from support.tls import Certificates

from useraudit.indexer.metrics import serve
from useraudit.indexer.shipper import Indexer
from useraudit.indexer.sinks.outbox import ConfiguredSink, SinkSettings, SinksStage
from useraudit.indexer.sinks.webhook import WebhookSink
from useraudit.middleware.recorder import Recorder
from useraudit.store.sqlite import SQLiteStore

from .conftest import SECRET, record_events


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_indexer_metrics_spool_sinks_and_dead_letters(
    spool_dir: Path, store: SQLiteStore, receiver: WebhookReceiver, certs: Certificates
) -> None:
    rec = Recorder(spool_dir, durability="sync")  # the next to ship is an hour old
    rec.record("user.signed_in", account="acct-0", timestamp=datetime.now(UTC) - timedelta(hours=1))
    rec.close()
    record_events(spool_dir, 40)
    (spool_dir / "junk.seg").write_bytes(b"not a spool record at all")  # a damaged segment
    live = WebhookSink("hook", receiver.url, secret=SECRET, ca_file=str(certs.ca))
    dead = WebhookSink("dead", f"http://127.0.0.1:{free_port()}/in", secret=SECRET, timeout=1)
    stage = SinksStage(
        spool_dir,
        [
            ConfiguredSink(live, SinkSettings(backoff_cap=0.2)),
            ConfiguredSink(dead, SinkSettings(backoff_cap=0.2)),
        ],
    )
    port = free_port()
    with Indexer(spool_dir, store, stages=[stage]) as ix:
        serve(ix, stage, port)
        before = scrape(port)
        assert before[("useraudit_spool_backlog_bytes", ())] > 0
        assert 3500 < before[("useraudit_spool_oldest_event_age_seconds", ())] < 3700
        ix.drain()
        assert stage.workers["hook"].wait_caught_up(30)
        time.sleep(0.5)  # the dead sink has tried and waited
        m = scrape(port)
    assert m[("useraudit_indexer_events_shipped_total", ())] == 41
    assert m[("useraudit_spool_backlog_bytes", ())] == 0
    assert m[("useraudit_spool_oldest_event_age_seconds", ())] == 0
    assert m[("useraudit_indexer_dead_letters", (("reason", "damaged"),))] >= 1
    assert m[("useraudit_sink_delivered_total", (("sink", "hook"),))] == 41
    assert m[("useraudit_sink_lag_seconds", (("sink", "hook"),))] == 0
    assert m[("useraudit_sink_delivered_total", (("sink", "dead"),))] == 0
    assert m[("useraudit_sink_retries_total", (("sink", "dead"),))] >= 1
    assert m[("useraudit_sink_lag_seconds", (("sink", "dead"),))] > 0
    assert m[("useraudit_sink_backlog_bytes", (("sink", "dead"),))] > 0
    assert m[("useraudit_sink_dead_letters_total", (("reason", "rejected"), ("sink", "dead")))] == 0
