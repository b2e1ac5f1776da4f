"""The running indexer's side of :mod:`useraudit.spool_watch`: heartbeat and warnings.

Every few seconds the indexer marks its spool as read (``indexer.json``),
and every ``check_every`` seconds it looks for registered spools that get
events while no indexer reads them. Each such spool is logged as a warning
(again at most every ``warn_every`` seconds) and counted in
``IndexerStats.unread_spools``, so a host app writing to the wrong
directory is seen in the indexer's own log and in ``useraudit doctor``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from useraudit import spool_watch

log = logging.getLogger("useraudit.indexer")


class SpoolWatch:
    def __init__(
        self,
        spool: Path,
        stats: Any,
        *,
        store: str = "",
        details: Callable[[], dict[str, Any]] | None = None,
        check_every: float = 30.0,
        warn_every: float = 600.0,
        registry: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spool = spool
        self.stats = stats
        self.store = store
        self.details = details  # more for the heartbeat, e.g. what detection set aside
        self.check_every = check_every
        self.warn_every = warn_every
        self.registry = registry
        self.clock = clock
        self._beat_at = float("-inf")
        self._checked_at = float("-inf")
        self._warned: dict[Path, float] = {}

    def tick(self) -> None:
        """Called by the indexer's loop; cheap unless a period is due."""
        now = self.clock()
        if now - self._beat_at >= spool_watch.HEARTBEAT_EVERY:
            self._beat_at = now
            more = self.details() if self.details is not None else {}
            spool_watch.write_heartbeat(self.spool, store=self.store, **more)
        if now - self._checked_at >= self.check_every:
            self._checked_at = now
            self.check(now)

    def check(self, now: float) -> list[spool_watch.SpoolState]:
        unread = spool_watch.unread_spools(self.spool, self.registry)
        self.stats.unread_spools = len(unread)
        for state in unread:
            if now - self._warned.get(state.path, float("-inf")) < self.warn_every:
                continue
            self._warned[state.path] = now
            log.warning(
                "indexer: events are being written to %s, which no indexer reads; this "
                "indexer reads %s. Point both at one spool (USERAUDIT_SPOOL, or "
                "useraudit indexer run --spool %s); `useraudit doctor` explains.",
                spool_watch.describe(state),
                self.spool,
                state.path,
            )
        return unread


def start_lines(spool: Path, store_url: str, registry: Path | None = None) -> list[str]:
    """What the indexer says when it starts: which spool, which store, what waits elsewhere."""
    state = spool_watch.inspect(spool)
    lines = [
        f"indexer: reading spool {spool} ({state.pending_bytes:,} bytes waiting in "
        f"{state.segments} segment(s)); storing into {store_url}"
    ]
    if not state.segments:
        lines.append(
            f"indexer: the spool {spool} is empty so far; a host app writes here when its "
            "USERAUDIT_SPOOL (or USERAUDIT_HOME) is the same as this indexer's"
        )
    for other in spool_watch.unread_spools(spool, registry):
        lines.append(
            f"indexer: WARNING: events are being written to {spool_watch.describe(other)}, "
            f"which no indexer reads (this one reads {spool})"
        )
    return lines
