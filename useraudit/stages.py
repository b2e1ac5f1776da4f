"""Pipeline stages: small hooks other parts plug into the indexer.

Detection (``useraudit.detect``), streaming sinks (:mod:`.sinks`) and
integrity sealing (``useraudit.integrity.sealer``) all hang off the same pipeline through this one
interface. A stage never weakens the indexer's guarantees; the indexer
calls each stage, in the order given to
:class:`~useraudit.indexer.shipper.Indexer`, at four points::

    spool → enrich → prepare(doc) → Store.write → delivered(docs, results) → flush() → commit

``prepare(doc)``
    On the read-ahead thread, per event, after enrichment and before the
    write. It may add fields to the document (GeoIP adds ``source.geo.*``).
    An exception is logged and counted (``stage_errors``) and the event
    ships without that stage's fields: a stage never costs an event.
    A stage with ``prepares_last`` (the sealer hashes each document here)
    must see it as it will be stored: the indexer refuses a stage list
    where another stage that prepares follows it.

``delivered(docs, results)``
    After the store acknowledged the batch (``created`` and ``duplicate``
    alike, each document with its store answer, so a stage can tell an event
    re-delivered after a crash from a new one) and before
    the spool position is committed, in spool order. A stage sees every
    stored event at least once and must accept the same event id twice.
    Raising :class:`~useraudit.store.base.StoreUnavailable` or
    :class:`OSError` (a fault of this machine or its store, such as a full
    disk) holds the batch and retries the stage with backoff, as for the
    write itself; any other exception is logged and counted, and shipping
    goes on. A slow or dead remote destination is the stage's own affair
    (the sinks keep a durable outbox per destination, docs/sinks.md): it
    must not hold the indexer back.

``flush()``
    Before the spool position moves past the delivered events: whatever
    the stage must not lose is durable when it returns. Raising
    :class:`~useraudit.store.base.StoreUnavailable` or :class:`OSError` holds
    the spool positions: a crash then re-delivers, never loses.

``ready()``
    Whether ``flush()`` would return now, without waiting for work the
    stage does in the background (default: yes). A commit that falls due
    while a stage is not ready is put off, by at most three more commit
    intervals, instead of holding the next write up while it waits.

``close()``
    Once, when the indexer stops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from useraudit.store.base import WriteResult

Doc = dict[str, Any]


class Stage:
    """A stage that does nothing at every point: subclass and override what you need."""

    name = "stage"
    # True when prepare() must see each document as it will be stored.
    prepares_last = False

    def prepare(self, doc: Doc) -> None:
        """Add fields to one event before it is stored (read-ahead thread)."""

    def delivered(self, docs: Sequence[Doc], results: Sequence[WriteResult]) -> None:
        """Take note of events the store holds (may repeat after a crash)."""

    def flush(self) -> None:
        """Make durable what ``delivered`` took, before the spool commits."""

    def ready(self) -> bool:
        """Whether :meth:`flush` would return without waiting on background work."""
        return True

    def close(self) -> None:
        """Release resources; called once when the indexer closes."""


def check_order(stages: Sequence[Stage]) -> None:
    """Refuse a stage that prepares after one that must prepare last (ValueError)."""
    for i, stage in enumerate(stages):
        if not stage.prepares_last:
            continue
        later = [s.name for s in stages[i + 1 :] if type(s).prepare is not Stage.prepare]
        if later:
            raise ValueError(
                f"stage {stage.name!r} must prepare after every other stage; "
                f"{', '.join(repr(n) for n in later)} come after it"
            )


# The name the detection engine's first milestone used.
BaseStage = Stage
