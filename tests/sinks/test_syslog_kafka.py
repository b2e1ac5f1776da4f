"""Syslog against a real rsyslogd (TCP and TLS) and Kafka against a real KRaft broker."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from support.rsyslog import Rsyslog
from support.tls import Certificates

from useraudit.indexer.shipper import Indexer
from useraudit.indexer.sinks.base import Event
from useraudit.indexer.sinks.kafka import KafkaSink
from useraudit.indexer.sinks.outbox import ConfiguredSink, SinkSettings, SinksStage
from useraudit.indexer.sinks.syslog import SyslogSink, format_message, octet_frame
from useraudit.store.sqlite import SQLiteStore

from .conftest import consume, record_events

FAST = SinkSettings(backoff_base=0.05, backoff_cap=0.5)


def ship(
    spool: Path, store: SQLiteStore, sinks: list[ConfiguredSink], wait: float = 60
) -> SinksStage:
    stage = SinksStage(spool, sinks)
    with Indexer(spool, store, stages=[stage]) as ix:
        ix.drain()
        assert stage.wait_caught_up(wait), stage.status()
    return stage


def sd_params(sd: str) -> dict[str, str]:
    """RFC 5424 SD-PARAMs of one element, unescaped."""
    return {k: re.sub(r"\\(.)", r"\1", v) for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', sd)}


def check_messages(server: Rsyslog, ids: list[str], store: SQLiteStore) -> None:
    messages = server.messages()
    assert len(messages) == len(ids)
    stored = store.get(ids)
    for message in messages:
        assert message["protocol_version"] == "1" and message["app"] == "useraudit"
        assert message["sd"].startswith("[useraudit@32473 ")
        params = sd_params(message["sd"])
        body = json.loads(message["msg"].lstrip("\ufeff"))
        doc = stored[params["id"]]
        assert body["event.id"] == params["id"] == doc["event.id"]
        assert params["account"] == doc["organization.id"]
        assert params["user"] == doc["user.id"] and params["action"] == doc["event.action"]
        assert params["outcome"] == doc["event.outcome"]
        assert message["msgid"] == doc["event.action"]
        # facility 13 (log audit); warning for failures, notice otherwise
        assert int(message["pri"]) == 13 * 8 + (4 if doc["event.outcome"] == "failure" else 5)
        assert body["audit.comments"] == doc["audit.comments"]  # quotes, ] and \ survive
    assert sorted(sd_params(m["sd"])["id"] for m in messages) == sorted(ids)


def test_syslog_over_tcp_reaches_rsyslog_as_rfc5424(
    spool_dir: Path, store: SQLiteStore, rsyslog: Rsyslog
) -> None:
    ids = record_events(spool_dir, 50)
    sink = SyslogSink("syslog", "127.0.0.1", rsyslog.port, confirm_after=0.2)
    stage = ship(spool_dir, store, [ConfiguredSink(sink, FAST)])
    rsyslog.stop()  # flushes what it received
    check_messages(rsyslog, ids, store)
    assert stage.status()[0]["delivered"] == 50


def test_syslog_over_tls_with_the_test_ca(
    spool_dir: Path, store: SQLiteStore, rsyslog_tls: Rsyslog, certs: Certificates
) -> None:
    ids = record_events(spool_dir, 30)
    sink = SyslogSink(
        "syslog", "127.0.0.1", rsyslog_tls.port, tls=True, ca_file=str(certs.ca), confirm_after=0.2
    )
    ship(spool_dir, store, [ConfiguredSink(sink, FAST)])
    rsyslog_tls.stop()
    check_messages(rsyslog_tls, ids, store)


def test_syslog_tls_refuses_a_server_the_ca_does_not_vouch_for(
    spool_dir: Path, store: SQLiteStore, rsyslog_tls: Rsyslog
) -> None:
    record_events(spool_dir, 3)
    sink = SyslogSink("syslog", "127.0.0.1", rsyslog_tls.port, tls=True, confirm_after=0.2)
    stage = SinksStage(spool_dir, [ConfiguredSink(sink, FAST)])
    with Indexer(spool_dir, store, stages=[stage]) as ix:
        ix.drain()
        assert not stage.wait_caught_up(1.5)
        (status,) = stage.status()
    assert "CERTIFICATE_VERIFY_FAILED" in status["last_error"]
    rsyslog_tls.stop()
    assert rsyslog_tls.messages() == []


def test_octet_counting_frames_count_utf8_bytes() -> None:
    doc = {"event.id": "é1", "event.action": "a b\nc", "@timestamp": "2026-01-01T00:00:00Z"}
    message = format_message(doc, hostname="host name")
    framed = octet_frame(message)
    length, _, rest = framed.partition(b" ")
    assert int(length) == len(rest) == len(message)
    assert message.startswith(b"<109>1 2026-01-01T00:00:00Z host_name useraudit - a_b_c ")
    odd = format_message({"@timestamp": "2026-01-01T03:00:00+03:00"})
    assert odd.startswith(b"<109>1 2026-01-01T00:00:00.000000Z ")


def test_kafka_one_topic_keyed_by_account(spool_dir: Path, store: SQLiteStore, kafka) -> None:
    topic = f"useraudit-{uuid.uuid4().hex[:8]}"
    ids = record_events(spool_dir, 90, accounts=3)
    sink = KafkaSink("kafka", kafka.bootstrap, topic, timeout=20)
    stage = ship(spool_dir, store, [ConfiguredSink(sink, FAST)])
    messages = consume(kafka.bootstrap, topic, 90)
    assert sorted(json.loads(m.value())["event.id"] for m in messages) == sorted(ids)
    by_key: dict[bytes, set[int]] = {}
    for m in messages:
        doc = json.loads(m.value())
        assert m.key() == doc["organization.id"].encode()
        assert dict(m.headers())["event.id"] == doc["event.id"].encode()
        by_key.setdefault(m.key(), set()).add(m.partition())
    # one account's events stay in one partition (in order)
    assert len(by_key) == 3 and all(len(parts) == 1 for parts in by_key.values())
    assert stage.status()[0]["delivered"] == 90


def test_kafka_message_too_large_is_dead_lettered_not_retried(
    spool_dir: Path, store: SQLiteStore, kafka
) -> None:
    topic = f"useraudit-{uuid.uuid4().hex[:8]}"
    sink = KafkaSink(
        "kafka", kafka.bootstrap, topic, config={"message.max.bytes": 2000}, timeout=20
    )
    events = [Event(json.dumps({"event.id": "small", "organization.id": "a"}).encode())]
    events.append(Event(json.dumps({"event.id": "big", "x": "y" * 5000}).encode()))
    rejections = sink.deliver(events)
    sink.close()
    assert [(r.index, r.reason.split(":")[1].strip()) for r in rejections] == [
        (1, "MSG_SIZE_TOO_LARGE")
    ]
