"""The Store contract: what the indexer and the UI need from a backend.

Backends are siblings in this package (``opensearch``, ``sqlite``) and are
chosen by a URL (:func:`useraudit.store.open_store`). The contract:

* ``write`` is idempotent by ``event.id`` and synchronous; it returns one
  :class:`WriteResult` per document, in order, so the caller can retry
  exactly the items that may succeed later and dead-letter the rest. A
  document already stored is ``duplicate``, which counts as delivered.
  When the backend cannot be reached at all, ``write`` raises
  :class:`StoreUnavailable` and nothing may be assumed written
  (:class:`StoreRefused` when it answers but turns the client away).
* ``search``/``count``/``iterate`` always filter on ``Query.account``.
* ``iterate`` yields every match newest first in bounded memory, however
  many there are (for exports and migrations).
* Writes become visible to searches after ``refresh()`` at the latest.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .histogram import Bucket
from .query import Query, SearchPage, SearchRequest

WriteStatus = Literal["created", "duplicate", "retry", "rejected"]


class StoreError(RuntimeError):
    """A backend problem whose message is safe to show an operator."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached now; retry the whole batch later."""


class StoreRefused(StoreUnavailable):
    """The backend turned this client away: credentials, permissions or TLS trust.

    Retrying helps only once an operator fixes the account or the settings,
    so a shipper holds its events and retries (as for an outage) while
    one-off commands stop with the message.
    """


@dataclass(frozen=True, slots=True)
class WriteResult:
    status: WriteStatus
    reason: str = ""

    @property
    def delivered(self) -> bool:
        return self.status in ("created", "duplicate")


class Store(abc.ABC):
    url: str

    @abc.abstractmethod
    def install(self) -> list[str]:
        """Create or upgrade what the backend needs; returns what it did."""

    @abc.abstractmethod
    def write(self, docs: Sequence[dict]) -> list[WriteResult]:
        """Store normalised flat documents idempotently (see module doc)."""

    @abc.abstractmethod
    def search(self, request: SearchRequest) -> SearchPage:
        """One page of matches, newest first, with facet counts."""

    @abc.abstractmethod
    def count(self, query: Query) -> int:
        """How many events match."""

    @abc.abstractmethod
    def iterate(
        self, query: Query, batch_size: int = 1000, fields: Sequence[str] | None = None
    ) -> Iterator[dict]:
        """Every match, newest first, in bounded memory.

        With ``fields``, a backend may return only those fields (it may also
        return more): an export fetches just what its columns show.
        """

    @abc.abstractmethod
    def get(self, event_ids: Sequence[str]) -> dict[str, dict]:
        """Documents by event id (any account; for operators and tests)."""

    @abc.abstractmethod
    def refresh(self) -> None:
        """Make every acknowledged write visible to searches."""

    @abc.abstractmethod
    def delete_older_than(
        self,
        cutoff: datetime,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
        account: str | None = None,
    ) -> int:
        """Retention: delete events before ``cutoff`` in small batches; returns how many.

        ``progress``, if given, is called with each number of events deleted:
        per batch, or once with the total where the backend deletes in one
        request. ``account``, if given, limits the deletion to that account
        (retention per account).
        """

    def histogram(self, query: Query, interval_ms: int, offset_ms: int = 0) -> list[Bucket]:
        """Matches per ``interval_ms`` bucket and outcome, oldest first (see :mod:`.histogram`).

        This fallback walks ``iterate``; the backends answer it in one request.
        """
        from . import histogram

        offset = histogram.check(interval_ms, offset_ms)
        counts: dict[tuple[int, str | None], int] = {}
        for doc in self.iterate(query, fields=("@timestamp", "event.outcome")):
            from datetime import datetime

            from .query import to_ms

            ts = datetime.fromisoformat(str(doc["@timestamp"]).replace("Z", "+00:00"))
            key = (histogram.bucket_of(to_ms(ts), interval_ms, offset), doc.get("event.outcome"))
            counts[key] = counts.get(key, 0) + 1
        return histogram.collect([(s, o, n) for (s, o), n in counts.items()])

    def accounts(self) -> list[str]:
        """Account ids that have events (for operators)."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
