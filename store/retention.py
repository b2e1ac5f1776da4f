"""How long events are kept: one policy and one set of defaults, for both stores.

* **OpenSearch** keeps events in monthly (or daily) indices. An index becomes
  read-only and is force-merged ``warm_after`` days after the end of its
  month, and is deleted ``delete_after`` days after it. ``useraudit templates
  install`` hands this policy to the cluster's ISM plugin where there is
  one; elsewhere ``useraudit retention apply``, run daily, does the same by
  the date in each index's name (:mod:`.opensearch.retention`).
* **SQLite** has no read-only part: ``useraudit retention apply`` deletes
  the events older than ``delete_after`` days, in small transactions.
* ``useraudit prune --older-than DAYS`` deletes events older than DAYS days
  now, event by event, on either store: for a one-off purge.

The defaults live in :mod:`useraudit.config`. A policy per account would be
a mapping from account to :class:`RetentionPolicy` beside :data:`DEFAULT`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from useraudit.config import DEFAULT_DELETE_AFTER_DAYS, DEFAULT_WARM_AFTER_DAYS

from .base import Store
from .query import Query


@dataclass(frozen=True)
class RetentionPolicy:
    """Events kept ``delete_after`` days; indices read-only after ``warm_after`` (None: never)."""

    warm_after: int | None = DEFAULT_WARM_AFTER_DAYS
    delete_after: int = DEFAULT_DELETE_AFTER_DAYS

    def __post_init__(self) -> None:
        if self.delete_after <= 0:
            raise ValueError("delete_after must be at least one day")
        if self.warm_after is not None and self.warm_after >= self.delete_after:
            raise ValueError("warm_after must be shorter than delete_after")

    def cutoff(self, now: datetime | None = None) -> datetime:
        """Events before this instant are past ``delete_after``."""
        return (now or datetime.now(UTC)) - timedelta(days=self.delete_after)


DEFAULT = RetentionPolicy()


def older_than(cutoff: datetime, store: Store) -> int:
    """How many events (with an account) are older than ``cutoff``, via the contract."""
    end = cutoff - timedelta(milliseconds=1)
    return sum(store.count(Query(account, end=end)) for account in store.accounts())


def delete_before(
    store: Store,
    cutoff: datetime,
    *,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete every event before ``cutoff`` (in batches of ``batch_size``); how many went."""
    return store.delete_older_than(cutoff, batch_size=batch_size, progress=progress)
