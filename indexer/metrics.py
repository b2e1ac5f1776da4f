"""Prometheus metrics of a running indexer (``useraudit indexer run --metrics-port 9464``).

Read at scrape time from the indexer's own counters, its spool, its dead
letters and its sinks, so nothing is counted twice and a scrape costs a few
file stats and one small SQL query.

========================================================  =====================================
``useraudit_indexer_events_shipped_total``                 stored (created, or already there)
``useraudit_indexer_events_retried_total``                 item retries after 429/5xx answers
``useraudit_indexer_dead_letters{reason}``                 events in the dead-letter store
``useraudit_spool_backlog_bytes``                          bytes not yet shipped
``useraudit_spool_oldest_event_age_seconds``               age of the next event to ship
``useraudit_sink_queued_total{sink}``                      events queued for a sink
``useraudit_sink_delivered_total{sink}``                   events a sink confirmed
``useraudit_sink_retries_total{sink}``                     failed delivery attempts
``useraudit_sink_dead_letters_total{sink,reason}``         rejected, backlog_full, damaged
``useraudit_sink_lag_seconds{sink}``                       age of the oldest unconfirmed event
``useraudit_sink_backlog_bytes{sink}``                     bytes in the sink's outbox
``useraudit_detect_events_examined_total``                 events some detection rule looked at
``useraudit_detect_alerts_total{change}``                  alerts created, updated
``useraudit_detect_rule_errors_total``                     rule evaluations that raised
``useraudit_detect_events_set_aside_total``                events detection skipped (worker died)
========================================================  =====================================
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

import orjson
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .shipper import Indexer
    from .sinks.outbox import SinksStage

_HEADER = struct.Struct("<4sII")


def dead_letter_reason(reason: str) -> str:
    """A small fixed set of labels for the indexer's free-text reasons."""
    if reason.startswith("undecodable"):
        return "undecodable"
    if reason.startswith("enrichment failed"):
        return "enrichment_failed"
    if reason.startswith("gave up after"):
        return "gave_up"
    if "(segment " in reason:
        return "damaged"
    return "rejected"


class IndexerCollector(Collector):
    def __init__(self, indexer: Indexer, sinks: SinksStage | None = None) -> None:
        self.indexer = indexer
        self.sinks = sinks

    def collect(self) -> Iterator:
        stats = self.indexer.stats
        shipped = CounterMetricFamily(
            "useraudit_indexer_events_shipped", "Events the store holds after shipping."
        )
        shipped.add_metric([], stats.shipped + stats.duplicates)
        yield shipped
        retried = CounterMetricFamily(
            "useraudit_indexer_events_retried", "Item retries after 429/5xx answers."
        )
        retried.add_metric([], stats.retried)
        yield retried
        dead = GaugeMetricFamily(
            "useraudit_indexer_dead_letters", "Events in the dead-letter store.", labels=["reason"]
        )
        for reason, n in self._dead_letters().items():
            dead.add_metric([reason], n)
        yield dead
        backlog = GaugeMetricFamily("useraudit_spool_backlog_bytes", "Spool bytes not yet shipped.")
        backlog.add_metric([], self.indexer.reader.pending_bytes())
        yield backlog
        age = GaugeMetricFamily(
            "useraudit_spool_oldest_event_age_seconds",
            "Age (by @timestamp) of the next event to ship, the oldest waiting; 0 when none.",
        )
        age.add_metric([], self._oldest_age())
        yield age
        yield from self._sinks()
        yield from self._detection()

    def _dead_letters(self) -> dict[str, int]:
        out: dict[str, int] = {}
        db = self.indexer.dead_letters._db  # one small query on its connection
        for reason, n in db.execute(
            "SELECT substr(reason, 1, 200), count(*) FROM dead_letters GROUP BY 1"
        ):
            label = dead_letter_reason(reason)
            out[label] = out.get(label, 0) + n
        return out

    def _oldest_age(self) -> float:
        reader = self.indexer.reader
        for segment in reader.segments():
            path = reader.directory / segment
            committed = reader.committed(segment)
            try:
                with open(path, "rb") as fh:
                    if os.fstat(fh.fileno()).st_size <= committed:
                        continue
                    fh.seek(committed)
                    header = fh.read(_HEADER.size)
                    if len(header) < _HEADER.size:
                        continue
                    _, length, _ = _HEADER.unpack(header)
                    payload = fh.read(min(length, 1 << 20))
                stamp = orjson.loads(payload).get("@timestamp")
                when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
            except (OSError, ValueError, orjson.JSONDecodeError, AttributeError):
                # Unreadable first record: the segment's creation time (its name) instead.
                when = int(segment.split("-", 1)[0]) / 1e9
            return max(0.0, time.time() - when)
        return 0.0

    def _sinks(self) -> Iterator:
        if self.sinks is None:
            return
        labels = ["sink"]
        queued = CounterMetricFamily("useraudit_sink_queued", "Events queued.", labels=labels)
        delivered = CounterMetricFamily(
            "useraudit_sink_delivered", "Events the destination confirmed.", labels=labels
        )
        retries = CounterMetricFamily(
            "useraudit_sink_retries", "Failed delivery attempts.", labels=labels
        )
        dead = CounterMetricFamily(
            "useraudit_sink_dead_letters", "Events dead-lettered.", labels=["sink", "reason"]
        )
        lag = GaugeMetricFamily(
            "useraudit_sink_lag_seconds", "Age of the oldest unconfirmed event.", labels=labels
        )
        backlog = GaugeMetricFamily(
            "useraudit_sink_backlog_bytes", "Bytes in the sink's outbox.", labels=labels
        )
        for name, worker in self.sinks.workers.items():
            s = worker.stats
            queued.add_metric([name], s.queued)
            delivered.add_metric([name], s.delivered)
            retries.add_metric([name], s.retried)
            for reason in ("rejected", "backlog_full", "damaged"):
                dead.add_metric([name, reason], s.dead_lettered.get(reason, 0))
            lag.add_metric([name], worker.lag_seconds())
            backlog.add_metric([name], worker.outbox.pending_bytes())
        yield from (queued, delivered, retries, dead, lag, backlog)

    def _detection(self) -> Iterator:
        stats = self.indexer.detection_stats()
        if stats is None:
            return
        examined = CounterMetricFamily(
            "useraudit_detect_events_examined", "Events some detection rule looked at."
        )
        examined.add_metric([], stats.examined)
        alerts = CounterMetricFamily(
            "useraudit_detect_alerts", "Alerts created or updated.", labels=["change"]
        )
        alerts.add_metric(["created"], stats.alerts_created)
        alerts.add_metric(["updated"], stats.alerts_updated)
        errors = CounterMetricFamily(
            "useraudit_detect_rule_errors", "Rule evaluations that raised (logged)."
        )
        errors.add_metric([], stats.rule_errors)
        set_aside = CounterMetricFamily(
            "useraudit_detect_events_set_aside",
            "Stored events detection skipped: its worker process died on them three times.",
        )
        set_aside.add_metric([], stats.events_set_aside)
        yield from (examined, alerts, errors, set_aside)


def serve(
    indexer: Indexer, sinks: SinksStage | None, port: int, host: str = "127.0.0.1"
) -> CollectorRegistry:
    """Serve ``/metrics`` on host:port from a thread; returns the registry."""
    registry = CollectorRegistry()
    registry.register(IndexerCollector(indexer, sinks))
    start_http_server(port, addr=host, registry=registry)
    return registry
