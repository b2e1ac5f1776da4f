"""What every sink is: a destination that takes batches of stored events.

A sink implements :meth:`Sink.deliver`; the :class:`~.outbox.SinkWorker`
around it does the rest (durable position, retries with backoff, dead
letters, lag), so a destination is only its protocol.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

Doc = dict[str, Any]


class SinkUnavailable(Exception):
    """The destination cannot take the batch now; the whole batch is sent again later.

    Nothing of the batch may be assumed delivered (some of it may have been:
    delivery is at least once).
    """


@dataclass(frozen=True, slots=True)
class Rejection:
    """One event the destination refused for good, and why (goes to the sink's dead letters)."""

    index: int
    reason: str


class Event:
    """One outbox entry: the stored document as JSON bytes, decoded on first use."""

    __slots__ = ("raw", "_doc")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._doc: Doc | None = None

    @property
    def doc(self) -> Doc:
        if self._doc is None:
            self._doc = orjson.loads(self.raw)
        return self._doc

    @property
    def id(self) -> str | None:
        value = self.doc.get("event.id")
        return str(value) if value is not None else None


class Sink(abc.ABC):
    """A destination. ``deliver`` is called from one worker thread only."""

    kind: str = "sink"

    def __init__(self, name: str) -> None:
        self.name = name

    @abc.abstractmethod
    def deliver(self, docs: Sequence[Event]) -> list[Rejection]:
        """Send ``docs``; return those refused for good, or raise SinkUnavailable."""

    def confirmed_before(self) -> float:
        """A ``time.monotonic()`` instant: batches delivered before it are safe.

        Most protocols confirm each batch (an HTTP answer, a broker ack, an
        fsync), so everything delivered is safe at once. Syslog over TCP has
        no acknowledgement: it confirms a batch once the connection has
        stayed up for a while after it (see :mod:`.syslog`). Raises
        SinkUnavailable when it finds the connection lost: the worker then
        sends every unconfirmed batch again.
        """
        return time.monotonic()

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def describe(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class EventFilter:
    """Which events a sink takes. Empty means all; values within one list are OR-ed."""

    accounts: frozenset[str] = field(default_factory=frozenset)
    actions: frozenset[str] = field(default_factory=frozenset)
    outcomes: frozenset[str] = field(default_factory=frozenset)

    def __call__(self, doc: Doc) -> bool:
        if self.accounts and doc.get("organization.id") not in self.accounts:
            return False
        if self.actions and doc.get("event.action") not in self.actions:
            return False
        if self.outcomes and doc.get("event.outcome") not in self.outcomes:
            return False
        return True

    @property
    def everything(self) -> bool:
        return not (self.accounts or self.actions or self.outcomes)
