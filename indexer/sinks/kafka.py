"""Apache Kafka: one topic, the account as the message key.

The client is confluent-kafka (librdkafka): its wheels carry the C library,
the producer's batching, compression and retries run on librdkafka's own
threads (not under the GIL, so the indexer keeps its pace), and it has the
idempotent producer, which makes the broker drop its own retry duplicates.

Every message: key = ``organization.id`` (one account's events stay in one
partition, in order), value = the stored document as JSON, header
``event.id``. A batch is delivered once the broker acknowledged every
message with ``acks=all``; a message the broker refuses for good (too large)
is dead-lettered; anything else (broker down, timeout) sends the whole batch
again after a backoff, so a consumer may see an event id twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from .base import Event, Rejection, Sink, SinkUnavailable

log = logging.getLogger("useraudit.sinks")

# Errors about one message that a retry cannot fix.
_PERMANENT = {"MSG_SIZE_TOO_LARGE", "INVALID_MSG_SIZE", "INVALID_RECORD", "_MSG_TIMED_OUT_NEVER"}


class KafkaSink(Sink):
    kind = "kafka"

    def __init__(
        self,
        name: str,
        bootstrap_servers: str,
        topic: str,
        *,
        config: dict[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> None:
        from confluent_kafka import KafkaException, Producer

        self._kafka_exception = KafkaException

        super().__init__(name)
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        self.timeout = timeout
        settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "compression.type": "lz4",
            # Give up on a message within our timeout, so a batch we send
            # again is never still queued inside the client as well.
            "message.timeout.ms": int(timeout * 1000),
            "socket.timeout.ms": int(min(timeout, 60) * 1000),
            "client.id": f"useraudit-{name}",
            "error_cb": self._client_error,
            "logger": logging.getLogger("useraudit.sinks.kafka"),
        }
        settings.update(config or {})
        self._producer = Producer(settings)

    def describe(self) -> str:
        return f"kafka {self.name} → {self.bootstrap_servers} topic {self.topic}"

    def _client_error(self, error: Any) -> None:
        log.warning("kafka %s: %s", self.name, error)

    def deliver(self, docs: Sequence[Event]) -> list[Rejection]:
        failures: dict[int, Any] = {}

        def report(index: int) -> Any:
            def on_delivery(error: Any, _message: Any) -> None:
                if error is not None:
                    failures[index] = error

            return on_delivery

        refused: list[Rejection] = []
        for i, event in enumerate(docs):
            account = event.doc.get("organization.id")
            while True:
                try:
                    self._producer.produce(
                        self.topic,
                        value=event.raw,
                        key=str(account).encode() if account is not None else None,
                        headers=[("event.id", str(event.id or "").encode())],
                        on_delivery=report(i),
                    )
                    break
                except BufferError:  # the client's queue is full: let it drain
                    self._producer.poll(0.1)
                except self._kafka_exception as exc:  # refused before sending (too large)
                    error = exc.args[0]
                    if error.name() not in _PERMANENT:
                        raise SinkUnavailable(f"kafka: {error.name()}: {error.str()}") from exc
                    refused.append(Rejection(i, f"kafka: {error.name()}: {error.str()}"))
                    break
        left = self._producer.flush(self.timeout + 5)
        if left:
            raise SinkUnavailable(
                f"kafka {self.bootstrap_servers}: {left} messages not acknowledged"
            )
        rejections = refused
        for index, error in sorted(failures.items()):
            if error.name() in _PERMANENT:
                rejections.append(Rejection(index, f"kafka: {error.name()}: {error.str()}"))
            else:
                raise SinkUnavailable(
                    f"kafka {self.bootstrap_servers}: {error.name()}: {error.str()}"
                )
        return sorted(rejections, key=lambda r: r.index)

    def close(self) -> None:
        self._producer.flush(5)
