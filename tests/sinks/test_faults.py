"""Faults: each real destination stopped and restarted mid-stream, a destination
down for a whole run, and the indexer killed with sinks attached.

After each: every event reached the destination at least once, the number of
distinct event ids delivered equals the store's count, and repeats are only
of batches sent just before the fault (the retry window), with the same id.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from support.receivers import WebhookReceiver
from support.rsyslog import Rsyslog
from support.tls import Certificates

from useraudit.indexer.sinks.base import Sink
from useraudit.indexer.sinks.files import FileSink
from useraudit.indexer.sinks.kafka import KafkaSink
from useraudit.indexer.sinks.outbox import ConfiguredSink, SinkSettings
from useraudit.indexer.sinks.syslog import SyslogSink
from useraudit.indexer.sinks.webhook import WebhookSink
from useraudit.middleware.recorder import Recorder
from useraudit.spool import SpoolReader
from useraudit.store.query import Query
from useraudit.store.sqlite import SQLiteStore

from .conftest import SECRET, RunningIndexer, consume
from .test_syslog_kafka import sd_params

FAST = SinkSettings(backoff_base=0.05, backoff_cap=0.5, batch_records=100)


class Stream:
    """Records ``n`` events at a steady pace over ``seconds`` on a thread, as a host app would."""

    def __init__(self, spool: Path, n: int, seconds: float) -> None:
        self.ids: list[str] = []
        self.recorded_at: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, args=(spool, n, seconds))

    def _run(self, spool: Path, n: int, seconds: float) -> None:
        rec = Recorder(spool, durability="sync")
        started = time.monotonic()
        for i in range(n):
            event_id = rec.record(
                "user.signed_in",
                account=f"acct-{i % 4}",
                user={"id": f"u{i}", "name": f"user {i}"},
                comments=f"event {i}",
            )
            assert event_id
            self.ids.append(event_id)
            self.recorded_at[event_id] = time.time()
            behind = started + seconds * (i + 1) / n - time.monotonic()
            if behind > 0:
                time.sleep(behind)
        rec.close()

    def start(self) -> Stream:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join(120)


def stored(store: SQLiteStore) -> int:
    store.refresh()
    return sum(store.count(Query(account=a)) for a in store.accounts())


def run_through_fault(
    spool: Path, store: SQLiteStore, sink: Sink, fault: Callable[[], None], n: int = 1200
) -> dict:
    running = RunningIndexer(spool, store, [ConfiguredSink(sink, FAST)])
    try:
        stream = Stream(spool, n, seconds=6).start()
        time.sleep(2)
        fault()
        stream.join()
        assert len(stream.ids) == n
        # Caught up means nothing left to send of what was queued: wait until
        # the indexer has handed the sink every event, then for the sink.
        deadline = time.monotonic() + 120
        while running.stage.status()[0]["queued"] < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running.stage.wait_caught_up(120), running.stage.status()
        (status,) = running.stage.status()
    finally:
        running.close()
    assert stored(store) == n
    return {"ids": stream.ids, "status": status}


def test_rsyslog_stopped_and_restarted_mid_stream(
    spool_dir: Path, store: SQLiteStore, rsyslog: Rsyslog
) -> None:
    window = 1.0
    sink = SyslogSink("syslog", "127.0.0.1", rsyslog.port, confirm_after=window)
    moments: dict[str, float] = {}

    def fault() -> None:
        moments["stop"] = time.time()
        rsyslog.stop()
        time.sleep(2)
        rsyslog.start()
        moments["back"] = time.time()

    run = run_through_fault(spool_dir, store, sink, fault)
    rsyslog.stop()
    messages = rsyslog.messages()
    copies = Counter(sd_params(m["sd"])["id"] for m in messages)
    assert set(copies) == set(run["ids"])  # every event at least once
    assert len(copies) == stored(store)
    assert run["status"]["retried"] >= 1
    first_seen: dict[str, float] = {}
    for m in messages:
        first_seen.setdefault(sd_params(m["sd"])["id"], float(m["received"]))
    repeated = [i for i, c in copies.items() if c > 1]
    for event_id in repeated:  # only batches sent within the window before the stop
        assert moments["stop"] - window - 2 <= first_seen[event_id] <= moments["stop"] + 1


def test_kafka_broker_stopped_and_restarted_mid_stream(
    spool_dir: Path, store: SQLiteStore, kafka
) -> None:
    topic = f"useraudit-{uuid.uuid4().hex[:8]}"
    timeout = 8.0
    sink = KafkaSink("kafka", kafka.bootstrap, topic, timeout=timeout)
    moments: dict[str, float] = {}

    def fault() -> None:
        moments["stop"] = time.time()
        kafka.stop()
        time.sleep(3)
        kafka.start()
        moments["back"] = time.time()

    run = run_through_fault(spool_dir, store, sink, fault)
    messages = consume(kafka.bootstrap, topic, len(run["ids"]))
    copies = Counter(json.loads(m.value())["event.id"] for m in messages)
    assert set(copies) == set(run["ids"])
    assert len(copies) == stored(store)
    assert all(
        dict(m.headers())["event.id"] == json.loads(m.value())["event.id"].encode()
        for m in messages
    )
    created: dict[str, float] = {}
    for m in messages:
        created.setdefault(json.loads(m.value())["event.id"], m.timestamp()[1] / 1000)
    for event_id in (i for i, c in copies.items() if c > 1):
        # a repeat is a batch in flight when the broker went: produced before the
        # stop, not acknowledged within the sink's timeout
        assert moments["stop"] - timeout - 2 <= created[event_id] <= moments["back"] + 1


def test_webhook_receiver_answering_500_then_200_mid_stream(
    spool_dir: Path, store: SQLiteStore, receiver: WebhookReceiver, certs: Certificates
) -> None:
    sink = WebhookSink("hook", receiver.url, secret=SECRET, ca_file=str(certs.ca), timeout=5)

    def fault() -> None:
        with receiver.lock:
            receiver.script = [500] * 12

    run = run_through_fault(spool_dir, store, sink, fault)
    copies = Counter(receiver.received.ids())
    assert set(copies) == set(run["ids"])
    assert len(copies) == stored(store)
    assert receiver.received.statuses.count(500) == 12
    assert run["status"]["retried"] >= 12
    # a 500 means "not taken": nothing arrives twice
    assert max(copies.values()) == 1


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sinks_down_for_the_whole_run_never_delay_indexing(
    spool_dir: Path, store: SQLiteStore, tmp_path: Path
) -> None:
    limit = 96 * 1024
    capped = SinkSettings(backlog_bytes=limit, backoff_base=0.05, backoff_cap=0.5)
    down = [
        WebhookSink("hook", f"http://127.0.0.1:{dead_port()}/in", secret=SECRET, timeout=1),
        SyslogSink("syslog", "127.0.0.1", dead_port(), timeout=1),
        KafkaSink("kafka", f"127.0.0.1:{dead_port()}", "t", timeout=2),
    ]
    files = FileSink("files", tmp_path / "nd")
    running = RunningIndexer(
        spool_dir, store, [*(ConfiguredSink(s, capped) for s in down), ConfiguredSink(files, FAST)]
    )
    searchable_after: list[float] = []
    try:
        stream = Stream(spool_dir, 1500, seconds=5).start()
        # sample events as they are recorded: how long until the store has them?
        probe_until = time.monotonic() + 8
        seen: set[str] = set()
        while time.monotonic() < probe_until:
            recent = [i for i in list(stream.ids)[-50:] if i not in seen]
            if recent:
                found = store.get(recent)
                for event_id in found:
                    seen.add(event_id)
                    searchable_after.append(time.time() - stream.recorded_at[event_id])
            time.sleep(0.1)
        stream.join()
        assert running.stage.workers["files"].wait_caught_up(60)
        status = {s["sink"]: s for s in running.stage.status()}
    finally:
        running.close()
    assert stored(store) == 1500
    assert SpoolReader(spool_dir).pending_bytes() == 0
    assert len(searchable_after) > 100
    assert max(searchable_after) < 3.0, sorted(searchable_after)[-5:]
    lines = (tmp_path / "nd" / "useraudit-events.ndjson").read_text().splitlines()
    assert len({json.loads(x)["event.id"] for x in lines}) == 1500
    for name in ("hook", "syslog", "kafka"):
        s = status[name]
        assert s["delivered"] == 0 and s["retried"] > 0
        assert 0 < s["backlog_bytes"] <= limit  # the documented bound
        assert s["queued"] + s["dead_lettered"].get("backlog_full", 0) == 1500


def test_indexer_killed_with_sinks_attached_loses_nothing(spool_dir: Path, tmp_path: Path) -> None:
    """kill -9 of `useraudit indexer run --sinks` mid-stream, then a restart."""
    config = tmp_path / "sinks.toml"
    out = tmp_path / "nd"
    config.write_text(f'[sinks.files]\ntype = "file"\ndirectory = "{out}"\nbatch_records = 50\n')
    db = tmp_path / "audit.db"
    cmd = [
        sys.executable, "-m", "useraudit", "indexer", "run", "--spool", str(spool_dir),
        "--store", f"sqlite:///{db}", "--sinks", str(config), "--batch", "100",
    ]  # fmt: skip
    stream = Stream(spool_dir, 3000, seconds=6).start()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(3)
    first.send_signal(signal.SIGKILL)  # our child, by PID
    first.wait(30)
    stream.join()
    done = subprocess.run([*cmd, "--once"], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    store = SQLiteStore(f"sqlite:///{db}")
    try:
        assert stored(store) == 3000
    finally:
        store.close()
    lines = [line for f in sorted(out.glob("*.ndjson")) for line in f.read_text().splitlines()]
    copies = Counter(json.loads(line)["event.id"] for line in lines)  # every line whole JSON
    assert set(copies) == set(stream.ids)
