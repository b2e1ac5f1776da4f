"""Completeness marks in the store: up to when each spool's events are searchable.

Indexers publish one mark per spool they read (:mod:`useraudit.indexer.completeness`
says how it is measured); :func:`complete_up_to` is the oldest of them: every
event any host acknowledged before that time is searchable, in every account.
Marks are kept beside the account settings under ``~spool:<host>:<path>``.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

from .account_settings import AccountSettings
from .base import Store

PREFIX = "~spool:"


def spool_key(spool: Path) -> str:
    return f"{PREFIX}{socket.gethostname()}:{spool.resolve()}"


def publish(store: Store, spool: Path, mark: float, now: float) -> None:
    AccountSettings(store).put(
        spool_key(spool),
        {
            "complete_up_to": datetime.fromtimestamp(mark, UTC).isoformat(timespec="seconds"),
            "published_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        },
    )


def complete_up_to(store: Store) -> datetime | None:
    """The store's completeness mark (oldest of every spool's), or None if none was published."""
    marks = [
        s.get("complete_up_to")
        for key, s in AccountSettings(store).all().items()
        if key.startswith(PREFIX)
    ]
    times = [datetime.fromisoformat(m) for m in marks if isinstance(m, str)]
    return min(times) if times else None


CANARY = "~canary"


def publish_canary(store: Store, report: dict) -> None:
    """Keep the latest canary figures (p50/p99 capture-to-searchable) for /metrics."""
    AccountSettings(store).put(CANARY, {**report, "at": datetime.now(UTC).isoformat()})


def last_canary(store: Store) -> dict:
    return AccountSettings(store).get(CANARY)
