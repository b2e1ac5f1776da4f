"""Stages: small hooks the indexer calls around each write.

A stage sees every document once the store has answered for it, and is
asked to finish its own work before the spool positions of those documents
are committed. Integrity sealing is one (``useraudit.integrity.sealer``);
detections and streaming sinks can be others::

    class Stage(Protocol):
        def stored(self, docs, results) -> None: ...   # after each store answer
        def commit(self) -> None: ...                   # before the spool moves on

``commit`` raising :class:`~useraudit.store.base.StoreUnavailable` holds the
spool positions: what the stage had seen is delivered again after a crash,
and ``stored`` then sees those documents as ``duplicate`` results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from useraudit.store.base import WriteResult


class Stage(Protocol):
    def stored(self, docs: Sequence[dict], results: Sequence[WriteResult]) -> None:
        """The store answered for ``docs`` (one result each, in order)."""

    def commit(self) -> None:
        """Everything seen so far must be done before the spool positions move past it."""
