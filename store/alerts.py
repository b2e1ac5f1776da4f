"""Alerts and detection state: what the detection engine keeps in the store.

The contract every backend keeps (held by ``tests/store/test_alerts_contract.py``
against the real OpenSearch node and a SQLite file):

* **Alerts are idempotent by id.** An alert's id is a pure function of
  rule, account, subject and time window (:func:`alert_id`), so an indexer
  that re-reads events after a crash, or a second indexer on the same
  spool, meets the alert it (or the other) already stored. ``upsert``
  merges: the union of event ids (at most :data:`MAX_EVENT_IDS` kept),
  ``count`` grown only by ids not seen before, ``first_seen`` the earliest,
  ``last_seen`` the latest. Replaying the same events changes nothing
  (``unchanged``). New events on a resolved alert reopen it.
* **State is compare-and-set.** ``load_state`` returns each key's value with
  a version; ``save_state`` writes only where the version is still the one
  loaded and names the keys where it was not, so the engine reloads, merges
  and tries again: two indexers never overwrite each other's updates.
* **Status changes** (open → acknowledged → resolved) record by whom and
  when, in the alert's ``history``.
* **Notifications** are an outbox: an alert is stored ``notified=False`` and
  ``pending_notifications`` lists such alerts until ``mark_notified``;
  a crash between storing and sending re-sends, with the same alert id.
* Everything is scoped by account; reads name the account.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .base import Store, StoreError

Severity = Literal["low", "medium", "high"]
Status = Literal["open", "acknowledged", "resolved"]
UpsertResult = Literal["created", "updated", "unchanged"]

SEVERITIES: tuple[str, ...] = ("low", "medium", "high")
STATUSES: tuple[str, ...] = ("open", "acknowledged", "resolved")
# Event ids kept per alert: enough to open them all in the UI for any real
# burst; past it, count keeps growing but replays of the overflow may recount.
MAX_EVENT_IDS = 200
# A state key's version before it was ever saved.
NEW = 0


def alert_id(account: str, rule: str, subject: str, window: int) -> str:
    """The stable id of rule + account + subject + window number."""
    body = "\x1f".join((account, rule, subject, str(window))).encode()
    return hashlib.sha256(body).hexdigest()[:32]


@dataclass
class Alert:
    """One alert: a rule's finding about a subject (a user, a network) in a window."""

    id: str
    account: str
    rule: str
    severity: str
    subject: str
    title: str
    first_seen: str  # ISO 8601 UTC with milliseconds, like @timestamp
    last_seen: str
    event_ids: list[str]
    count: int = 0
    user_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    status: str = "open"
    status_by: str | None = None
    status_at: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    notified: bool = False

    def __post_init__(self) -> None:
        if not self.count:
            self.count = len(self.event_ids)

    def as_dict(self) -> dict[str, Any]:
        # Shallow copies: dataclasses.asdict deep-copies recursively, ~40x slower.
        out = dict(self.__dict__)
        out["event_ids"] = list(self.event_ids)
        out["details"] = dict(self.details)
        out["history"] = [dict(h) for h in self.history]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


def merge_alert(existing: Alert, new: Alert) -> tuple[Alert, UpsertResult]:
    """``existing`` after ``new`` (same id) arrived; what the backends compute."""
    known = set(existing.event_ids)
    added = [i for i in dict.fromkeys(new.event_ids) if i not in known]
    if not added:
        return existing, "unchanged"
    room = max(0, MAX_EVENT_IDS - len(existing.event_ids))
    merged = replace(
        existing,
        event_ids=existing.event_ids + added[:room],
        count=existing.count + len(added),
        first_seen=min(existing.first_seen, new.first_seen),
        last_seen=max(existing.last_seen, new.last_seen),
        history=list(existing.history),
    )
    if merged.status == "resolved":
        merged.status = "open"
        merged.history.append({"status": "open", "by": "detection", "at": new.last_seen})
    return merged, "updated"


class DetectionStore(abc.ABC):
    """Alerts and detection state of one Store (see the module doc for the contract)."""

    @abc.abstractmethod
    def install(self) -> list[str]:
        """Create what alerts and state need (idempotent)."""

    @abc.abstractmethod
    def upsert(self, alerts: Sequence[Alert]) -> list[UpsertResult]:
        """Store or merge alerts by id; one result per alert, in order."""

    @abc.abstractmethod
    def get(self, account: str, alert_id: str) -> Alert | None:
        """One alert of the account, or None."""

    @abc.abstractmethod
    def list_alerts(
        self, account: str, statuses: Sequence[str] = (), limit: int = 500
    ) -> list[Alert]:
        """The account's alerts, most recent ``last_seen`` first."""

    @abc.abstractmethod
    def set_status(self, account: str, alert_id: str, status: str, by: str, at: str) -> Alert:
        """Move an alert to ``status``, recording who and when; KeyError when absent."""

    @abc.abstractmethod
    def pending_notifications(self, limit: int = 100) -> list[Alert]:
        """Alerts not yet marked notified, oldest first."""

    @abc.abstractmethod
    def mark_notified(self, alerts: Sequence[Alert]) -> None:
        """Take alerts out of the notification outbox."""

    @abc.abstractmethod
    def load_state(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[dict, Any]]:
        """Values and versions of (account, key) pairs; absent keys as ({}, NEW)."""

    @abc.abstractmethod
    def save_state(self, items: Sequence[tuple[str, str, dict, Any]]) -> list[tuple[str, str]]:
        """Write (account, key, value, version loaded); returns the keys whose version moved."""

    def save_state_versions(
        self, items: Sequence[tuple[str, str, dict, Any]]
    ) -> tuple[list[tuple[str, str]], dict[tuple[str, str], tuple[dict, Any]]]:
        """:meth:`save_state`, plus (value, version) of each saved key as stored now.

        A caller that keeps state in memory saves again from these versions
        without reading first. This default reads the saved keys back (the
        value read is the one to keep: another writer may have moved it
        since); backends that learn the new version while writing override it.
        """
        conflicts = self.save_state(items)
        refused = set(conflicts)
        saved = [(a, k) for a, k, _value, _version in items if (a, k) not in refused]
        return conflicts, self.load_state(saved) if saved else {}

    def write(
        self, alerts: Sequence[Alert], items: Sequence[tuple[str, str, dict, Any]]
    ) -> tuple[list[UpsertResult], list[tuple[str, str]], dict[tuple[str, str], tuple[dict, Any]]]:
        """:meth:`upsert` of ``alerts`` and :meth:`save_state_versions` of ``items``, together.

        Returns (upsert results, state conflicts, saved state). Backends that
        can write both in one transaction or request override this; the
        alerts are never stored after the state (a crash between the two
        replays the batch into the same alerts).
        """
        results = self.upsert(alerts) if alerts else []
        conflicts, saved = self.save_state_versions(items) if items else ([], {})
        return results, conflicts, saved

    def sync(self) -> None:  # noqa: B027 - optional hook
        """Make every :meth:`write` so far durable (a power cut keeps it).

        The detection engine calls it before the indexer moves spool
        positions past the events it evaluated. Backends whose every write is
        durable when acknowledged have nothing to do.
        """

    @abc.abstractmethod
    def refresh(self) -> None:
        """Make every acknowledged write visible to ``list_alerts``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


def check_status(status: str) -> None:
    if status not in STATUSES:
        raise StoreError(f"alert status must be one of {', '.join(STATUSES)}, not {status!r}")


def status_change(alert: Alert, status: str, by: str, at: str) -> Alert:
    """``alert`` moved to ``status`` by ``by`` at ``at``, with the change in its history."""
    check_status(status)
    changed = replace(alert, history=list(alert.history))
    changed.status, changed.status_by, changed.status_at = status, by, at
    changed.history.append({"status": status, "by": by, "at": at})
    return changed


def detection_store(store: Store) -> DetectionStore:
    """The DetectionStore that lives beside ``store`` (same file or cluster)."""
    from .opensearch import OpenSearchStore
    from .sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        from .sqlite.alerts import SQLiteDetectionStore

        return SQLiteDetectionStore(store.path)
    if isinstance(store, OpenSearchStore):
        from .opensearch.alerts import OpenSearchDetectionStore

        return OpenSearchDetectionStore(store.client, store.prefix, store.url)
    raise StoreError(f"no alerts store for {type(store).__name__}")
