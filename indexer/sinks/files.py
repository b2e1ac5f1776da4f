"""Rotating NDJSON files, for Filebeat, Vector or Fluent Bit to pick up.

One JSON document per line in ``<directory>/<prefix>.ndjson``. When the file
reaches ``max_bytes`` it is renamed to ``<prefix>-<UTC time>.ndjson`` and a
new one is started (the rename-and-recreate rotation every file shipper
follows by inode). With ``keep`` > 0 only that many rotated files are kept;
the default 0 never deletes: the shipper or a cleanup job decides.

A batch is confirmed once written and fsync'ed. A crash in the middle of a
write leaves a partial last line; the next start cuts it off (that batch was
never confirmed, so it is written again whole).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from .base import Event, Rejection, Sink, SinkUnavailable

log = logging.getLogger("useraudit.sinks")


class FileSink(Sink):
    kind = "file"

    def __init__(
        self,
        name: str,
        directory: str | Path,
        *,
        prefix: str = "useraudit-events",
        max_bytes: int = 64 * 1024 * 1024,
        keep: int = 0,
    ) -> None:
        super().__init__(name)
        self.directory = Path(directory)
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.keep = keep
        self._fd: int | None = None
        self._size = 0

    @property
    def current(self) -> Path:
        return self.directory / f"{self.prefix}.ndjson"

    def rotated(self) -> list[Path]:
        return sorted(self.directory.glob(f"{self.prefix}-*.ndjson"))

    def deliver(self, docs: Sequence[Event]) -> list[Rejection]:
        data = b"".join(event.raw + b"\n" for event in docs)
        try:
            if self._fd is None:
                self._open()
            assert self._fd is not None
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fdatasync(self._fd)
            self._size += len(data)
            if self._size >= self.max_bytes:
                self._rotate()
        except OSError as exc:
            self._close_fd()
            raise SinkUnavailable(f"writing {self.current}: {exc}") from exc
        return []

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.current, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        size = os.fstat(fd).st_size
        if size:
            # Cut a partial last line left by a crash: it was never confirmed.
            tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
            if not tail.endswith(b"\n"):
                keep = size - len(tail) + tail.rfind(b"\n") + 1
                os.ftruncate(fd, keep)
                log.warning("sink %s: cut a partial line at the end of %s", self.name, self.current)
                size = keep
        self._fd, self._size = fd, size

    def _rotate(self) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self._close_fd()
        os.rename(self.current, self.directory / f"{self.prefix}-{stamp}.ndjson")
        if self.keep > 0:
            for old in self.rotated()[: -self.keep]:
                log.info("sink %s: removing rotated file %s (keep=%d)", self.name, old, self.keep)
                old.unlink(missing_ok=True)

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        self._close_fd()
