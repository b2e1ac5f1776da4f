"""Detection in a worker process (SQLite): same alerts as on a thread, and no batch lost.

The child is a real process started with multiprocessing's spawn method,
writing to the same SQLite file as the test reads.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from useraudit.detect import BUILTIN_RULES, DetectionEngine, Finding, Rule, StateView
from useraudit.detect.pipeline import build_stages
from useraudit.detect.worker import DEATHS_BEFORE_SET_ASIDE, DetectionProcess, worker_possible
from useraudit.indexer.enrich import Enricher
from useraudit.store.base import StoreUnavailable
from useraudit.store.sqlite import SQLiteStore
from useraudit.store.sqlite.alerts import SQLiteDetectionStore

from .test_write_behind import failures


class LargeRefund(Rule):
    """A host app's rule, importable by the child by module and class name."""

    name = "large_refund"
    title = "Large refund"
    severity = "medium"
    actions: ClassVar[frozenset[str] | None] = frozenset({"project.exported"})
    defaults: ClassVar[dict[str, Any]] = {"dedup_s": 3600}

    def evaluate(self, event: dict, state: StateView, params: Mapping[str, Any]) -> list[Finding]:
        return [Finding(subject=str(event.get("user.id")), event_ids=[event["event.id"]])]


class DiesOnMallory(LargeRefund):
    """A host rule with a fatal bug: the worker process dies on mallory's exports."""

    name = "dies_on_mallory"

    def evaluate(self, event: dict, state: StateView, params: Mapping[str, Any]) -> list[Finding]:
        if event.get("user.name") == "mallory" and multiprocessing.parent_process() is not None:
            os._exit(3)  # only ever in the worker: a thread engine would take pytest down
        return super().evaluate(event, state, params)


class Unpicklable(LargeRefund):
    name = "unpicklable"

    def __init__(self) -> None:
        self.check = lambda event: True


@pytest.fixture
def worker(sqlite_alerts: SQLiteDetectionStore) -> Iterator[DetectionProcess]:
    stage = DetectionProcess(DetectionEngine(sqlite_alerts), sqlite_alerts.path)
    yield stage
    stage.close()


def alerts_of(store: SQLiteDetectionStore) -> dict[str, tuple[str, int, list[str]]]:
    return {a.id: (a.rule, a.count, sorted(a.event_ids)) for a in store.list_alerts("acme")}


def wait_answered(stage: DetectionProcess) -> None:
    deadline = time.monotonic() + 30
    while not stage.ready():
        assert time.monotonic() < deadline, "the worker never answered"
        time.sleep(0.01)


def test_the_worker_finds_what_the_thread_finds(
    tmp_path: Path, sqlite_alerts: SQLiteDetectionStore, enrich: Enricher
) -> None:
    """Same batches to a worker process and to an engine in this process: the same
    alerts (ids, counts, events) and the same saved state, and only the examined
    events crossed the pipe."""
    from bench.detect import Mix

    mix = Mix(seed=3)
    docs = [enrich(mix.next()) for _ in range(3000)]
    docs += [enrich(r) for r in failures(6, user="mallory")]
    other = SQLiteDetectionStore(tmp_path / "other.db")
    other.install()
    here = DetectionEngine(other, write_behind=True)
    stage = DetectionProcess(DetectionEngine(sqlite_alerts), sqlite_alerts.path)
    try:
        for i in range(0, len(docs), 500):
            stage.delivered(docs[i : i + 500])
            here.delivered(docs[i : i + 500])
        stage.flush()
        here.flush()
        assert 0 < stage.stats.examined < len(docs)
        assert stage.stats.as_dict() == here.stats.as_dict()
    finally:
        stage.close()
    assert alerts_of(sqlite_alerts) == alerts_of(other) != {}
    rows = "SELECT account, key, value FROM detect_state ORDER BY account, key"
    ours = sqlite_alerts._con.execute(rows).fetchall()
    assert ours == other._con.execute(rows).fetchall() != []
    other.close()


def test_flush_waits_for_every_batch_and_the_state_is_saved(
    worker: DetectionProcess, sqlite_alerts: SQLiteDetectionStore, enrich: Enricher
) -> None:
    docs = [enrich(r) for r in failures(5)]
    for batch in (docs[:2], docs[2:4], docs[4:]):
        worker.delivered(batch)
    worker.flush()
    assert worker.ready()
    assert [a.rule for a in sqlite_alerts.list_alerts("acme")] == ["brute_force"]
    value, _version = sqlite_alerts.load_state([("acme", "user:u-alice")])[("acme", "user:u-alice")]
    assert len([m for m in value if m.startswith("f:")]) == 5


@pytest.mark.parametrize("when", ["before_it_answered", "after_it_answered"])
def test_a_killed_worker_fails_the_flush_then_another_stores_its_batches_once(
    worker: DetectionProcess, sqlite_alerts: SQLiteDetectionStore, enrich: Enricher, when: str
) -> None:
    """SIGKILL of the child between two commits: flush() raises (positions held), the
    next child gets every batch since the last commit, and the alert counts each
    failure once."""
    docs = [enrich(r) for r in failures(8)]
    worker.delivered(docs[:3])
    worker.flush()
    first = worker._proc.pid
    worker.delivered(docs[3:6])
    if when == "after_it_answered":
        wait_answered(worker)
    os.kill(first, signal.SIGKILL)
    worker._proc.join(10)
    with pytest.raises(StoreUnavailable, match="died"):
        worker.flush()
    assert worker._proc.pid != first
    worker.delivered(docs[6:])
    worker.flush()
    assert worker.stats.events_set_aside == 0  # killed once: nothing skipped
    assert worker.stats.examined >= len(docs)  # the first child's work still counted
    (alert,) = sqlite_alerts.list_alerts("acme")
    assert alert.rule == "brute_force"
    assert alert.count == 8
    assert sorted(alert.event_ids) == sorted(d["event.id"] for d in docs)


def test_a_batch_the_worker_dies_on_again_and_again_is_set_aside_and_the_rest_goes_on(
    sqlite_alerts: SQLiteDetectionStore, enrich: Enricher, caplog: pytest.LogCaptureFixture
) -> None:
    """One event that kills every worker would otherwise hold the spool positions forever."""
    from .conftest import event

    rules = [*BUILTIN_RULES, DiesOnMallory()]
    stage = DetectionProcess(DetectionEngine(sqlite_alerts, rules), sqlite_alerts.path)
    before = [enrich(r) for r in failures(3)]
    poison = enrich(event("project.exported", "mallory", audit__project__id="p9"))
    after = [enrich(r) for r in failures(2, start=10)] + [enrich(_export())]
    try:
        stage.delivered(before)
        stage.flush()  # committed: never handed again
        stage.delivered([poison])
        stage.delivered(after)
        failed = 0
        while True:
            try:
                stage.flush()
                break
            except StoreUnavailable:
                failed += 1
                assert failed <= DEATHS_BEFORE_SET_ASIDE, "the poison batch was never set aside"
        assert stage._restarts == DEATHS_BEFORE_SET_ASIDE
        assert stage.stats.events_set_aside == 1
        # Work done by the children that died is still counted.
        assert stage.stats.examined >= len(before) + len(after)
    finally:
        stage.close()
    assert f"skips its 1 events, which are stored: {poison['event.id']}" in caplog.text
    found = alerts_of(sqlite_alerts)
    assert sorted(rule for rule, _, _ in found.values()) == ["brute_force", "dies_on_mallory"]
    events = {e for _, _, ids in found.values() for e in ids}
    assert {d["event.id"] for d in before + after} == events  # all but the poison


def test_an_indexer_with_a_poison_event_drains_commits_stops_cleanly_and_counts_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the indexer: the drain ends with every position committed, close() raises
    nothing, the next run has nothing left to hand over, and /metrics counts the skip."""
    import urllib.request

    import orjson
    from prometheus_client.parser import text_string_to_metric_families
    from support import free_port

    from useraudit.doctor import detection_skipped
    from useraudit.indexer.metrics import serve
    from useraudit.indexer.shipper import Indexer
    from useraudit.indexer.watch import SpoolWatch
    from useraudit.spool import SpoolWriter

    from .conftest import event

    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, durability="sync")
    raws = [_export(), event("project.exported", "mallory", audit__project__id="p9"), _export()]
    for raw in raws:
        writer.append(orjson.dumps(raw))
    writer.close()
    store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    store.install()
    stages, _notes = build_stages(store, rules=[*BUILTIN_RULES, DiesOnMallory()])
    port = free_port()
    with Indexer(spool, store, stages=stages, batch_records=1) as ix:
        serve(ix, None, port)
        ix.drain()
        assert ix.reader.pending_bytes() == 0  # committed, not held
        # What `useraudit doctor` beside it reads: the heartbeat carries the count.
        SpoolWatch(spool, ix.stats, details=ix.heartbeat_details).tick()
        skipped = detection_skipped(spool)
        assert not skipped.ok and "skipped 1 stored event(s)" in skipped.found
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            scraped = {
                (sample.name, tuple(sample.labels.values())): sample.value
                for family in text_string_to_metric_families(resp.read().decode())
                for sample in family.samples
            }
    assert stages[0].stats.events_set_aside == 1
    # What an operator's alert rule sees (docs/metrics.md).
    assert scraped[("useraudit_detect_events_set_aside_total", ())] == 1
    assert scraped[("useraudit_detect_events_examined_total", ())] >= 2
    assert scraped[("useraudit_detect_alerts_total", ("created",))] == 1
    assert "positions held" in caplog.text  # the flush after each restart, by design
    with Indexer(spool, store, stages=[]) as again:
        assert again.drain().read == 0
    alerts = SQLiteDetectionStore(store.path)
    (alert,) = alerts.list_alerts("acme")
    assert sorted(alert.event_ids) == sorted([raws[0]["event.id"], raws[2]["event.id"]])
    alerts.close()
    store.close()


def test_on_alert_is_called_when_the_worker_stored_an_alert(
    sqlite_alerts: SQLiteDetectionStore, enrich: Enricher
) -> None:
    woken = threading.Event()
    stage = DetectionProcess(DetectionEngine(sqlite_alerts), sqlite_alerts.path, on_alert=woken.set)
    try:
        stage.delivered([enrich(r) for r in failures(4)])
        wait_answered(stage)
        assert not woken.is_set()  # four failures: no alert yet
        stage.delivered([enrich(r) for r in failures(1, start=10)])
        assert woken.wait(30)
    finally:
        stage.close()


def test_a_host_rule_runs_in_the_worker(tmp_path: Path, enrich: Enricher) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    store.install()
    stages, notes = build_stages(store, rules=[*BUILTIN_RULES, LargeRefund()])
    (stage,) = stages
    try:
        assert isinstance(stage, DetectionProcess)
        assert "detection: in a worker process" in notes
        stage.delivered([enrich(r) for r in [_export()]])
        stage.flush()
    finally:
        stage.close()
    alerts = SQLiteDetectionStore(store.path)
    assert [a.rule for a in alerts.list_alerts("acme")] == ["large_refund"]
    alerts.close()
    store.close()


def test_a_rule_that_cannot_be_pickled_keeps_detection_on_a_thread(
    tmp_path: Path, enrich: Enricher, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    store.install()
    rules = [*BUILTIN_RULES, Unpicklable()]
    assert "cannot be pickled" in str(worker_possible(DetectionEngine(object(), rules)))  # type: ignore[arg-type]
    stages, notes = build_stages(store, rules=rules)
    (stage,) = stages
    try:
        assert isinstance(stage, DetectionEngine)
        assert any(n.startswith("detection: on a thread (its rules") for n in notes), notes
        assert "detection runs on a thread" in caplog.text
        stage.delivered([enrich(_export())])
        stage.flush()
    finally:
        stage.close()
    alerts = SQLiteDetectionStore(store.path)
    assert [a.rule for a in alerts.list_alerts("acme")] == ["unpicklable"]
    alerts.close()
    store.close()


def _export() -> dict:
    from .conftest import event

    return event("project.exported", "bob", audit__project__id="p1")


def test_the_worker_dies_with_the_indexer(tmp_path: Path) -> None:
    """kill -9 of the process that started the worker: the worker goes too."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from useraudit.detect import DetectionEngine
        from useraudit.detect.worker import DetectionProcess
        from useraudit.store.sqlite.alerts import SQLiteDetectionStore
        store = SQLiteDetectionStore(Path({str(tmp_path / "audit.db")!r}))
        store.install()
        stage = DetectionProcess(DetectionEngine(store), store.path)
        print(stage._proc.pid, flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _running(child)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _running(child):
            assert time.monotonic() < deadline, "the worker outlived the indexer"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait for an init that never reaps)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
