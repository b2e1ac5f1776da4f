"""Completeness marks in the store: up to when each spool's events are searchable.

Indexers publish one mark per spool they read (:mod:`useraudit.indexer.completeness`
says how it is measured), each a default time and the accounts held back
before it; :func:`complete_up_to` of an account is the oldest of every
spool's mark for that account: every event any host acknowledged for it
before that time is searchable. Without an account, the oldest of all.
Marks are kept beside the account settings under ``~spool:<host>:<path>``.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .account_settings import AccountSettings
from .base import Store

PREFIX = "~spool:"


def spool_key(spool: Path) -> str:
    return f"{PREFIX}{socket.gethostname()}:{spool.resolve()}"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def publish(
    store: Store,
    spool: Path,
    mark: float,
    now: float,
    *,
    accounts: Mapping[str, float] | None = None,
) -> None:
    """This spool's mark: ``mark`` for every account but those in ``accounts``, held back."""
    AccountSettings(store).put(
        spool_key(spool),
        {
            "complete_up_to": _iso(mark),
            "accounts": {a: _iso(t) for a, t in (accounts or {}).items()},
            "published_at": _iso(now),
        },
    )


@dataclass(frozen=True)
class SpoolMark:
    default: datetime
    accounts: dict[str, datetime]

    def of(self, account: str | None) -> datetime:
        """Up to when ``account``'s events from this spool are searchable; None: all accounts."""
        if account is None:
            return min([self.default, *self.accounts.values()])
        return self.accounts.get(account, self.default)


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def published(store: Store) -> list[SpoolMark]:
    """Every spool's published mark."""
    marks = []
    for key, s in AccountSettings(store).all().items():
        default = _parse(s.get("complete_up_to")) if key.startswith(PREFIX) else None
        if default is None:
            continue
        held = s.get("accounts")
        if not isinstance(held, dict):
            held = {}
        accounts = {a: t for a, v in held.items() if (t := _parse(v)) is not None}
        marks.append(SpoolMark(default, accounts))
    return marks


def oldest(marks: list[SpoolMark], account: str | None = None) -> datetime | None:
    times = [m.of(account) for m in marks]
    return min(times) if times else None


def complete_up_to(store: Store, account: str | None = None) -> datetime | None:
    """Up to when every acknowledged event of ``account`` is searchable (None: of every account).

    The oldest of every spool's mark for it; None if no indexer published one.
    """
    return oldest(published(store), account)


CANARY = "~canary"


def publish_canary(store: Store, report: dict) -> None:
    """Keep the latest canary figures (p50/p99 capture-to-searchable) for /metrics."""
    AccountSettings(store).put(CANARY, {**report, "at": datetime.now(UTC).isoformat()})


def last_canary(store: Store) -> dict:
    return AccountSettings(store).get(CANARY)
