"""Canary events: capture-to-searchable latency, measured end to end.

A canary is an ordinary event (``audit_log.canary`` in the reserved account
``schema.CANARY_ACCOUNT``, which no user can be granted) recorded through
``record()`` into the spool in ``sync`` mode; the clock stops when a search
of the store finds it. So a canary goes through everything a real event
does — spool, indexer, stages, the store, its refresh — and its latency is
what a reader of the UI waits. :func:`measure` sends ``count`` canaries and
gives p50 and p99; :func:`run_scheduled` sends one every ``every`` seconds
until stopped and publishes p50/p99 over the last ``window`` after each.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import click

from useraudit.cli_helpers import spool_option, store_option
from useraudit.config import default_spool_dir
from useraudit.middleware.recorder import Recorder, new_event_id
from useraudit.schema import CANARY_ACCOUNT
from useraudit.store.base import Store, StoreUnavailable
from useraudit.store.completeness import publish_canary
from useraudit.store.query import Query

CANARY_ACTION = "audit_log.canary"


@dataclass(frozen=True)
class CanaryReport:
    sent: int
    found: int
    p50_ms: float | None
    p99_ms: float | None

    def as_dict(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "found": self.found,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
        }


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _searchable(store: Store, event_id: str, since_ms: int) -> bool:
    from datetime import UTC, datetime

    start = datetime.fromtimestamp(since_ms / 1000 - 1, UTC)
    query = Query(CANARY_ACCOUNT, start=start, actions=(CANARY_ACTION,))
    try:
        return any(d.get("event.id") == event_id for d in store.iterate(query, batch_size=100))
    except StoreUnavailable:  # e.g. the first index of the month, shards still starting
        return False


def send_one(
    recorder: Recorder, store: Store, *, timeout: float, poll: float, params: dict
) -> float | None:
    """Record one canary; milliseconds until a search finds it, or None after ``timeout``."""
    event_id = new_event_id()
    started = time.time()
    recorder.record(
        CANARY_ACTION,
        account=CANARY_ACCOUNT,
        user={"id": "useraudit-canary"},
        event_id=event_id,
        params=params,
    )
    deadline = started + timeout
    while time.time() < deadline:
        if _searchable(store, event_id, int(started * 1000)):
            return (time.time() - started) * 1000
        time.sleep(poll)
    return None


def _report(sent: int, latencies: list[float]) -> CanaryReport:
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return CanaryReport(
        sent,
        len(latencies),
        None if p50 is None else round(p50, 1),
        None if p99 is None else round(p99, 1),
    )


def measure(
    spool: Path,
    store: Store,
    *,
    count: int = 20,
    interval: float = 0.2,
    timeout: float = 60.0,
    poll: float = 0.02,
) -> CanaryReport:
    """Record ``count`` canaries one after the other; time each until a search finds it."""
    recorder = Recorder(spool, durability="sync")
    latencies: list[float] = []
    try:
        for i in range(count):
            took = send_one(
                recorder, store, timeout=timeout, poll=poll, params={"n": i + 1, "of": count}
            )
            if took is not None:
                latencies.append(took)
            time.sleep(interval)
    finally:
        recorder.close()
    return _report(count, latencies)


def run_scheduled(
    spool: Path,
    store: Store,
    stop: threading.Event,
    *,
    every: float = 30.0,
    window: int = 100,
    timeout: float = 60.0,
    poll: float = 0.05,
) -> CanaryReport:
    """One canary every ``every`` seconds until ``stop``; p50/p99 of the last ``window`` published.

    A canary not found within ``timeout`` counts as sent and not found, so
    ``found < sent`` in the published figures says canaries are being lost.
    """
    recorder = Recorder(spool, durability="sync")
    outcomes: deque[float | None] = deque(maxlen=window)
    report = _report(0, [])
    n = 0
    try:
        while not stop.is_set():
            began = time.monotonic()
            n += 1
            outcomes.append(
                send_one(
                    recorder, store, timeout=timeout, poll=poll, params={"n": n, "every": every}
                )
            )
            report = _report(len(outcomes), [o for o in outcomes if o is not None])
            try:
                publish_canary(store, {**report.as_dict(), "every": every})
            except StoreUnavailable:  # the store is back for the next one
                pass
            stop.wait(max(0.0, every - (time.monotonic() - began)))
    finally:
        recorder.close()
    return report


@click.command()
@spool_option
@store_option
@click.option("--count", default=20, show_default=True, help="Canary events to send.")
@click.option("--interval", default=0.2, show_default=True, help="Seconds between canaries.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for each.")
@click.option(
    "--every",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Run continuously: one canary every this many seconds until stopped (SIGTERM, Ctrl-C).",
)
@click.option(
    "--window",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="With --every: p50/p99 over this many latest canaries.",
)
def canary(
    spool_dir: Path | None,
    store_url: str | None,
    count: int,
    interval: float,
    timeout: float,
    every: float | None,
    window: int,
) -> None:
    """Capture-to-searchable latency: send canary events, print p50 and p99 (JSON).

    Needs a running indexer on the spool; exit 1 when a canary never became
    searchable within --timeout. With --every it runs as a service beside the
    indexer, publishing the figures for /metrics after each canary.
    """
    from useraudit.store import StoreError, open_store

    try:
        store = open_store(store_url)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    spool = spool_dir or default_spool_dir()
    try:
        if every is not None:
            report = run_scheduled(
                spool, store, _stop_on_signals(), every=every, window=window, timeout=timeout
            )
        else:
            report = measure(spool, store, count=count, interval=interval, timeout=timeout)
            publish_canary(store, report.as_dict())  # served by /metrics (webapp/metrics.py)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    click.echo(json.dumps(report.as_dict()))
    if report.found < report.sent:
        raise SystemExit(1)


def _stop_on_signals() -> threading.Event:
    """Set by SIGTERM or SIGINT, so the service stops between canaries and closes its spool."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop
