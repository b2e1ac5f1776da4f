"""Write a big export's workbook in a child process.

openpyxl spends ~75 µs of CPU per row, all of it under the GIL. In the web
process that time is taken from fetching and formatting the next rows and
from every other request the worker serves. A child process writes the
workbook on another core instead:

    web process:   Store.iterate → cells (export_row) → pickle ─┐
                                                                 │ stdin
    child process: python -m useraudit.webapp.workbook_process ◄─┘
                   write_workbook(stdout)  ──► bytes ──► HTTP response

The pipe between them is the only buffer, so memory stays flat on both
sides. The child imports openpyxl and nothing of Flask (~0.25 s to start),
so :mod:`.export` uses it only for exports of many rows. The child is our
own subprocess; it is stopped by its PID when the client goes away.

Protocol on stdin (pickle, our own data only): ``{"about": [...],
"max_rows": n}``, then lists of rows, then ``None``.
"""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any, cast

BATCH_ROWS = 1000
READ_CHUNK = 256 * 1024
PIPE_BYTES = 1024 * 1024


class WorkbookProcessError(RuntimeError):
    """The child process failed; the message carries its stderr."""


def stream(
    rows: Iterable[list[Any]],
    about: list[tuple[str, Any]],
    *,
    max_rows: int,
    labels: list[str] | None = None,
    python: str = sys.executable,
) -> Iterator[bytes]:
    """Yield the workbook's bytes as the child writes them.

    Raises :class:`WorkbookProcessError` (after the last bytes) when the
    child fails, or the exception that ``rows`` raised.
    """
    proc = subprocess.Popen(
        [python, "-m", "useraudit.webapp.workbook_process"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    failure: list[BaseException] = []
    _widen_pipe(proc.stdin)

    def feed() -> None:
        stdin = proc.stdin
        assert stdin is not None
        try:
            with stdin:
                # A fresh pickler per batch: one kept for the whole export
                # would remember (and hold) every row it ever sent.
                def dump(obj: Any) -> None:
                    pickle.dump(obj, stdin, protocol=pickle.HIGHEST_PROTOCOL)

                dump({"about": about, "max_rows": max_rows, "labels": labels})
                batch: list[list[Any]] = []
                for row in rows:
                    batch.append(row)
                    if len(batch) >= BATCH_ROWS:
                        dump(batch)
                        batch = []
                if batch:
                    dump(batch)
                dump(None)
        except BrokenPipeError:
            pass  # the child died or was stopped: its exit code tells why
        except BaseException as exc:  # noqa: BLE001 - re-raised on the response side
            failure.append(exc)
            proc.kill()

    feeder = threading.Thread(target=feed, name="useraudit-export-feed", daemon=True)
    feeder.start()
    assert proc.stdout is not None and proc.stderr is not None
    # Popen's default buffering makes stdout a BufferedReader (typeshed says
    # IO[bytes]); read1 returns what the pipe has instead of waiting to fill.
    stdout = cast(io.BufferedReader, proc.stdout)
    try:
        while chunk := stdout.read1(READ_CHUNK):
            yield chunk
        feeder.join()
        code = proc.wait()
        if failure:
            raise failure[0]
        if code != 0:
            err = proc.stderr.read().decode("utf-8", "replace").strip()
            raise WorkbookProcessError(
                f"the export's workbook process exited with {code}: {err[-2000:]}"
            )
    finally:
        if proc.poll() is None:
            proc.kill()  # the client went away mid-download
            proc.wait()
        feeder.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()


def _widen_pipe(pipe: Any) -> None:
    """1 MiB instead of 64 KiB between feeder and child (Linux): fewer stalls
    when either side briefly runs slower than the other."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError):
        pass  # not Linux, or above /proc/sys/fs/pipe-max-size: the default works too


def main() -> int:
    """Child side: rows from stdin, the workbook to stdout."""
    from .workbook import write_workbook

    source = sys.stdin.buffer
    header = pickle.load(source)

    def rows() -> Iterator[list[Any]]:
        while (batch := pickle.load(source)) is not None:
            yield from batch

    with io.BufferedWriter(io.FileIO(sys.stdout.fileno(), "wb", closefd=False), READ_CHUNK) as out:
        write_workbook(
            out, rows(), header["about"], max_rows=header["max_rows"], labels=header["labels"]
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
