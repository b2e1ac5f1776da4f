"""The indexer: spool → enrich → Store, at least once, duplicates impossible.

Usage::

    from useraudit.indexer.shipper import Indexer
    from useraudit.store import open_store

    with Indexer("/var/lib/useraudit/spool", open_store("http://127.0.0.1:9200")) as ix:
        ix.run(stop_event)        # or ix.drain() to ship what is there and return

The guarantees and how each is kept:

* **Nothing lost**: a spool position is committed only after every record
  before it is stored or dead-lettered (durably). A crash anywhere re-reads
  from the last commit.
* **Nothing duplicated**: the store writes by event id with create
  semantics, so what a crash re-sends is answered "duplicate" and counted
  as delivered.
* **Per-item retries**: only the items a bulk answer marks 429/5xx are sent
  again, with capped exponential backoff and full jitter; the rest of the
  chunk is not repeated.
* **Nothing dropped silently**: rejected items, damaged spool records and
  events that fail enrichment go to the dead-letter store with the reason.
  An item still failing after ``max_item_retries`` goes there too.
* **Backend down**, or turning the indexer away (credentials, permissions,
  TLS trust: :class:`~useraudit.store.base.StoreRefused`, logged as an
  error): the batch is held and retried (backoff capped at ``backoff_cap``
  seconds) until it goes through; the spool keeps filling up to its bound
  meanwhile.

The next batch is read and enriched on a helper thread while the current one
is in flight, so Python's share of the work overlaps the backend's.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from useraudit._json import loads
from useraudit.spool import Batch, SpoolReader
from useraudit.stages import Stage, check_order
from useraudit.store.base import Store, StoreRefused, StoreUnavailable, WriteResult

from .deadletter import DeadLetters
from .enrich import Enricher
from .watch import SpoolWatch

log = logging.getLogger("useraudit.indexer")

# Commits tried when a drain or a stop ends, before the positions are left
# held: a restarted detection worker fails one flush on purpose, and a batch
# that kills it takes up to three restarts to be set aside (detect/worker.py).
FINAL_COMMIT_TRIES = 5
# A due commit waits for a busy stage once this many commit intervals passed.
COMMIT_DEFER_LIMIT = 4


@dataclass
class IndexerStats:
    read: int = 0
    shipped: int = 0
    duplicates: int = 0
    retried: int = 0
    dead_lettered: int = 0
    damaged: int = 0
    unavailable_waits: int = 0
    batches: int = 0
    stage_errors: int = 0
    # Spools that get events while no indexer reads them (see useraudit.spool_watch).
    unread_spools: int = 0
    started: float = field(default_factory=time.monotonic)
    # The process's CPU time (every thread) when counting started.
    cpu_started: float = field(default_factory=time.process_time)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("started")
        out.pop("cpu_started")
        out["elapsed_s"] = round(time.monotonic() - self.started, 3)
        out["cpu_s"] = round(time.process_time() - self.cpu_started, 3)
        return out


@dataclass
class _Prepared:
    batch: Batch
    docs: list[dict]
    raws: list[bytes]
    dead: list[tuple[str | None, str, bytes]]


class Indexer:
    """Ships one spool directory to one Store. One Indexer per spool at a time.

    Args:
        spool_dir: the spool the host apps write.
        store: where events go (OpenSearchStore, SQLiteStore).
        dead_letters: defaults to ``<spool_dir>/deadletter.sqlite``.
        enricher: raw event → document (default :class:`Enricher`).
        batch_records / batch_bytes: bulk size bounds (bulk throughput
            plateaus around 5–15 MiB per request).
        max_item_retries: attempts for a 429/5xx item before it is dead-lettered.
        unavailable_timeout: give up (raise StoreUnavailable) after the
            backend was unreachable this long; None waits forever.
        commit_interval: seconds between spool position commits (each costs
            two fsyncs); what a crash can make the indexer re-send, as
            duplicates the store ignores. A commit falling due while a stage
            is busy (:meth:`~useraudit.stages.Stage.ready`) waits for it only
            after ``COMMIT_DEFER_LIMIT`` intervals.
        stages: pipeline stages (GeoIP, detection, sinks, hashing), see
            :mod:`useraudit.stages`.
    """

    def __init__(
        self,
        spool_dir: str | Path,
        store: Store,
        *,
        dead_letters: DeadLetters | None = None,
        enricher: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        batch_records: int = 2000,
        batch_bytes: int = 8 * 1024 * 1024,
        max_item_retries: int = 8,
        backoff_base: float = 0.1,
        backoff_cap: float = 10.0,
        unavailable_timeout: float | None = None,
        commit_interval: float = 0.5,
        sleep: Callable[[float], Any] = time.sleep,
        stages: Sequence[Stage] = (),
    ) -> None:
        check_order(stages)  # before anything is opened
        self.spool_dir = Path(spool_dir)
        self.reader = SpoolReader(self.spool_dir)
        self.store = store
        self.dead_letters = dead_letters or DeadLetters(self.spool_dir / "deadletter.sqlite")
        self.enrich = enricher or Enricher()
        self.batch_records = batch_records
        self.batch_bytes = batch_bytes
        self.max_item_retries = max_item_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.unavailable_timeout = unavailable_timeout
        self.sleep = sleep
        self.commit_interval = commit_interval
        self.stages = list(stages)
        self._uncommitted = Batch()
        self._last_commit = time.monotonic()
        self.stats = IndexerStats()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="useraudit-prepare")

    def __enter__(self) -> Indexer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        try:
            self._commit_at_end()
        finally:
            for stage in self.stages:
                stage.close()
            self.reader.close()
            self.dead_letters.close()

    # -- loops ----------------------------------------------------------------

    def drain(self) -> IndexerStats:
        """Ship everything in the spool now, then return the counters."""
        pending: Future[_Prepared] = self._pool.submit(self._prepare)
        while True:
            prepared = pending.result()
            if not prepared.batch:
                self._commit_at_end()
                return self.stats
            pending = self._pool.submit(self._prepare)  # read ahead while this one ships
            try:
                self._ship(prepared)
            except BaseException:
                # The read-ahead moved the cursor past an unshipped batch: go back.
                pending.result()
                self.reader.rewind()
                raise

    def detection_stats(self) -> Any:
        """The detection stage's ``DetectStats`` (both detection stages keep them), or None."""
        stage = next((s for s in self.stages if s.name == "detect"), None)
        return stage.stats if stage is not None else None  # type: ignore[attr-defined]

    def heartbeat_details(self) -> dict[str, Any]:
        """What the heartbeat tells ``useraudit doctor`` besides "I read this spool"."""
        stats = self.detection_stats()
        # Only the worker process sets events aside; the in-process stage counts 0.
        return {} if stats is None else {"detect_set_aside": stats.events_set_aside}

    def run(
        self, stop: threading.Event, idle: float = 0.2, report_every: float = 60.0
    ) -> IndexerStats:
        """Ship until ``stop`` is set, polling the spool every ``idle`` seconds."""
        last_report = time.monotonic()
        watch = SpoolWatch(
            self.spool_dir, self.stats, store=self.store.url, details=self.heartbeat_details
        )
        while not stop.is_set():
            before = self.stats.read + self.stats.damaged
            watch.tick()
            self.drain()
            if time.monotonic() - last_report >= report_every:
                log.info("indexer: %s", json.dumps(self.stats.as_dict()))
                last_report = time.monotonic()
            if self.stats.read + self.stats.damaged == before:
                stop.wait(idle)
        return self.stats

    # -- one batch ------------------------------------------------------------

    def _prepare(self) -> _Prepared:
        batch = self.reader.read(self.batch_records, self.batch_bytes)
        docs: list[dict] = []
        raws: list[bytes] = []
        dead: list[tuple[str | None, str, bytes]] = []
        for n, payload in enumerate(batch.records):
            if n % 64 == 63:
                # Let the shipping thread take the GIL when its response arrives,
                # instead of waiting out a whole switch interval per read.
                time.sleep(0)
            try:
                raw = loads(payload)
                if not isinstance(raw, dict):
                    raise ValueError("spool record is not a JSON object")
            except Exception as exc:  # noqa: BLE001 - one poison record must not stop shipping
                dead.append(
                    (None, f"undecodable spool record: {type(exc).__name__}: {exc}", payload)
                )
                continue
            try:
                doc = self.enrich(raw)
            except Exception as exc:  # noqa: BLE001 - any bug here must dead-letter, not stop shipping
                log.exception("indexer: enrichment failed")
                dead.append(
                    (_event_id(raw), f"enrichment failed: {type(exc).__name__}: {exc}", payload)
                )
                continue
            self._prepare_stages(doc)
            docs.append(doc)
            raws.append(payload)
        for d in batch.damaged:
            dead.append((None, f"{d.reason} (segment {d.segment}, offset {d.offset})", d.raw))
        return _Prepared(batch, docs, raws, dead)

    def _ship(self, prepared: _Prepared) -> None:
        self.stats.read += len(prepared.batch.records)
        self.stats.damaged += len(prepared.batch.damaged)
        dead = list(prepared.dead)
        stored: list[WriteResult | None] = [None] * len(prepared.docs)
        todo = list(range(len(prepared.docs)))
        attempt = 0
        while todo:
            sent = [prepared.docs[i] for i in todo]
            results = self._write_until_reachable(sent)
            retry: list[int] = []
            for i, result in zip(todo, results, strict=True):
                if result.status == "created":
                    self.stats.shipped += 1
                    stored[i] = result
                elif result.status == "duplicate":
                    self.stats.duplicates += 1
                    stored[i] = result
                elif result.status == "retry" and attempt < self.max_item_retries:
                    retry.append(i)
                else:
                    reason = (
                        result.reason
                        if result.status == "rejected"
                        else (f"gave up after {attempt + 1} attempts: {result.reason}")
                    )
                    dead.append((prepared.docs[i].get("event.id"), reason, prepared.raws[i]))
            if retry:
                self.stats.retried += len(retry)
                self.sleep(self._backoff(attempt))
                attempt += 1
            todo = retry
        if dead:
            self.dead_letters.add(dead)
            self.stats.dead_lettered += len(dead)
            log.warning("indexer: %d events dead-lettered (first: %s)", len(dead), dead[0][1])
        # Committing a position costs two fsyncs; do it at most every
        # commit_interval. A crash re-sends at most that much, and re-sent
        # events are answered "duplicate": loss is impossible either way.
        # The positions of earlier batches are committed before this one is
        # handed to the stages: their stages had this batch's write to finish,
        # so flush() rarely waits, and this batch's stage work (detection)
        # overlaps the next write instead of holding it up.
        # A stage still busy with the previous batch (detection on its worker)
        # would make the commit wait for it: put the commit off, a little,
        # and write the next batch meanwhile.
        since = time.monotonic() - self._last_commit
        if since >= self.commit_interval and (
            since >= COMMIT_DEFER_LIMIT * self.commit_interval or self._stages_ready()
        ):
            self.commit()
        if self.stages:
            held = [(doc, r) for doc, r in zip(prepared.docs, stored, strict=True) if r]
            if held:
                self._deliver_to_stages([doc for doc, _ in held], [r for _, r in held])
        for segment, offset in prepared.batch.cursor.items():
            if offset > self._uncommitted.cursor.get(segment, -1):
                self._uncommitted.cursor[segment] = offset
        self.stats.batches += 1

    def commit(self) -> bool:
        """Commit the spool positions of every batch shipped so far; False when held."""
        try:
            for stage in self.stages:  # durable before the spool forgets the events
                stage.flush()
        except (StoreUnavailable, OSError) as exc:
            # Positions stay where they are: a crash now re-delivers, never loses.
            log.warning("indexer: a stage could not finish (%s); positions held", exc)
            return False
        if self._uncommitted.cursor:
            self.reader.ack(self._uncommitted)
            self._uncommitted = Batch()
        self._last_commit = time.monotonic()
        return True

    def _commit_at_end(self) -> None:
        for _ in range(FINAL_COMMIT_TRIES):
            if self.commit():
                return

    def _write_until_reachable(self, docs: list[dict]) -> list:
        waited_since: float | None = None
        attempt = 0
        while True:
            try:
                return self.store.write(docs)
            except StoreUnavailable as exc:
                now = time.monotonic()
                waited_since = waited_since or now
                if (
                    self.unavailable_timeout is not None
                    and now - waited_since > self.unavailable_timeout
                ):
                    raise
                self.stats.unavailable_waits += 1
                delay = self._backoff(attempt)
                if isinstance(exc, StoreRefused):  # an operator must act: say so loudly
                    log.error("indexer: %s; holding the batch, retrying in %.1fs", exc, delay)
                else:
                    log.warning("indexer: store unavailable (%s); retrying in %.1fs", exc, delay)
                self.sleep(delay)
                attempt += 1

    def _stages_ready(self) -> bool:
        return all(ready() for stage in self.stages if (ready := getattr(stage, "ready", None)))

    def _prepare_stages(self, doc: dict) -> None:
        for stage in self.stages:
            try:
                stage.prepare(doc)
            except Exception:  # noqa: BLE001 - a stage never costs an event
                self.stats.stage_errors += 1
                log.exception("indexer: stage %s failed preparing an event", stage.name)

    def _deliver_to_stages(self, docs: list[dict], results: list[WriteResult]) -> None:
        """Hand stored events to each stage; a store or local fault holds the batch."""
        # Spool order within the batch, as the stages are promised.
        for stage in self.stages:
            attempt = 0
            while True:
                try:
                    stage.delivered(docs, results)
                    break
                except (StoreUnavailable, OSError) as exc:
                    self.stats.unavailable_waits += 1
                    delay = self._backoff(attempt)
                    log.warning(
                        "indexer: stage %s: %s; retrying in %.1fs",
                        stage.name,
                        exc,
                        delay,
                    )
                    self.sleep(delay)
                    attempt += 1
                except Exception:  # noqa: BLE001 - the events are stored; count and go on
                    self.stats.stage_errors += 1
                    log.exception("indexer: stage %s failed on a batch", stage.name)
                    break

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of many indexers hitting one cluster.
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * (2**attempt)))

    # -- dead letters ---------------------------------------------------------

    def retry_dead_letters(self, limit: int = 10_000) -> dict[str, int]:
        """Send dead-lettered events again; those stored leave the DLQ."""
        letters = self.dead_letters.list(limit)
        delivered, failed = [], 0
        for letter in letters:
            try:
                raw = json.loads(letter.raw)
                doc = self.enrich(raw)
                self._prepare_stages(doc)
                result = self._write_until_reachable([doc])[0]
            except Exception as exc:  # noqa: BLE001 - report and keep the letter
                self.dead_letters.failed_again(
                    letter.id, f"retry failed: {type(exc).__name__}: {exc}"
                )
                failed += 1
                continue
            if result.delivered:
                delivered.append(letter.id)
                if self.stages:
                    self._deliver_to_stages([doc], [result])
            else:
                self.dead_letters.failed_again(letter.id, result.reason)
                failed += 1
        for stage in self.stages:
            stage.flush()
        self.dead_letters.delete(delivered)
        return {"delivered": len(delivered), "still_failing": failed}


def _event_id(raw: dict[str, Any]) -> str | None:
    value = raw.get("event.id")
    return str(value) if value else None
