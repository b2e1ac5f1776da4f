"""Detection in a worker process of its own, beside an indexer on a SQLite store.

SQLite lives in the indexer's process, so the indexer uses one core and the
machine's others sit idle, while a detection *thread* would share the
indexer's GIL. :class:`DetectionProcess` is the indexer stage that runs
the engine in a child process instead:

* the indexer's thread keeps the cheap part: it picks the events some
  enabled rule looks at (:meth:`DetectionEngine.examined`) and hands them
  over, one pickled message per batch, through a pipe;
* the child owns its own connection to the store's file (WAL lets a second
  process write; a write waits up to the busy timeout for the indexer's),
  runs :class:`DetectionEngine` with the state kept in memory between
  batches, stores each batch's alerts and answers each message;
* ``flush()`` (before the indexer commits spool positions) asks the child to
  store the changed state and fsync, and waits for its answer: every batch
  handed over is then stored and durable. Past ``flush_timeout``, or when
  the child failed, it raises ``StoreUnavailable`` and the positions stay.
* A child that dies is logged as an error; the next ``delivered``/``flush``
  starts another, hands it every batch since the last successful flush
  again (the alerts merge by id, as after a crash of the indexer), and that
  ``flush`` fails, so the positions move only once the new child has stored
  them. A child never outlives the indexer: it stops at the pipe's end of
  file and, on Linux, the kernel kills it when the parent dies.
* A batch that children die on, :data:`DEATHS_BEFORE_SET_ASIDE` times
  before a commit, is set aside: the children process batches in order, so the one
  they died on is the first not answered. Its events are stored already;
  detection skips them, logs their ids as an error and counts them
  (``events_set_aside``), and the batches after it go on. Without this one
  event that crashes a rule would hold the spool positions forever.

Rules, settings and the GeoIP levels go to the child pickled (the spawn
start method: the child imports host rules by module and class name). A
rule that cannot be pickled keeps detection on a thread
(:func:`worker_possible` says why).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from useraudit.stages import Stage
from useraudit.store.base import StoreError, StoreUnavailable

from .engine import DetectionEngine, DetectStats

log = logging.getLogger("useraudit.detect")

# Batches handed over and not yet answered before delivered() waits: like the
# thread's bounded queue, a child that falls behind slows the indexer.
MAX_IN_FLIGHT = 4
PR_SET_PDEATHSIG = 1
LOCK_POLL_S = 0.001
# Children that may die working on one batch before detection skips it.
DEATHS_BEFORE_SET_ASIDE = 3


@dataclass
class _Handed:
    """A batch handed to the child since the last successful flush."""

    payload: bytes
    seq: int = 0  # its message number with the current child (0: not sent to it)
    deaths: int = 0  # children that died with it in hand


def worker_possible(engine: DetectionEngine) -> str | None:
    """None when ``engine``'s rules and settings can go to a child process, else why not."""
    try:
        pickle.dumps((engine.rules, engine.settings), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means: stay on a thread
        return f"its rules or settings cannot be pickled ({type(exc).__name__}: {exc})"
    return None


class DetectionProcess(Stage):
    """The detection stage, with the engine's work done in a child process.

    Args:
        engine: the engine as the indexer would run it; here it only picks
            the events to hand over, and says what is on (``rules``,
            ``status``). Its rules, settings and GeoIP levels are the child's.
        path: the SQLite file of the store (alerts and state live there).
        on_alert: called (on a helper thread) when the child stored an alert
            created or updated, e.g. to wake the notifier.
        flush_timeout: seconds ``flush()`` waits for the child.
    """

    name = "detect"

    def __init__(
        self,
        engine: DetectionEngine,
        path: Path,
        *,
        on_alert: Any = None,
        flush_timeout: float = 30.0,
        busy_timeout_ms: int = 10_000,
    ) -> None:
        self.engine = engine
        self.rules = engine.rules
        self.path = Path(path)
        self.on_alert = on_alert
        self.flush_timeout = flush_timeout
        self.busy_timeout_ms = busy_timeout_ms
        self.stats = DetectStats()
        self._earlier = DetectStats()  # what children that died had done
        self._context = multiprocessing.get_context("spawn")
        self._cond = threading.Condition()
        self._seq = 0  # the last message sent
        self._answered = 0  # the last message the child answered
        self._answers: dict[int, tuple[str, str]] = {}  # flush seq -> (outcome, message)
        self._since_flush: list[_Handed] = []
        self._restarted = False  # a child died since the last flush
        self._cpu_start = 0.0
        self._cpu = 0.0
        self._restarts = 0
        self._closed = False
        self._start()

    def status(self, account: str) -> list[dict[str, Any]]:
        return self.engine.status(account)

    # -- the child's lifetime --------------------------------------------------------

    def _start(self) -> None:
        here, there = self._context.Pipe(duplex=True)
        proc = self._context.Process(
            target=_child_main,
            args=(
                there,
                self.path,
                self.engine.rules,
                self.engine.settings,
                sorted(self.engine.geo),
                self.busy_timeout_ms,
                self.engine.state_ttl,
                self.engine.max_cached_keys,
            ),
            name="useraudit-detect",
            daemon=True,
        )
        proc.start()
        there.close()  # only the child holds its end: its death is our end of file
        with self._cond:
            self._conn = here
            self._proc = proc
            self._alive = True
            self._seq = self._answered = 0
            self._answers = {}
            self._cpu_start = 0.0
        self._reader = threading.Thread(
            target=self._read, args=(here,), name="useraudit-detect-answers", daemon=True
        )
        self._reader.start()
        # The child's "ready" (its start-up CPU, not counted as detection's).
        with self._cond:
            self._cond.wait_for(lambda: self._cpu_start > 0 or not self._alive, 60)
            started = self._cpu_start > 0
        if not started:
            if proc.is_alive():
                proc.kill()
            proc.join(timeout=5)
            raise StoreError(
                f"the detection worker process did not start (exit code {proc.exitcode})"
            )

    def _read(self, conn: multiprocessing.connection.Connection) -> None:
        while True:
            try:
                answer = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError, TypeError):  # TypeError: closed under the read
                with self._cond:
                    if conn is self._conn:
                        self._alive = False
                    self._cond.notify_all()
                return
            kind, seq, cpu, stats = answer[:4]
            alerted = False
            with self._cond:
                if conn is not self._conn:
                    return
                self._cpu = cpu
                if kind == "ready":
                    self._cpu_start = cpu or 1e-9
                else:
                    self._answered = max(self._answered, seq)
                    self.stats = self._earlier.plus(DetectStats(**stats))
                    if kind in ("flushed", "failed"):
                        self._answers[seq] = (kind, answer[4])
                    alerted = bool(answer[4]) if kind == "done" else False
                self._cond.notify_all()
            if alerted and self.on_alert is not None:
                try:
                    self.on_alert()
                except Exception:  # noqa: BLE001 - the notifier polls too; never stop reading
                    log.exception("detect: on_alert failed")

    def _restart_if_dead(self) -> bool:
        """Start another child when this one died, and hand it the batches since the last flush."""
        with self._cond:
            alive = self._alive
        if alive and self._proc.is_alive():
            return False
        if self._proc.is_alive():  # its pipe broke: it cannot be trusted with more
            self._proc.kill()
        self._proc.join(timeout=5)
        # Its reader ends at the pipe's end of file; the pipe is closed only then.
        self._reader.join(timeout=5)
        with self._cond:
            self._earlier = self.stats  # replaced, never changed in place
        log.error("detect: the detection worker process died (exit code %s)", self._proc.exitcode)
        self._blame_the_batch_in_hand()
        log.error(
            "detect: starting another detection worker process and handing it the %d batches"
            " since the last commit again",
            len(self._since_flush),
        )
        self._conn.close()
        self._restarts += 1
        self._restarted = True
        try:
            self._start()
        except StoreError as exc:
            raise StoreUnavailable(str(exc)) from exc
        for handed in self._since_flush:
            handed.seq = 0  # numbers of the dead child mean nothing to the new one
        for handed in self._since_flush:
            handed.seq = self._send(handed.payload)
        return True

    def _blame_the_batch_in_hand(self) -> None:
        """Count a death against the first batch the dead child had not answered."""
        with self._cond:
            answered = self._answered
        for handed in self._since_flush:
            if handed.seq > answered:
                handed.deaths += 1
                if handed.deaths >= DEATHS_BEFORE_SET_ASIDE:
                    self._since_flush.remove(handed)
                    self._set_aside(handed)
                return

    def _set_aside(self, handed: _Handed) -> None:
        _kind, docs = pickle.loads(handed.payload)
        ids = [str(doc.get("event.id")) for doc in docs]
        log.error(
            "detect: the detection worker process died %d times working on one batch;"
            " detection skips its %d events, which are stored: %s",
            handed.deaths,
            len(ids),
            ", ".join(ids),
        )
        with self._cond:
            self._earlier = self._earlier.plus(DetectStats(events_set_aside=len(ids)))
            self.stats = self._earlier

    def _send(self, payload: bytes) -> int:
        """Send one message (a pickled (kind, seq, ...) with seq the next number)."""
        with self._cond:
            self._seq += 1
            seq = self._seq
        try:
            self._conn.send_bytes(pickle.dumps(seq) + payload)
        except OSError as exc:
            with self._cond:
                self._alive = False
            raise StoreUnavailable(f"the detection worker process is gone ({exc})") from exc
        return seq

    # -- the stage -------------------------------------------------------------------

    def delivered(self, docs: Sequence[dict], results: Sequence[object] = ()) -> None:
        examined = self.engine.examined(docs)
        if not examined:
            return
        payload = pickle.dumps(("batch", examined), protocol=pickle.HIGHEST_PROTOCOL)
        deadline = time.monotonic() + self.flush_timeout
        with self._cond:
            while self._alive and self._seq - self._answered >= MAX_IN_FLIGHT:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreUnavailable("the detection worker process is not keeping up")
                self._cond.wait(left)
        self._restart_if_dead()  # a new child gets the batches before this one first
        handed = _Handed(payload)
        self._since_flush.append(handed)
        try:
            handed.seq = self._send(payload)
        except StoreUnavailable:
            self._restart_if_dead()  # hands this batch over too

    def ready(self) -> bool:
        """Whether every batch handed over was answered (``flush`` would not wait for one)."""
        with self._cond:
            return self._answered >= self._seq

    def flush(self) -> None:
        """Wait until the child stored every batch handed over and synced; else raise."""
        if self._closed:
            return
        self._restart_if_dead()
        if self._restarted:
            self._restarted = False
            raise StoreUnavailable(
                "the detection worker process died; spool positions held until another"
                " stored the batches handed to it"
            )
        if not self._since_flush and self.ready():
            return
        try:
            seq = self._send(pickle.dumps(("flush", None), protocol=pickle.HIGHEST_PROTOCOL))
        except StoreUnavailable:
            seq = -1  # the child is gone: fails below
        deadline = time.monotonic() + self.flush_timeout
        with self._cond:
            while seq not in self._answers:
                left = deadline - time.monotonic()
                if not self._alive:
                    break
                if left <= 0:
                    raise StoreUnavailable("detection has not caught up; spool positions held")
                self._cond.wait(left)
            answer = self._answers.pop(seq, None)
        if answer is None:
            self._restart_if_dead()
            self._restarted = False  # this flush is the one that fails
            raise StoreUnavailable(
                "the detection worker process died; spool positions held until another"
                " stored the batches handed to it"
            )
        outcome, message = answer
        if outcome == "failed":
            unavailable, text = message.split(":", 1)
            if unavailable == "unavailable":
                raise StoreUnavailable(text)
            raise StoreError(text)
        self._since_flush = []

    def _flush_at_close(self) -> None:
        # The flush after a restart fails once on purpose (see flush); a child
        # that keeps dying has its batch set aside within as many tries.
        for _ in range(DEATHS_BEFORE_SET_ASIDE + 1):
            try:
                self.flush()
                return
            except StoreUnavailable as exc:
                failure = exc
        log.error(
            "detect: stopping with batches not stored by detection (%s); the indexer hands them"
            " over again when it starts",
            failure,
        )

    def worker_cpu(self) -> float:
        """Seconds of CPU the child used since it was ready (as of its last answer)."""
        with self._cond:
            return self._cpu - self._cpu_start

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._flush_at_close()
        finally:
            self._closed = True
            try:
                self._conn.send_bytes(pickle.dumps(0) + pickle.dumps(("close", None)))
            except OSError:
                pass
            self._proc.join(timeout=self.flush_timeout)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=5)
            self._conn.close()
            self._reader.join(timeout=5)


# -- the child ---------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (the pipe's EOF covers the rest)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl: EOF still stops us
        pass


def _child_main(
    conn: multiprocessing.connection.Connection,
    path: Path,
    rules: Sequence[Any],
    settings: Any,
    geo: Sequence[str],
    busy_timeout_ms: int,
    state_ttl: float,
    max_cached_keys: int,
) -> None:
    _die_with_parent()
    parent = os.getppid()
    from useraudit.store.sqlite.alerts import SQLiteDetectionStore

    # The indexer writes event batches back to back: try for the lock every
    # millisecond, so the short gaps between them are found.
    store = SQLiteDetectionStore(path, busy_timeout_ms=busy_timeout_ms, lock_poll_s=LOCK_POLL_S)
    engine = DetectionEngine(
        store,
        rules,
        settings,
        geo=geo,
        write_behind=True,
        state_ttl=state_ttl,
        max_cached_keys=max_cached_keys,
    )

    def answer(kind: str, seq: int, extra: Any = None) -> None:
        message = (kind, seq, time.process_time(), engine.stats.as_dict(), extra)
        conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    try:
        answer("ready", 0)
        while True:
            try:
                raw = conn.recv_bytes()
            except (EOFError, OSError):
                return  # the indexer is gone
            seq, kind, body = _split(raw)
            if kind == "close":
                return
            if kind == "batch":
                before = engine.stats.alerts_created + engine.stats.alerts_updated

                def one_batch(batch: Any = body) -> None:
                    # The state with the alerts when no other message waits.
                    engine.run_batch(batch, with_state=not conn.poll())

                # Retries stop with the indexer.
                if not engine.until_stored(one_batch, lambda: os.getppid() == parent):
                    return
                after = engine.stats.alerts_created + engine.stats.alerts_updated
                answer("done", seq, after != before)
            elif kind == "flush":
                try:
                    engine.save()
                except StoreUnavailable as exc:
                    answer("failed", seq, f"unavailable:{exc}")
                except (StoreError, OSError) as exc:
                    answer("failed", seq, f"error:{exc}")
                else:
                    answer("flushed", seq, "")
    finally:
        store.close()


def _split(raw: bytes) -> tuple[int, str, Any]:
    """(seq, kind, body) of a message: a pickled seq, then a pickled (kind, body)."""
    import io

    stream = io.BytesIO(raw)
    seq = pickle.load(stream)
    kind, body = pickle.load(stream)
    return seq, kind, body
