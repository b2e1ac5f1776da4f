"""Each sink's durable outbox, and the worker that empties it.

The indexer hands every stored event to :class:`SinksStage` (a
:class:`~useraudit.stages.Stage`), which appends it to one outbox per
sink — a small spool of its own under ``<spool>/sinks/<name>/`` — and flushes
the outboxes before the main spool's position moves. From there a
:class:`SinkWorker` thread per sink delivers at its own pace:

* **Own position**: the outbox's committed offsets. A dead sink holds back
  only its own outbox; indexing and the other sinks go on.
* **Bounded backlog**: an outbox holds at most ``backlog_bytes``. A batch
  that does not fit is not queued; its event ids go to the sink's dead
  letters with the reason ``backlog_full`` (the events are in the store, so
  ``useraudit indexer sinks dlq retry`` fetches them from there).
* **At least once**: the outbox position is committed only once the sink
  confirmed the batch; a crash, a lost connection or a refused batch sends
  it again, with the same ``event.id``.
* **Retries** with capped exponential backoff and full jitter, for as long
  as the destination is away; **dead letters** with a reason for what it
  refuses for good; **lag**: the age of the oldest event not yet confirmed.
"""

from __future__ import annotations

import logging
import random
import re
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from useraudit.spool import Batch, SpoolFull, SpoolReader, SpoolWriter
from useraudit.stages import Stage

from ..deadletter import DeadLetters
from .base import Doc, Event, EventFilter, Sink, SinkUnavailable

log = logging.getLogger("useraudit.sinks")

_ENQUEUED = struct.Struct("<d")  # wall-clock time the event entered the outbox
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")

# Dead-letter reasons start with one of these codes (metrics group by them).
BACKLOG_FULL = "backlog_full"
REJECTED = "rejected"
DAMAGED = "damaged"


def sinks_dir(spool_dir: str | Path) -> Path:
    return Path(spool_dir) / "sinks"


def reason_code(reason: str) -> str:
    return reason.split(":", 1)[0]


@dataclass
class SinkStats:
    queued: int = 0  # events appended to the outbox
    filtered: int = 0  # events this sink's filter left out
    sent: int = 0  # events handed to the destination, repeats included
    delivered: int = 0  # events confirmed (position committed past them)
    retried: int = 0  # failed attempts (each followed by a backoff)
    dead_lettered: dict[str, int] = field(default_factory=dict)  # by reason code
    last_error: str = ""

    def dead(self, code: str, n: int) -> None:
        self.dead_lettered[code] = self.dead_lettered.get(code, 0) + n


@dataclass
class SinkSettings:
    """Delivery settings common to every sink (config keys of the same names)."""

    filter: EventFilter = field(default_factory=EventFilter)
    backlog_bytes: int = 256 * 1024 * 1024
    batch_records: int = 500
    batch_bytes: int = 4 * 1024 * 1024
    backoff_base: float = 0.2
    backoff_cap: float = 30.0


class Outbox:
    """One sink's queue on disk: appended by the indexer, read by the worker."""

    def __init__(self, spool_dir: str | Path, name: str, backlog_bytes: int) -> None:
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"sink name {name!r}: use lowercase letters, digits, - and _")
        self.directory = sinks_dir(spool_dir) / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.writer = SpoolWriter(
            self.directory,
            durability="batch",
            segment_bytes=8 * 1024 * 1024,  # small segments: space comes back soon
            max_bytes=backlog_bytes,
            full_policy="reject",
        )
        self.dead_letters = DeadLetters(self.directory / "deadletter.sqlite")

    def reader(self) -> SpoolReader:
        return SpoolReader(self.directory)

    def pending_bytes(self) -> int:
        return SpoolReader(self.directory).pending_bytes()

    def close(self) -> None:
        self.writer.close()
        self.dead_letters.close()


def encode(payload: bytes, enqueued: float) -> bytes:
    return _ENQUEUED.pack(enqueued) + payload


def decode(record: bytes) -> tuple[float, bytes]:
    return _ENQUEUED.unpack_from(record)[0], record[_ENQUEUED.size :]


class SinkWorker:
    """Delivers one outbox to one sink on its own thread."""

    def __init__(
        self,
        sink: Sink,
        outbox: Outbox,
        settings: SinkSettings,
        *,
        idle: float = 0.05,
        max_unconfirmed: int = 64,
    ) -> None:
        self.sink = sink
        self.outbox = outbox
        self.settings = settings
        self.idle = idle
        self.max_unconfirmed = max_unconfirmed
        self.stats = SinkStats()
        self._reader = outbox.reader()
        self._stop = threading.Event()
        self._oldest_unconfirmed: float | None = None  # enqueue time
        self._caught_up = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"useraudit-sink-{sink.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("sink %s: still busy after %.0fs; left to finish", self.sink.name, timeout)
            return
        self._reader.close()
        self.sink.close()

    def lag_seconds(self) -> float:
        """Age of the oldest event queued for this sink and not confirmed yet (0 when none)."""
        oldest = self._oldest_unconfirmed
        return max(0.0, time.time() - oldest) if oldest is not None else 0.0

    def wait_caught_up(self, timeout: float) -> bool:
        """True once everything queued so far is confirmed or dead-lettered."""
        deadline = time.monotonic() + timeout
        target = self.stats.queued
        while True:
            done = self.stats.delivered + self.stats.dead_lettered.get(REJECTED, 0)
            if done >= target and self._caught_up.is_set():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    # -- the loop --------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        # Batches sent but not confirmed yet: (batch, sent at, events delivered).
        unconfirmed: list[tuple[Batch, float, int, float]] = []
        while not self._stop.is_set():
            batch = Batch()
            try:
                if len(unconfirmed) < self.max_unconfirmed:
                    batch = self._reader.read(
                        self.settings.batch_records, self.settings.batch_bytes
                    )
                if batch:
                    self._caught_up.clear()
                    unconfirmed.append(self._send(batch))
                if unconfirmed:
                    safe = self.sink.confirmed_before()
                    while unconfirmed and unconfirmed[0][1] <= safe:
                        done, _, delivered, _ = unconfirmed.pop(0)
                        self._reader.ack(done)
                        self.stats.delivered += delivered
                    self._oldest_unconfirmed = unconfirmed[0][3] if unconfirmed else None
                attempt = 0
            except SinkUnavailable as exc:
                self._failed(str(exc), unconfirmed)
                self._stop.wait(self._backoff(attempt))
                attempt += 1
                continue
            except Exception as exc:  # noqa: BLE001 - a bug in a sink must not end its thread
                log.exception("sink %s: unexpected error", self.sink.name)
                self._failed(f"{type(exc).__name__}: {exc}", unconfirmed)
                self._stop.wait(self._backoff(attempt))
                attempt += 1
                continue
            if not batch:
                if not unconfirmed:
                    self._oldest_unconfirmed = None
                    self._caught_up.set()
                self._stop.wait(self.idle)

    def _send(self, batch: Batch) -> tuple[Batch, float, int, float]:
        enqueued: list[float] = []
        payloads: list[bytes] = []
        for record in batch.records:
            at, payload = decode(record)
            enqueued.append(at)
            payloads.append(payload)
        first = enqueued[0] if enqueued else time.time()
        if self._oldest_unconfirmed is None:
            self._oldest_unconfirmed = first
        events = [Event(p) for p in payloads]
        dead: list[tuple[str | None, str, bytes]] = [
            (None, f"{DAMAGED}: {d.reason} (outbox {d.segment}, offset {d.offset})", d.raw)
            for d in batch.damaged
        ]
        rejected = self.sink.deliver(events) if events else []
        self.stats.sent += len(events)
        for rejection in rejected:
            event = events[rejection.index]
            dead.append((event.id, f"{REJECTED}: {rejection.reason}", event.raw))
        if dead:
            # Durable before the position can move past them.
            self.outbox.dead_letters.add(dead)
            for _, reason, _ in dead:
                self.stats.dead(reason_code(reason), 1)
            log.warning(
                "sink %s: %d dead-lettered (first: %s)", self.sink.name, len(dead), dead[0][1]
            )
        return batch, time.monotonic(), len(events) - len(rejected), first

    def _failed(self, reason: str, unconfirmed: list) -> None:
        self.stats.retried += 1
        self.stats.last_error = reason
        log.warning("sink %s: %s; sending again after a pause", self.sink.name, reason)
        # Everything not confirmed goes again, from the committed position.
        unconfirmed.clear()
        self._reader.rewind()

    def _backoff(self, attempt: int) -> float:
        cap = min(self.settings.backoff_cap, self.settings.backoff_base * (2**attempt))
        return random.uniform(cap / 2, cap)


@dataclass
class ConfiguredSink:
    sink: Sink
    settings: SinkSettings


class SinksStage(Stage):
    """The indexer's hook: queue every stored event for each configured sink."""

    name = "sinks"

    def __init__(
        self,
        spool_dir: str | Path,
        sinks: Sequence[ConfiguredSink],
        *,
        start: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        names = [c.sink.name for c in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must be unique: {names}")
        self.clock = clock
        self.workers: dict[str, SinkWorker] = {}
        for configured in sinks:
            outbox = Outbox(spool_dir, configured.sink.name, configured.settings.backlog_bytes)
            self.workers[configured.sink.name] = SinkWorker(
                configured.sink, outbox, configured.settings
            )
        if start:
            self.start()

    def start(self) -> None:
        for worker in self.workers.values():
            worker.start()

    def delivered(self, docs: Sequence[Doc], results: Sequence[object] = ()) -> None:
        if not docs or not self.workers:
            return
        now = self.clock()
        payloads = [encode(orjson.dumps(doc), now) for doc in docs]
        for worker in self.workers.values():
            wanted = worker.settings.filter
            if wanted.everything:
                mine = payloads
            else:
                mine = [p for p, doc in zip(payloads, docs, strict=True) if wanted(doc)]
                worker.stats.filtered += len(docs) - len(mine)
            if not mine:
                continue
            try:
                worker.outbox.writer.append_many(mine)
                worker.stats.queued += len(mine)
            except SpoolFull as exc:
                self._overflow(worker, mine, str(exc))

    def _overflow(self, worker: SinkWorker, payloads: list[bytes], why: str) -> None:
        # The store has these events: keep their ids (not the bytes) so the
        # dead letters stay small however long the sink is away.
        ids = [Event(decode(p)[1]).id for p in payloads]
        reason = f"{BACKLOG_FULL}: {why}"
        worker.outbox.dead_letters.add((eid, reason, b"") for eid in ids)
        worker.stats.dead(BACKLOG_FULL, len(ids))
        log.error("sink %s: backlog full, %d event ids dead-lettered", worker.sink.name, len(ids))

    def flush(self) -> None:
        for worker in self.workers.values():
            worker.outbox.writer.flush()

    def wait_caught_up(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        return all(
            w.wait_caught_up(max(0.0, deadline - time.monotonic())) for w in self.workers.values()
        )

    def status(self) -> list[dict[str, Any]]:
        out = []
        for name, worker in self.workers.items():
            stats = worker.stats
            out.append(
                {
                    "sink": name,
                    "kind": worker.sink.kind,
                    "queued": stats.queued,
                    "filtered": stats.filtered,
                    "sent": stats.sent,
                    "delivered": stats.delivered,
                    "retried": stats.retried,
                    "dead_lettered": dict(stats.dead_lettered),
                    "lag_seconds": round(worker.lag_seconds(), 3),
                    "backlog_bytes": worker.outbox.pending_bytes(),
                    "last_error": stats.last_error,
                }
            )
        return out

    def close(self) -> None:
        for worker in self.workers.values():
            worker.outbox.writer.flush()
        for worker in self.workers.values():
            worker.stop()
        for worker in self.workers.values():
            worker.outbox.close()


def outbox_status(spool_dir: str | Path) -> list[dict[str, Any]]:
    """What is on disk for every sink that ever ran on this spool (no config needed)."""
    root = sinks_dir(spool_dir)
    out = []
    for folder in sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []:
        letters = DeadLetters(folder / "deadletter.sqlite")
        try:
            by_reason: dict[str, int] = {}
            for letter in letters.list(1_000_000):
                code = reason_code(letter.reason)
                by_reason[code] = by_reason.get(code, 0) + 1
        finally:
            letters.close()
        out.append(
            {
                "sink": folder.name,
                "backlog_bytes": SpoolReader(folder).pending_bytes(),
                "dead_letters": by_reason,
            }
        )
    return out


def requeue_dead_letters(
    spool_dir: str | Path,
    name: str,
    fetch: Callable[[list[str]], dict[str, Doc]],
    *,
    backlog_bytes: int = 256 * 1024 * 1024,
    limit: int = 100_000,
) -> dict[str, int]:
    """Put a sink's dead letters back in its outbox; the running worker sends them.

    Letters that kept their bytes are queued as they are; ``backlog_full``
    letters kept only the event id, and ``fetch`` (the store's ``get``)
    supplies the document. Queued letters leave the dead-letter store;
    those the store no longer has stay, with the reason.
    """
    folder = sinks_dir(spool_dir) / name
    if not folder.is_dir():
        raise ValueError(f"no sink named {name!r} under {sinks_dir(spool_dir)}")
    letters = DeadLetters(folder / "deadletter.sqlite")
    writer = SpoolWriter(folder, durability="batch", max_bytes=backlog_bytes, full_policy="reject")
    queued = missing = 0
    try:
        batch = letters.list(limit)
        wanted = [letter.event_id for letter in batch if not letter.raw and letter.event_id]
        found = fetch(wanted) if wanted else {}
        now = time.time()
        done: list[int] = []
        payloads: list[bytes] = []
        for letter in batch:
            if letter.raw:
                payloads.append(encode(letter.raw, now))
            elif letter.event_id in found:
                payloads.append(encode(orjson.dumps(found[letter.event_id]), now))
            else:
                letters.failed_again(letter.id, f"{letter.reason} (requeue: not in the store)")
                missing += 1
                continue
            done.append(letter.id)
        if payloads:
            writer.append_many(payloads)
            writer.flush()
        letters.delete(done)
        queued = len(done)
    finally:
        writer.close()
        letters.close()
    return {"queued": queued, "missing": missing}
