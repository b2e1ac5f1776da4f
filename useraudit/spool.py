"""The durable local spool between capture and the indexer.

Design: a directory of append-only segment files, one writer process per
segment. We chose files over SQLite-in-WAL because every host worker appends
to its *own* segment with one ``write()`` per flush — no cross-process lock on
the request path, no writer contention between gunicorn workers — and the
indexer reads segments sequentially. What SQLite would give us for free we do
explicitly and test:

* Framing: each record is ``MAGIC | length | crc32 | payload``. A record cut
  short by ``kill -9`` (a *torn* tail) or damaged on disk is detected by
  length and CRC and skipped with a counter; the reader resynchronises on the
  next magic, so one bad record never stops the rest.
* Liveness: a writer holds an exclusive ``flock`` on its segment while it is
  open. The kernel drops it when the process dies, however it dies, so the
  reader knows a short tail is final (torn) rather than still being written.
* Read positions: the indexer commits ``(segment, offset)`` only after the
  store acknowledged everything before it (write temp file, fsync, rename).
  A crash between acknowledgement and commit redelivers; the store's
  idempotent event ids make that a no-op.
* Bounded size: ``max_bytes`` caps the spool; when full, ``full_policy``
  says what ``append`` does: ``"block"`` waits up to ``full_timeout`` for the
  indexer to drain, then raises :class:`SpoolFull`; ``"reject"`` raises at
  once. The caller counts and logs it — never a silent drop.
* Durability: ``"sync"`` writes and ``fdatasync``s before ``append``
  returns (nothing acknowledged is lost on ``kill -9``); ``"batch"`` queues in
  memory and a background thread group-commits every ``flush_interval``
  seconds (loss window: one interval), which costs microseconds per event.
  A writer given an ``encode`` function takes objects as well as bytes; in
  ``batch`` mode they are encoded by that thread, a batch at a time, so the
  caller's request only queues a reference (see :meth:`SpoolWriter.append`).
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import logging
import os
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from useraudit import spool_watch

log = logging.getLogger("useraudit.spool")

MAGIC = b"UAv1"
_HEADER = struct.Struct("<4sII")  # magic, payload length, crc32(payload)
HEADER_SIZE = _HEADER.size
MAX_RECORD = 16 * 1024 * 1024
SEGMENT_SUFFIX = ".seg"
OFFSET_SUFFIX = ".offset"
CLAIM_SUFFIX = ".claim"

# How often (seconds) a writer looks at the spool's size on disk again.
_SIZE_CHECK_EVERY = 0.5

Durability = Literal["sync", "batch"]
FullPolicy = Literal["block", "reject"]


class SpoolFull(RuntimeError):
    """The spool reached ``max_bytes`` and the full policy gave up."""


def frame(payload: bytes) -> bytes:
    if len(payload) > MAX_RECORD:
        raise ValueError(f"spool record of {len(payload)} bytes exceeds {MAX_RECORD}")
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def spool_size(directory: Path) -> int:
    total = 0
    for entry in os.scandir(directory):
        if entry.name.endswith(SEGMENT_SUFFIX):
            try:
                total += entry.stat().st_size
            except FileNotFoundError:
                pass  # consumed and deleted while we looked
    return total


@dataclass
class WriterStats:
    appended: int = 0
    flushed: int = 0
    rejected_full: int = 0
    write_errors: int = 0
    encode_errors: int = 0


class SpoolWriter:
    """Appends records to this process's own segment; safe across fork().

    Thread-safe. After ``fork()`` the child starts a fresh segment of its own
    (records the parent had buffered stay the parent's to flush).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        durability: Durability = "batch",
        flush_interval: float = 0.05,
        segment_bytes: int = 64 * 1024 * 1024,
        max_bytes: int = 1024 * 1024 * 1024,
        full_policy: FullPolicy = "block",
        full_timeout: float = 2.0,
        encode: Callable[[Any, str, int], bytes] | None = None,
    ) -> None:
        if durability not in ("sync", "batch"):
            raise ValueError(f"durability must be 'sync' or 'batch', not {durability!r}")
        if full_policy not in ("block", "reject"):
            raise ValueError(f"full_policy must be 'block' or 'reject', not {full_policy!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.durability = durability
        self.flush_interval = flush_interval
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.full_policy = full_policy
        self.full_timeout = full_timeout
        self.encode = encode
        self.stats = WriterStats()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._reset_state()
        os.register_at_fork(after_in_child=self._reset_state)
        atexit.register(self.close)
        # So an indexer reading another spool can tell this one is unread.
        spool_watch.register_writer(self.directory)

    def _reset_state(self) -> None:
        # Fresh locks too: another thread may have held ours at fork time.
        # _lock guards the in-memory buffer and is held for microseconds;
        # _io_lock serialises writes and fsyncs to the segment, which take
        # milliseconds and must never stall a thread that is only appending.
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._fd: int | None = None
        self._segment_size = 0
        # Records in number order: framed bytes, or objects ``encode`` frames
        # when they are written (their size is estimated until then).
        self._buffer: list[Any] = []
        self._buffered_bytes = 0
        self._estimate = 1024
        # Taken from the buffer by a write still in progress: not on disk yet,
        # no longer buffered, and still counted against max_bytes.
        self._inflight_bytes = 0
        self._appended_seq = 0
        self._durable_seq = 0
        # Who numbers the records (see append): new in every process, after fork too.
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._flusher: threading.Thread | None = None
        self._closed = False
        self._size_checked_at = 0.0
        self._known_size = 0

    # -- public -------------------------------------------------------------

    def append(self, payload: Any) -> None:
        """Queue (batch) or durably write (sync) one record.

        ``payload`` is the record's bytes, or a function of ``(origin,
        number)`` that makes them, or any other object when the writer has an
        ``encode`` function: ``encode(payload, origin, number)`` makes the
        record. ``origin`` is this process's origin id and ``number`` the
        record's number (1, 2, 3... in spool order, every record counting),
        so numbers follow the order records become durable and a crash can
        only lose the highest ones, never leave a hole below a kept one. A
        function payload is called under the writer's lock; in ``batch``
        mode an object is encoded later by the flushing thread, a batch at a
        time, which keeps encoding off the caller's path. It must not change
        meanwhile.

        In ``sync`` mode concurrent appends share one write and one fsync
        (group commit): whoever takes the I/O lock first writes everything
        queued so far, and the others find their record already durable.
        Raises SpoolFull, or OSError when the disk fails; callers decide
        whether that fails the request (see ``fail_closed``).
        """
        if isinstance(payload, bytes):
            record: Any = frame(payload)
            size = len(record)
        elif not callable(payload) and self.encode is None:
            raise TypeError("this spool writer takes bytes: it was given no encode function")
        else:
            record, size = payload, self._estimate  # made below, or by the flusher
        with self._lock:
            if self._closed:
                # Used again after close(): carry on with a new segment and flusher.
                self._closed = False
                self._flusher = None
            if (
                self._known_size + self._inflight_bytes + self._buffered_bytes + size
                > self.max_bytes
                or time.monotonic() - self._size_checked_at > _SIZE_CHECK_EVERY
            ):
                # Near the limit, or the spool's size is due a fresh look: the
                # slow path. It may let go of the lock while it waits, so the
                # record's number is taken only after it.
                self._reserve(size)
            if record is payload and (callable(payload) or self.durability == "sync"):
                record = self._made(payload, self._appended_seq + 1)
                size = len(record)
            buffered = self._buffered_bytes + size
            self._buffer.append(record)
            self._buffered_bytes = buffered
            seq = self._appended_seq = self._appended_seq + 1
            self.stats.appended += 1
            if self.durability == "batch":
                if self._flusher is None:
                    self._start_flusher()
                if buffered >= 1024 * 1024:
                    self._wake.notify()
                return
        with self._io_lock:
            if self._durable_seq < seq:
                self._write_pending()

    def append_many(self, payloads: list[bytes]) -> None:
        """Queue several records at once (``batch`` durability; ``flush()`` makes them durable).

        All or none: when they do not fit, SpoolFull is raised and none is queued.
        """
        if self.durability != "batch":
            raise ValueError("append_many needs durability='batch'")
        records = [frame(p) for p in payloads]
        nbytes = sum(map(len, records))
        with self._lock:
            if self._closed:
                self._closed = False
                self._flusher = None
            self._reserve(nbytes)
            self._buffer.extend(records)
            self._buffered_bytes += nbytes
            self._appended_seq += len(records)
            self.stats.appended += len(records)
            if self._flusher is None:
                self._start_flusher()

    def flush(self) -> None:
        """Write and fsync whatever is buffered."""
        with self._io_lock:
            self._write_pending()

    def close(self) -> None:
        with self._io_lock:
            with self._lock:
                if self._closed:
                    return
                self._closed = True
                self._wake.notify_all()
            self._write_pending()
            if self._fd is not None:
                os.close(self._fd)  # releases the flock: the segment is final
                self._fd = None

    # -- internals ----------------------------------------------------------

    def _reserve(self, nbytes: int) -> None:
        deadline = time.monotonic() + (self.full_timeout if self.full_policy == "block" else 0)
        while True:
            now = time.monotonic()
            if now - self._size_checked_at > _SIZE_CHECK_EVERY:
                self._known_size = spool_size(self.directory)
                self._size_checked_at = now
            used = self._known_size + self._inflight_bytes + self._buffered_bytes
            if used + nbytes <= self.max_bytes:
                return
            if now >= deadline:
                self.stats.rejected_full += 1
                raise SpoolFull(
                    f"spool {self.directory} holds {self._known_size} bytes, "
                    f"limit {self.max_bytes}: is the indexer running?"
                )
            self._size_checked_at = 0.0
            self._lock.release()
            try:
                time.sleep(0.05)
            finally:
                self._lock.acquire()

    def _start_flusher(self) -> None:
        thread = threading.Thread(
            target=self._flush_loop, name="useraudit-spool-flush", daemon=True
        )
        self._flusher = thread
        thread.start()

    def _flush_loop(self) -> None:
        while True:
            with self._lock:
                if self._closed or self._flusher is not threading.current_thread():
                    return
                self._wake.wait(self.flush_interval)
                if self._closed:
                    return
            try:
                with self._io_lock:
                    self._write_pending()
            except OSError:
                self.stats.write_errors += 1
                log.exception(
                    "useraudit spool flush failed; %d records kept in memory", len(self._buffer)
                )

    def _made(self, payload: Any, number: int) -> bytes:
        """The framed record of a function payload, or of an object through ``encode``."""
        if callable(payload):
            return frame(payload(self.origin, number))
        assert self.encode is not None
        return frame(self.encode(payload, self.origin, number))

    def _encoded(self, records: list[Any], first: int) -> list[bytes]:
        """``records`` (numbered from ``first``) with every queued object encoded.

        An object ``encode`` fails on is logged and counted, and leaves its
        number unused: ``useraudit verify`` shows it as a gap.
        """
        out: list[bytes] = []
        made = made_bytes = 0
        for number, record in enumerate(records, first):
            if isinstance(record, bytes):
                out.append(record)
                continue
            try:
                record = self._made(record, number)
            except Exception:
                self.stats.encode_errors += 1
                log.exception("useraudit spool: record %d could not be encoded", number)
                continue
            out.append(record)
            made += 1
            made_bytes += len(record)
        if made:
            self._estimate = made_bytes // made
        return out

    def _write_pending(self) -> None:
        """Write and fsync everything buffered so far. Caller holds ``_io_lock``."""
        with self._lock:
            records, upto = self._buffer, self._appended_seq
            self._buffer = []
            nbytes, self._buffered_bytes = self._buffered_bytes, 0
            self._inflight_bytes += nbytes
        if not records:
            return
        try:
            records = self._encoded(records, upto - len(records) + 1)
        except BaseException:
            with self._lock:
                self._buffer[:0] = records
                self._buffered_bytes += nbytes
                self._inflight_bytes -= nbytes
            raise
        data = b"".join(records)
        try:
            if self._fd is None or self._segment_size + len(data) > self.segment_bytes:
                self._open_segment()
            assert self._fd is not None
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fdatasync(self._fd)
        except BaseException:
            with self._lock:  # keep them for the next attempt, in order
                self._buffer[:0] = records
                self._buffered_bytes += nbytes
                self._inflight_bytes -= nbytes
            raise
        self._segment_size += len(data)
        self._durable_seq = upto
        with self._lock:
            self._known_size += len(data)
            self._inflight_bytes -= nbytes
        self.stats.flushed += len(records)

    def _open_segment(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        # Names sort by creation time, so the indexer ships oldest first.
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SEGMENT_SUFFIX}"
        path = self.directory / name
        # Lock before the name appears: an empty unlocked segment would look
        # finished to the reader, which would delete it under our feet.
        tmp = self.directory / (name + ".new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(tmp, path)
        _fsync_dir(self.directory)
        self._fd = fd
        self._segment_size = 0


@dataclass(frozen=True, slots=True)
class Damaged:
    """Bytes the reader could not turn into a record, with where and why."""

    segment: str
    offset: int
    raw: bytes
    reason: str


@dataclass
class Batch:
    records: list[bytes] = field(default_factory=list)
    damaged: list[Damaged] = field(default_factory=list)
    nbytes: int = 0
    # Where reading stopped in each segment: what ack(batch) commits.
    cursor: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.records or self.damaged)


@dataclass
class ReaderStats:
    read: int = 0
    torn: int = 0
    corrupt: int = 0
    segments_deleted: int = 0


class SpoolReader:
    """Reads records in order; ``ack()`` commits what was read.

    The caller reads a batch, stores every record (or dead-letters it), then
    calls ``ack()``; if it crashes first, the same batch is read again.
    Damaged bytes — a torn tail, a record whose CRC fails — come back in
    ``Batch.damaged`` so the indexer dead-letters them: nothing disappears
    unreported.

    Several readers (indexer processes) may share one spool. A reader works
    only on segments it has *claimed* — an exclusive ``flock`` on
    ``<segment>.claim`` — so no record is shipped by two indexers at once,
    and it lets go of a segment once it has acknowledged all of it, so idle
    segments float to whichever reader is free. A reader that dies loses its
    claims with its process; another picks the segment up at its committed
    offset.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.stats = ReaderStats()
        # Read cursors run ahead of the committed offsets until ack().
        self._cursor: dict[str, int] = {}
        # segment -> fd holding its claim lock.
        self._claims: dict[str, int] = {}
        # The indexer reads the next batch on a helper thread while acking.
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            for segment in list(self._claims):
                self._release(segment)

    def __enter__(self) -> SpoolReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def claimed(self) -> list[str]:
        return sorted(self._claims)

    def _claim(self, segment: str) -> bool:
        if segment in self._claims:
            return True
        try:
            fd = os.open(
                self.directory / (segment + CLAIM_SUFFIX),
                os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                0o640,
            )
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False  # another indexer has it
            raise
        if not (self.directory / segment).exists():  # reclaimed meanwhile
            os.close(fd)
            return False
        self._claims[segment] = fd
        # Another reader may have moved the committed offset since we last held it.
        self._cursor.pop(segment, None)
        return True

    def _release(self, segment: str, delete_claim_file: bool = False) -> None:
        fd = self._claims.pop(segment, None)
        if fd is None:
            return
        if delete_claim_file:
            (self.directory / (segment + CLAIM_SUFFIX)).unlink(missing_ok=True)
        os.close(fd)
        self._cursor.pop(segment, None)

    def segments(self) -> list[str]:
        return sorted(e.name for e in os.scandir(self.directory) if e.name.endswith(SEGMENT_SUFFIX))

    def committed(self, segment: str) -> int:
        try:
            return int((self.directory / (segment + OFFSET_SUFFIX)).read_text() or 0)
        except FileNotFoundError:
            return 0

    def read(self, max_records: int = 5000, max_bytes: int = 8 * 1024 * 1024) -> Batch:
        """The next records after the read cursor (not yet acknowledged)."""
        with self._lock:
            return self._read(max_records, max_bytes)

    def _read(self, max_records: int, max_bytes: int) -> Batch:
        batch = Batch()
        # Our own segments first, then any free one, oldest first.
        order = self.claimed() + [s for s in self.segments() if s not in self._claims]
        for segment in order:
            if len(batch.records) >= max_records or batch.nbytes >= max_bytes:
                break
            if not self._claim(segment):
                continue
            start = self._cursor.get(segment)
            if start is None:
                start = self.committed(segment)
            try:
                self._read_segment(segment, start, batch, max_records, max_bytes)
            except FileNotFoundError:
                continue
            batch.cursor[segment] = self._cursor.get(segment, start)
        self.stats.read += len(batch.records)
        self._release_drained()
        return batch

    def _read_segment(
        self, segment: str, start: int, batch: Batch, max_records: int, max_bytes: int
    ) -> None:
        with open(self.directory / segment, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if start >= size:
                return
            writer_alive = _writer_alive(fh.fileno())
            fh.seek(start)
            data = fh.read(max(max_bytes - batch.nbytes, HEADER_SIZE))
            if len(data) >= HEADER_SIZE:
                magic, length, _ = _HEADER.unpack_from(data, 0)
                if magic == MAGIC and HEADER_SIZE + length > len(data) and length <= MAX_RECORD:
                    # One record larger than the window: read it whole.
                    data += fh.read(HEADER_SIZE + length - len(data))
        pos = 0
        while pos < len(data) and len(batch.records) < max_records:
            parsed = _parse_one(data, pos)
            if parsed is None:  # the bytes end inside a record
                if start + len(data) < size or writer_alive:
                    break  # our window ended, or the writer is mid-write
                self.stats.torn += 1
                batch.damaged.append(
                    Damaged(
                        segment, start + pos, bytes(data[pos:]), "torn record at end of segment"
                    )
                )
                log.warning(
                    "spool: torn record in %s at %d (%d bytes)",
                    segment,
                    start + pos,
                    len(data) - pos,
                )
                pos = len(data)
                break
            kind, next_pos, payload = parsed
            if kind == "ok":
                batch.records.append(payload)
                batch.nbytes += next_pos - pos
            else:
                self.stats.corrupt += 1
                batch.damaged.append(Damaged(segment, start + pos, bytes(data[pos:next_pos]), kind))
                log.warning("spool: %s in %s at %d", kind, segment, start + pos)
            pos = next_pos
        self._cursor[segment] = start + pos

    def ack(self, batch: Batch | None = None) -> None:
        """Commit a handled batch (or everything read so far).

        Batches must be acknowledged in the order they were read; a reader
        may read ahead (the indexer prepares the next batch while the
        previous one is in flight) because each batch carries its own cursor.
        """
        with self._lock:
            cursor = batch.cursor if batch is not None else dict(self._cursor)
            for segment, offset in cursor.items():
                if segment in self._claims and offset > self.committed(segment):
                    self._write_offset(segment, offset)
            self._reclaim()
            self._release_drained()

    def _release_drained(self) -> None:
        """Let go of segments fully read and acknowledged, so another indexer can take them."""
        for segment in list(self._claims):
            try:
                size = (self.directory / segment).stat().st_size
            except FileNotFoundError:
                self._release(segment)
                continue
            committed = self.committed(segment)
            if self._cursor.get(segment, committed) == committed == size:
                self._release(segment)

    def rewind(self) -> None:
        """Forget unacknowledged reads: the next read starts at the committed offsets."""
        with self._lock:
            self._cursor.clear()

    def reclaim(self) -> None:
        """Delete segments that are fully acknowledged and no longer written."""
        with self._lock:
            self._reclaim()

    def _reclaim(self) -> None:
        """Delete fully acknowledged segments whose writer is gone (ours, or free ones)."""
        for segment in self.segments():
            path = self.directory / segment
            try:
                with open(path, "rb") as fh:
                    size = os.fstat(fh.fileno()).st_size
                    if self.committed(segment) < size or _writer_alive(fh.fileno()):
                        continue
            except FileNotFoundError:
                continue
            held = segment in self._claims
            if not held and not self._claim(segment):
                continue  # another indexer is on it
            path.unlink(missing_ok=True)
            (self.directory / (segment + OFFSET_SUFFIX)).unlink(missing_ok=True)
            self._release(segment, delete_claim_file=True)
            self.stats.segments_deleted += 1

    def pending_bytes(self) -> int:
        total = 0
        for segment in self.segments():
            try:
                total += (self.directory / segment).stat().st_size - self.committed(segment)
            except FileNotFoundError:
                pass
        return total

    def _write_offset(self, segment: str, offset: int) -> None:
        target = self.directory / (segment + OFFSET_SUFFIX)
        tmp = self.directory / (segment + ".tmp")
        with open(tmp, "w") as fh:
            fh.write(str(offset))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(self.directory)


def record_at(path: str | os.PathLike[str], offset: int) -> bytes | None:
    """The payload of the intact record at ``offset`` of a segment, or None."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            header = fh.read(HEADER_SIZE)
            if len(header) < HEADER_SIZE:
                return None
            magic, length, crc = _HEADER.unpack(header)
            if magic != MAGIC or length > MAX_RECORD:
                return None
            payload = fh.read(length)
    except OSError:
        return None
    return payload if len(payload) == length and zlib.crc32(payload) == crc else None


def records_from(
    path: str | os.PathLike[str], offset: int, limit: int
) -> Iterator[tuple[int, bytes]]:
    """(offset, payload) of up to ``limit`` intact records from ``offset``, to a damaged one."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            for _ in range(limit):
                header = fh.read(HEADER_SIZE)
                if len(header) < HEADER_SIZE:
                    return
                magic, length, crc = _HEADER.unpack(header)
                if magic != MAGIC or length > MAX_RECORD:
                    return
                payload = fh.read(length)
                if len(payload) != length or zlib.crc32(payload) != crc:
                    return
                yield offset, payload
                offset += HEADER_SIZE + length
    except OSError:
        return


def _writer_alive(fd: int) -> bool:
    """True while some process holds the segment's exclusive writer lock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _parse_one(data: bytes, pos: int) -> tuple[str, int, bytes] | None:
    """Parse the record at ``pos``.

    Returns ("ok", end, payload); (reason, resync_position, b"") for damage;
    or None when the bytes end before the record does.
    """
    if len(data) - pos < HEADER_SIZE:
        return None
    magic, length, crc = _HEADER.unpack_from(data, pos)
    if magic != MAGIC or length > MAX_RECORD:
        return ("bad record header", _resync(data, pos + 1), b"")
    end = pos + HEADER_SIZE + length
    if end > len(data):
        # A damaged length could also point past the end: if another record
        # starts inside, trust that one instead of waiting forever.
        nxt = data.find(MAGIC, pos + 1)
        if nxt != -1 and _parse_one(data, nxt) is not None:
            return ("bad record length", nxt, b"")
        return None
    payload = data[pos + HEADER_SIZE : end]
    if zlib.crc32(payload) != crc:
        return ("crc mismatch", _resync(data, pos + 1), b"")
    return ("ok", end, payload)


def _resync(data: bytes, start: int) -> int:
    nxt = data.find(MAGIC, start)
    return len(data) if nxt == -1 else nxt


def iter_all(directory: str | os.PathLike[str]) -> Iterator[bytes]:
    """Every intact record in a spool, ignoring offsets (for inspection)."""
    for name in sorted(os.listdir(directory)):
        if not name.endswith(SEGMENT_SUFFIX):
            continue
        data = (Path(directory) / name).read_bytes()
        pos = 0
        while pos < len(data):
            parsed = _parse_one(data, pos)
            if parsed is None:
                break
            kind, pos, payload = parsed
            if kind == "ok":
                yield payload
