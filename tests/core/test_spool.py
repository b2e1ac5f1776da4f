"""The spool: framing, crash safety, concurrency, bounds and commit semantics."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from useraudit.spool import (
    HEADER_SIZE,
    MAGIC,
    SpoolFull,
    SpoolReader,
    SpoolWriter,
    frame,
)


def payloads(reader: SpoolReader) -> list[bytes]:
    out: list[bytes] = []
    while True:
        batch = reader.read(max_records=1000)
        if not batch:
            return out
        out.extend(batch.records)
        reader.ack(batch)


@pytest.mark.parametrize("durability", ["sync", "batch"])
def test_records_come_back_in_order(spool_dir: Path, durability: str) -> None:
    """What a writer appends, the reader returns in the same order, in both durability modes."""
    writer = SpoolWriter(spool_dir, durability=durability)
    sent = [json.dumps({"n": i}).encode() for i in range(2500)]
    for p in sent:
        writer.append(p)
    writer.close()
    with SpoolReader(spool_dir) as reader:
        assert payloads(reader) == sent


def test_unacknowledged_batch_is_read_again(spool_dir: Path) -> None:
    """A batch read but not acknowledged comes back to a new reader (crash before ack)."""
    writer = SpoolWriter(spool_dir, durability="sync")
    for i in range(10):
        writer.append(b"%d" % i)
    with SpoolReader(spool_dir) as reader:
        first = reader.read(max_records=4)
        reader.ack(first)
        reader.read(max_records=4)  # read, never acknowledged
    with SpoolReader(spool_dir) as reader:
        assert payloads(reader) == [b"%d" % i for i in range(4, 10)]
    writer.close()


def test_read_ahead_acks_only_its_own_batch(spool_dir: Path) -> None:
    """Acknowledging batch 1 after reading batch 2 commits batch 1 only."""
    writer = SpoolWriter(spool_dir, durability="sync")
    for i in range(6):
        writer.append(b"%d" % i)
    with SpoolReader(spool_dir) as reader:
        one = reader.read(max_records=3)
        reader.read(max_records=3)
        reader.ack(one)
    with SpoolReader(spool_dir) as reader:
        assert payloads(reader) == [b"3", b"4", b"5"]
    writer.close()


def test_two_readers_share_a_spool_without_reading_a_record_twice(spool_dir: Path) -> None:
    """Two indexers on one spool split its segments: together they read
    everything, never the same record."""
    for w in range(4):  # four writer processes' worth of segments
        writer = SpoolWriter(spool_dir, durability="sync")
        writer._open_segment()  # a segment of its own, as another process would have
        for i in range(50):
            writer.append(b"%d-%d" % (w, i))
        writer.close()
    one, two = SpoolReader(spool_dir), SpoolReader(spool_dir)
    first = one.read(max_records=120)
    second = two.read(max_records=1000)
    assert first.records and second.records
    assert not set(first.records) & set(second.records)
    assert set(one.claimed()).isdisjoint(two.claimed())
    one.ack(first)
    two.ack(second)
    rest = payloads(one) + payloads(two)
    assert sorted(first.records + second.records + rest) == sorted(
        b"%d-%d" % (w, i) for w in range(4) for i in range(50)
    )
    one.close()
    two.close()


def test_a_dead_readers_segment_is_picked_up_where_it_was_committed(spool_dir: Path) -> None:
    """When an indexer goes away mid-segment, another continues from the committed offset."""
    writer = SpoolWriter(spool_dir, durability="sync")
    for i in range(10):
        writer.append(b"%d" % i)
    one = SpoolReader(spool_dir)
    batch = one.read(max_records=4)
    one.ack(batch)
    one.read(max_records=3)  # read, never acknowledged: lost with the reader
    two = SpoolReader(spool_dir)
    assert not two.read()  # still claimed by the live reader
    one.close()  # the process dies: its claims go with it
    assert payloads(two) == [b"%d" % i for i in range(4, 10)]
    two.close()
    writer.close()


def test_consumed_segments_are_deleted_only_when_the_writer_is_gone(spool_dir: Path) -> None:
    """A fully shipped segment stays while its writer may append, and goes once it closed."""
    writer = SpoolWriter(spool_dir, durability="sync")
    writer.append(b"x")
    with SpoolReader(spool_dir) as reader:
        payloads(reader)
        assert len(reader.segments()) == 1
        writer.close()
        reader.reclaim()
        assert reader.segments() == []


def test_segments_rotate_at_the_size_bound(spool_dir: Path) -> None:
    """Segments are cut at segment_bytes, and all records survive the rotation."""
    writer = SpoolWriter(spool_dir, durability="sync", segment_bytes=1000)
    sent = [b"r" * 100 + b"%d" % i for i in range(50)]
    for p in sent:
        writer.append(p)
    writer.close()
    with SpoolReader(spool_dir) as reader:
        assert len(reader.segments()) > 5
        assert payloads(reader) == sent


def _write_segment(spool_dir: Path, name: str, data: bytes) -> Path:
    path = spool_dir / name
    path.write_bytes(data)
    return path


def test_torn_tail_from_a_dead_writer_is_reported_not_fatal(spool_dir: Path) -> None:
    """A record cut short (kill -9 mid-write) is returned as damaged and reading goes on."""
    good = [frame(b"a"), frame(b"b")]
    torn = frame(b"c" * 100)[:40]
    _write_segment(spool_dir, "00000000000000000001-1-x.seg", b"".join(good) + torn)
    _write_segment(spool_dir, "00000000000000000002-1-y.seg", frame(b"d"))
    with SpoolReader(spool_dir) as reader:
        batch = reader.read()
        assert batch.records == [b"a", b"b", b"d"]
        assert [d.reason for d in batch.damaged] == ["torn record at end of segment"]
        assert batch.damaged[0].raw == torn
        reader.ack(batch)
        assert reader.stats.torn == 1
        assert not reader.read()


def test_corrupt_record_in_the_middle_is_skipped_and_reading_resyncs(spool_dir: Path) -> None:
    """A record whose CRC fails is reported, and the records after it are still read."""
    bad = bytearray(frame(b"hello world"))
    bad[HEADER_SIZE + 2] ^= 0xFF
    _write_segment(
        spool_dir, "00000000000000000001-1-x.seg", frame(b"a") + bytes(bad) + frame(b"z")
    )
    with SpoolReader(spool_dir) as reader:
        batch = reader.read()
        assert batch.records == [b"a", b"z"]
        assert [d.reason for d in batch.damaged] == ["crc mismatch"]


def test_garbage_between_records_is_skipped(spool_dir: Path) -> None:
    """Bytes that are not a record at all (bad header) are skipped up to the next magic."""
    _write_segment(
        spool_dir, "00000000000000000001-1-x.seg", frame(b"a") + b"\x00garbage\xff" + frame(b"b")
    )
    with SpoolReader(spool_dir) as reader:
        batch = reader.read()
        assert batch.records == [b"a", b"b"]
        assert batch.damaged[0].reason == "bad record header"


def test_partial_record_of_a_live_writer_is_not_torn(spool_dir: Path) -> None:
    """While the writer holds its lock, a short tail means 'not yet written', not damage."""
    writer = SpoolWriter(spool_dir, durability="sync")
    writer.append(b"first")
    segment = next(spool_dir.glob("*.seg"))
    with open(segment, "ab") as fh:  # simulate a write in progress
        fh.write(frame(b"second")[:5])
    with SpoolReader(spool_dir) as reader:
        batch = reader.read()
        assert batch.records == [b"first"]
        assert batch.damaged == []
    writer.close()


def test_full_spool_rejects_with_a_clear_error(spool_dir: Path) -> None:
    """With full_policy='reject', appending past max_bytes raises SpoolFull naming the spool."""
    writer = SpoolWriter(spool_dir, durability="sync", max_bytes=2000, full_policy="reject")
    with pytest.raises(SpoolFull, match=str(spool_dir)):
        for _ in range(100):
            writer.append(b"x" * 100)
    assert writer.stats.rejected_full == 1
    assert 10 <= writer.stats.appended < 100
    writer.close()


def test_full_spool_blocks_until_the_indexer_drains(spool_dir: Path) -> None:
    """With full_policy='block', an append waits for space and succeeds once it is freed."""
    import threading

    writer = SpoolWriter(
        spool_dir,
        durability="sync",
        max_bytes=3000,
        segment_bytes=500,
        full_policy="block",
        full_timeout=10,
    )
    for _ in range(26):  # 26 frames of 112 bytes: the 27th does not fit in 3000
        writer.append(b"x" * 100)
    blocked_for: list[float] = []

    def late_append() -> None:
        t = time.monotonic()
        writer.append(b"y" * 100)
        blocked_for.append(time.monotonic() - t)

    thread = threading.Thread(target=late_append)
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive(), "append should block while the spool is full"
    with SpoolReader(spool_dir) as reader:
        payloads(reader)
    thread.join(10)
    assert blocked_for and blocked_for[0] >= 0.4
    writer.close()


def _child_writes(spool: str, worker: int, count: int) -> None:
    writer = SpoolWriter(spool, durability="batch", flush_interval=0.01, segment_bytes=20_000)
    for i in range(count):
        writer.append(json.dumps({"w": worker, "i": i, "pad": "p" * (i % 200)}).encode())
    writer.close()


def test_many_processes_append_concurrently_without_loss(spool_dir: Path) -> None:
    """Four processes appending at once: every record arrives once, none interleaved."""
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_child_writes, args=(str(spool_dir), w, 3000)) for w in range(4)]
    for p in procs:
        p.start()
    with SpoolReader(spool_dir) as reader:
        got: list[bytes] = []
        while any(p.is_alive() for p in procs):
            got.extend(payloads(reader))
        for p in procs:
            p.join()
            assert p.exitcode == 0
        got.extend(payloads(reader))
        assert reader.stats.corrupt == reader.stats.torn == 0
    records = [json.loads(g) for g in got]
    seen = {(r["w"], r["i"]) for r in records}
    assert len(records) == len(seen) == 4 * 3000
    for w in range(4):  # each writer's records stay in its own order
        mine = [r["i"] for r in records if r["w"] == w]
        assert mine == sorted(mine)


def test_forked_child_writes_its_own_segment(spool_dir: Path) -> None:
    """After fork the child appends to a segment of its own; the
    parent's buffer is not duplicated."""
    writer = SpoolWriter(spool_dir, durability="batch", flush_interval=5)
    writer.append(b"parent-1")  # still buffered when we fork
    pid = os.fork()
    if pid == 0:  # child
        try:
            writer.append(b"child")
            writer.close()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    writer.append(b"parent-2")
    writer.close()
    with SpoolReader(spool_dir) as reader:
        got = payloads(reader)
    assert sorted(got) == [b"child", b"parent-1", b"parent-2"]
    assert len(list(spool_dir.glob("*.seg"))) <= 2


SYNC_WRITER = textwrap.dedent(
    """
    import sys
    from useraudit.spool import SpoolWriter
    w = SpoolWriter(sys.argv[1], durability="sync")
    i = 0
    while True:
        w.append(b"%08d" % i + b"x" * 3000)
        print(i, flush=True)   # acknowledged to the caller only after fsync
        i += 1
    """
)


def test_sync_mode_keeps_every_acknowledged_record_through_kill_9(spool_dir: Path) -> None:
    """kill -9 of a sync writer loses nothing it acknowledged; a torn tail is at most reported."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SYNC_WRITER, str(spool_dir)], stdout=subprocess.PIPE, text=True
    )
    acked = -1
    assert proc.stdout is not None
    while acked < 300:
        acked = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    with SpoolReader(spool_dir) as reader:
        got = payloads(reader)
    numbers = [int(g[:8]) for g in got]
    assert numbers == list(range(len(numbers)))  # in order, no gaps
    assert len(numbers) >= acked + 1


def test_magic_is_part_of_every_frame() -> None:
    """Each frame starts with the magic so readers can resynchronise after damage."""
    assert frame(b"abc").startswith(MAGIC)
    with pytest.raises(ValueError):
        frame(b"x" * (16 * 1024 * 1024 + 1))
