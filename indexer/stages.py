"""Pipeline stages: small hooks other parts plug into the indexer.

A stage sees every event twice, at two well-defined points, and never
weakens the indexer's guarantees:

``prepare(doc)``
    On the read-ahead thread, after enrichment and before the write. It may
    add fields to the document (GeoIP adds ``source.geo.*``). An exception
    is logged and counted (``stage_errors``) and the event ships without
    that stage's fields: a stage never costs an event.

``delivered(docs)``
    After the store acknowledged the batch (``created`` and ``duplicate``
    alike: a re-read after a crash must reach the stage again) and before
    the spool position is committed, in spool order. So a stage sees every
    stored event at least once and must be idempotent (the detection engine
    keys its alerts and state updates by event id). Raising
    :class:`~useraudit.store.base.StoreUnavailable` holds the batch and
    retries the stage with backoff, as for the write itself; any other
    exception is logged and counted, and shipping goes on.

Two optional points, for stages that must tell a first write from a
re-delivery or finish work before the spool moves on (the integrity sealer,
``useraudit.integrity.sealer``):

``stored(docs, results)``
    Right after each store answer, with one
    :class:`~useraudit.store.base.WriteResult` per document (``created``,
    ``duplicate``, ``retry``, ``rejected``).

``commit()``
    Before the indexer commits spool positions (every ``commit_interval``
    and on close). Raising :class:`~useraudit.store.base.StoreUnavailable`
    holds the positions: after a crash the same events come back, as
    ``duplicate`` results.

``close()``
    When the indexer stops.

Stages run in the order given to :class:`~useraudit.indexer.shipper.Indexer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from useraudit.store.base import WriteResult


@runtime_checkable
class Stage(Protocol):
    name: str

    def prepare(self, doc: dict) -> None: ...

    def delivered(self, docs: Sequence[dict]) -> None: ...

    def close(self) -> None: ...


class BaseStage:
    """A stage that does nothing at every point: subclass and override what you need."""

    name = "stage"

    def prepare(self, doc: dict) -> None:
        pass

    def delivered(self, docs: Sequence[dict]) -> None:
        pass

    def stored(self, docs: Sequence[dict], results: Sequence[WriteResult]) -> None:
        pass

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass
