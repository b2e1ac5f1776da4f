"""Who writes which spool, and who reads it: so nothing is spooled where no indexer looks.

A host app configured with one spool directory and an indexer reading
another is the quietest way to lose an audit trail: both run, and the
indexer reports ``read: 0``. Two small records make it visible:

* **Writers** register their spool in ``$USERAUDIT_HOME/spools/`` (one
  small file per spool, rewritten when a process opens its writer), so an
  indexer or ``useraudit doctor`` on the same machine can list every spool
  in use.
* **Readers** (the indexer) rewrite ``<spool>/indexer.json`` every few
  seconds with their pid, host, store and time: a heartbeat in the spool
  itself, found by anyone who can read the spool, whatever user they run as.

:func:`unread_spools` combines the two: spools with recent writes or
pending events and no fresh heartbeat. The indexer logs and counts them,
``useraudit doctor`` reports them. Registering never breaks a writer: a
failure is logged once and ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("useraudit.spool")

HEARTBEAT_FILE = "indexer.json"
# An indexer rewrites its heartbeat this often; one older than STALE_AFTER
# means no indexer reads the spool now.
HEARTBEAT_EVERY = 5.0
STALE_AFTER = 60.0
# A spool whose newest segment changed this recently is being written.
ACTIVE_WITHIN = 15 * 60.0
SEGMENT_SUFFIX = ".seg"
OFFSET_SUFFIX = ".offset"


def registry_dir() -> Path:
    """Where writers register their spools (``$USERAUDIT_HOME/spools``)."""
    from useraudit.config import home

    return home() / "spools"


def register_writer(spool: str | os.PathLike[str], registry: Path | None = None) -> None:
    """Note that this process writes ``spool`` (called when a spool writer opens)."""
    try:
        path = Path(spool).resolve()
        folder = registry or registry_dir()
        folder.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest()[:16]
        entry = {"spool": str(path), "pid": os.getpid(), "at": time.time()}
        tmp = folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, folder / f"{key}.json")
    except OSError as exc:  # a read-only home must not stop the host from recording
        log.debug("useraudit: could not register spool %s: %s", spool, exc)


def registered_spools(registry: Path | None = None) -> list[Path]:
    """Every spool a writer on this machine (same USERAUDIT_HOME) has registered."""
    folder = registry or registry_dir()
    out: list[Path] = []
    try:
        entries = sorted(folder.glob("*.json"))
    except OSError:
        return out
    for entry in entries:
        try:
            spool = Path(json.loads(entry.read_text())["spool"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if spool.is_dir():
            out.append(spool)
        else:  # a spool that was deleted: forget it
            entry.unlink(missing_ok=True)
    return out


def write_heartbeat(spool: Path, **info: Any) -> None:
    """The indexer's "I read this spool" mark (pid, host, time, whatever ``info`` adds)."""
    entry = {"pid": os.getpid(), "host": socket.gethostname(), "at": time.time(), **info}
    tmp = spool / f".{HEARTBEAT_FILE}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, spool / HEARTBEAT_FILE)
    except OSError as exc:
        log.warning("indexer: cannot write its heartbeat in %s: %s", spool, exc)


def read_heartbeat(spool: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((spool / HEARTBEAT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def heartbeat_age(spool: Path, now: float | None = None) -> float | None:
    """Seconds since an indexer last marked ``spool``; None if none ever did."""
    return beat_age(read_heartbeat(spool), now)


def beat_age(beat: dict[str, Any] | None, now: float | None = None) -> float | None:
    """Seconds since a heartbeat read with :func:`read_heartbeat` was written; None if none."""
    if beat is None or not isinstance(beat.get("at"), (int, float)):
        return None
    return max(0.0, (now or time.time()) - float(beat["at"]))


@dataclass(frozen=True)
class SpoolState:
    """What a spool holds now, read from file sizes and offsets only (claims no lock)."""

    path: Path
    segments: int
    pending_bytes: int
    last_write_age: float | None  # seconds since the newest segment changed
    oldest_pending_at: float | None  # epoch of the oldest segment with pending bytes
    heartbeat_age: float | None

    @property
    def read_by_indexer(self) -> bool:
        return self.heartbeat_age is not None and self.heartbeat_age <= STALE_AFTER

    @property
    def written_recently(self) -> bool:
        return self.last_write_age is not None and self.last_write_age <= ACTIVE_WITHIN


def inspect(spool: Path, now: float | None = None) -> SpoolState:
    now = now or time.time()
    segments = pending = 0
    newest: float | None = None
    oldest_pending: float | None = None
    try:
        names = sorted(e.name for e in os.scandir(spool) if e.name.endswith(SEGMENT_SUFFIX))
    except OSError:
        names = []
    for name in names:
        try:
            stat = (spool / name).stat()
        except FileNotFoundError:
            continue
        segments += 1
        newest = stat.st_mtime if newest is None else max(newest, stat.st_mtime)
        try:
            committed = int((spool / (name + OFFSET_SUFFIX)).read_text() or 0)
        except (FileNotFoundError, ValueError):
            committed = 0
        left = stat.st_size - committed
        if left > 0:
            pending += left
            if oldest_pending is None:
                # Segment names start with their creation time in ns.
                try:
                    oldest_pending = int(name.split("-", 1)[0]) / 1e9
                except ValueError:
                    oldest_pending = stat.st_mtime
    return SpoolState(
        path=spool,
        segments=segments,
        pending_bytes=pending,
        last_write_age=None if newest is None else max(0.0, now - newest),
        oldest_pending_at=oldest_pending,
        heartbeat_age=heartbeat_age(spool, now),
    )


def unread_spools(
    reading: Path | None = None, registry: Path | None = None, now: float | None = None
) -> list[SpoolState]:
    """Registered spools other than ``reading`` that get events but no indexer reads."""
    mine = reading.resolve() if reading is not None else None
    out = []
    for spool in registered_spools(registry):
        if spool == mine or not spool.is_dir():
            continue
        state = inspect(spool, now)
        if not state.read_by_indexer and (state.written_recently or state.pending_bytes):
            out.append(state)
    return out


def describe(state: SpoolState) -> str:
    """One line for logs and doctor: where, how much waits, since when."""
    when = (
        f"last written {state.last_write_age:.0f}s ago"
        if state.last_write_age is not None
        else "never written"
    )
    return f"{state.path} ({state.pending_bytes:,} bytes waiting, {when})"
