"""Stages: small steps the indexer runs on every batch, beside storing it.

The indexer calls each stage, in order, at three points of a batch's life::

    spool → enrich → before_store(docs) → Store.write → after_store(stored) → flush() → commit

* ``before_store(docs)`` sees the enriched documents about to be written and
  may change them in place (add fields: a detection verdict, a hash). It
  must not drop documents: what it cannot handle it marks.
* ``after_store(docs)`` sees the documents the store now holds (created, or
  already there from an earlier attempt), in spool order. A crash before
  the spool position is committed replays them, so a stage must accept the
  same event id twice.
* ``flush()`` runs before the spool position moves past those documents:
  whatever the stage must not lose is durable when it returns.

A stage must not hold the indexer back: a slow or dead destination is
the stage's own affair (the sinks keep a durable outbox per destination,
see docs/sinks.md). An exception from a stage stops the batch, which is
then shipped again, so a stage raises only for a fault of this machine
(a full disk), never for a remote one.
"""

from __future__ import annotations

from typing import Any

Doc = dict[str, Any]


class Stage:
    """Base class with do-nothing hooks; override the ones you need."""

    name = "stage"

    def before_store(self, docs: list[Doc]) -> None:
        """Change the documents about to be stored, in place."""

    def after_store(self, docs: list[Doc]) -> None:
        """Take note of documents the store holds (may repeat after a crash)."""

    def flush(self) -> None:
        """Make durable what ``after_store`` took, before the spool commits."""

    def close(self) -> None:
        """Release resources; called once when the indexer closes."""
