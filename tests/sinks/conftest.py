"""Shared pieces of the sink tests: events in a spool, an indexer with sinks, a test CA."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.kafka import KafkaBroker
from support.receivers import WebhookReceiver
from support.rsyslog import Rsyslog
from support.tls import Certificates, make_certificates

from useraudit.indexer.shipper import Indexer
from useraudit.indexer.sinks.outbox import ConfiguredSink, SinksStage
from useraudit.middleware.recorder import Recorder
from useraudit.store.sqlite import SQLiteStore

SECRET = b"test-secret-0123456789abcdef"


def record_events(spool: Path, n: int, *, start: int = 0, accounts: int = 3) -> list[str]:
    rec = Recorder(spool, durability="sync")
    ids = []
    for i in range(start, start + n):
        event_id = rec.record(
            "user.signed_in" if i % 5 else "user.sign_in_failed",
            outcome="failure" if i % 5 == 0 else "success",
            account=f"acct-{i % accounts}",
            user={"id": f"u{i}", "name": f"user {i}", "email": f"u{i}@example.com"},
            project=f"p{i % 4}",
            comments=f'event {i} with "quotes", ] brackets and \\ backslash',
        )
        assert event_id
        ids.append(event_id)
    rec.close()
    return ids


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("sink-tls"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    s.install()
    yield s
    s.close()


@pytest.fixture
def receiver(certs: Certificates) -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(SECRET, certs.cert, certs.key)
    yield r
    r.close()


class RunningIndexer:
    """An indexer with sinks running on a thread, as `useraudit indexer run` does."""

    def __init__(self, spool: Path, store: SQLiteStore, sinks: list[ConfiguredSink]) -> None:
        self.stage = SinksStage(spool, sinks)
        self.indexer = Indexer(spool, store, stages=[self.stage], commit_interval=0.05)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.indexer.run, args=(self.stop, 0.05))
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        self.indexer.close()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """One real Kafka broker for the session, stopped by PID however the session ends."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    server = Rsyslog(tmp_path / "rsyslog")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def rsyslog_tls(tmp_path: Path, certs: Certificates) -> Iterator[Rsyslog]:
    server = Rsyslog(tmp_path / "rsyslog-tls", certs)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def consume(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list:
    """Every message of ``topic`` from the start, once ``expected`` arrived or time is up."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
        # a little longer, to see repeats beyond `expected`
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        consumer.close()
    return messages
