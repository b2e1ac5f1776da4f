"""A spool writer with an ``encode`` function: objects queued, encoded with their numbers later."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from useraudit.spool import SpoolReader, SpoolWriter


def read_all(spool_dir: Path) -> list[bytes]:
    reader = SpoolReader(spool_dir)
    out: list[bytes] = []
    while batch := reader.read(max_records=1000):
        out.extend(batch.records)
        reader.ack(batch)
    return out


def as_record(obj: dict[str, Any], origin: str, number: int) -> bytes:
    return json.dumps({**obj, "origin": origin, "n": number}).encode()


@pytest.mark.parametrize("durability", ["sync", "batch"])
def test_objects_bytes_and_functions_are_numbered_in_append_order(
    spool_dir: Path, durability: str
) -> None:
    writer = SpoolWriter(spool_dir, durability=durability, encode=as_record)
    writer.append({"i": 1})
    writer.append(b'{"plain": true}')
    writer.append(lambda origin, n: json.dumps({"i": 3, "n": n}).encode())
    writer.append({"i": 4})
    writer.close()
    records = [json.loads(r) for r in read_all(spool_dir)]
    assert records == [
        {"i": 1, "origin": writer.origin, "n": 1},
        {"plain": True},
        {"i": 3, "n": 3},
        {"i": 4, "origin": writer.origin, "n": 4},
    ]


def test_batch_mode_encodes_on_the_flushing_thread_not_the_callers(spool_dir: Path) -> None:
    threads: list[str] = []

    def encode(obj: dict[str, Any], origin: str, number: int) -> bytes:
        threads.append(threading.current_thread().name)
        return as_record(obj, origin, number)

    writer = SpoolWriter(spool_dir, durability="batch", flush_interval=0.01, encode=encode)
    writer.append({"i": 1})
    assert threads == []  # queued: the caller paid no encoding
    deadline = threading.Event()
    for _ in range(200):
        if threads:
            break
        deadline.wait(0.01)
    writer.close()
    assert threads == ["useraudit-spool-flush"]
    assert json.loads(read_all(spool_dir)[0])["n"] == 1


def test_a_writer_without_encode_refuses_objects_at_once(spool_dir: Path) -> None:
    writer = SpoolWriter(spool_dir, durability="batch")
    with pytest.raises(TypeError, match="no encode function"):
        writer.append({"i": 1})
    writer.close()
    assert read_all(spool_dir) == []


def test_an_object_that_cannot_be_encoded_is_logged_counted_and_leaves_a_gap(
    spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def encode(obj: dict[str, Any], origin: str, number: int) -> bytes:
        if obj.get("bad"):
            raise ValueError("cannot")
        return as_record(obj, origin, number)

    writer = SpoolWriter(spool_dir, durability="batch", encode=encode)
    for obj in ({"i": 1}, {"bad": True}, {"i": 3}):
        writer.append(obj)
    with caplog.at_level(logging.ERROR, logger="useraudit.spool"):
        writer.close()
    assert [json.loads(r)["n"] for r in read_all(spool_dir)] == [1, 3]
    assert writer.stats.encode_errors == 1
    assert "record 2 could not be encoded" in caplog.text


def test_a_failed_write_keeps_the_encoded_records_and_their_numbers(
    spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = SpoolWriter(spool_dir, durability="batch", flush_interval=3600, encode=as_record)
    writer.append({"i": 1})
    writer.append({"i": 2})
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: (_ for _ in ()).throw(OSError("disk")))
    with pytest.raises(OSError, match="disk"):
        writer.flush()
    monkeypatch.setattr(os, "write", real_write)
    writer.append({"i": 3})
    writer.close()
    assert [json.loads(r)["n"] for r in read_all(spool_dir)] == [1, 2, 3]
