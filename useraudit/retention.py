"""Retention per account, legal holds, and their audit trail.

* Each account keeps its events ``retention_days`` (``useraudit retention set
  ACCOUNT DAYS``), or the default (``retention default DAYS``), or forever
  when neither is set. ``useraudit prune`` applies it, on SQLite and on
  OpenSearch alike (a delete by account and time).
* A **legal hold** on an account stops every deletion of its events —
  ``prune`` with or without ``--older-than`` skips it and says so — until it
  is lifted.
* Every change is itself an audit event of the account
  (``audit_log.retention_changed``, ``audit_log.legal_hold_placed``,
  ``audit_log.legal_hold_lifted``), written to the store at once and sealed
  when a signing key exists (a prune itself is recorded in the integrity
  ledger as a signed cutoff). Settings live in the store
  (:mod:`useraudit.store.account_settings`), so every host sees one truth.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from useraudit.store.account_settings import DEFAULTS, AccountSettings
from useraudit.store.base import Store, StoreError


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class PruneResult:
    deleted: dict[str, int] = field(default_factory=dict)
    held: list[str] = field(default_factory=list)
    kept_forever: list[str] = field(default_factory=list)
    cutoffs: dict[str, datetime] = field(default_factory=dict)


class Retention:
    def __init__(self, store: Store, *, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.settings = AccountSettings(store)
        self.clock = clock or (lambda: datetime.now(UTC))

    # -- reading ---------------------------------------------------------------

    def days(self, account: str) -> float | None:
        own = self.settings.get(account).get("retention_days")
        if own is not None:
            return float(own)
        default = self.settings.get(DEFAULTS).get("retention_days")
        return None if default is None else float(default)

    def hold(self, account: str) -> dict[str, Any] | None:
        return self.settings.get(account).get("legal_hold")

    def held(self) -> list[str]:
        return sorted(a for a, s in self.settings.all().items() if s.get("legal_hold"))

    # -- changing (each change is an audit event) ----------------------------------

    def set_days(self, account: str, days: float | None, by: str | None = None) -> None:
        settings = self.settings.get(account)
        before = settings.get("retention_days")
        if days is not None and float(days).is_integer():
            days = int(days)
        if days is None:
            settings.pop("retention_days", None)
        else:
            settings["retention_days"] = days
        self.settings.put(account, settings)
        if account != DEFAULTS:
            self._audit(
                account,
                "audit_log.retention_changed",
                by,
                {"from": before, "to": days},
                f"retention: {_days(before)} → {_days(days)}",
            )

    def place_hold(self, account: str, reason: str, by: str | None = None) -> None:
        settings = self.settings.get(account)
        settings["legal_hold"] = {
            "reason": reason,
            "since": self.clock().isoformat(timespec="seconds"),
            "by": by or _operator(),
        }
        self.settings.put(account, settings)
        self._audit(
            account, "audit_log.legal_hold_placed", by, {"reason": reason}, f"reason: {reason}"
        )

    def lift_hold(self, account: str, by: str | None = None) -> bool:
        settings = self.settings.get(account)
        hold = settings.pop("legal_hold", None)
        if hold is None:
            return False
        self.settings.put(account, settings)
        self._audit(
            account,
            "audit_log.legal_hold_lifted",
            by,
            {"placed": hold.get("since"), "reason": hold.get("reason")},
            f"hold of {hold.get('since')} lifted",
        )
        return True

    # -- pruning -------------------------------------------------------------------

    def prune(
        self,
        older_than_days: float | None = None,
        *,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
        before_delete: Callable[[str, datetime], None] | None = None,
    ) -> PruneResult:
        """Delete what each account's retention (or ``older_than_days``) allows.

        ``before_delete(account, cutoff)`` runs before each account's deletion
        (the integrity ledger signs the cutoff there).
        """
        result = PruneResult()
        now = self.clock()
        settings = self.settings.all()
        accounts = sorted(set(self.store.accounts()) | named_accounts(settings))
        result.held = [a for a in accounts if settings.get(a, {}).get("legal_hold")]
        if older_than_days is not None and not result.held:
            # One cutoff for all, nothing held: one pass, events without an account too.
            cutoff = now - timedelta(days=older_than_days)
            for account in accounts:
                result.cutoffs[account] = cutoff
                if before_delete is not None:
                    before_delete(account, cutoff)
            n = self.store.delete_older_than(cutoff, batch_size=batch_size, progress=progress)
            result.deleted["*"] = n
            return result
        for account in accounts:
            if account in result.held:
                continue
            days = older_than_days if older_than_days is not None else self.days(account)
            if days is None:
                result.kept_forever.append(account)
                continue
            cutoff = now - timedelta(days=days)
            result.cutoffs[account] = cutoff
            if before_delete is not None:
                before_delete(account, cutoff)
            n = self.store.delete_older_than(
                cutoff, batch_size=batch_size, progress=progress, account=account
            )
            if n:
                result.deleted[account] = n
        return result

    # -- the audit trail ---------------------------------------------------------------

    def _audit(
        self, account: str, action: str, by: str | None, params: dict[str, Any], comments: str
    ) -> None:
        from useraudit.indexer.enrich import Enricher
        from useraudit.integrity.keys import load_current
        from useraudit.middleware.recorder import new_event_id

        raw = {
            "@timestamp": self.clock().isoformat(timespec="milliseconds"),
            "event.id": new_event_id(),
            "event.action": action,
            "event.outcome": "success",
            "organization.id": account,
            "user.id": by or _operator(),
            "audit.params": params,
            "audit.comments": comments,
        }
        doc = Enricher()(raw)
        results = self.store.write([doc])
        if not results[0].delivered:
            raise StoreError(f"the audit event of this change was not stored: {results[0].reason}")
        key = load_current()
        if key is not None:
            from useraudit.integrity.sealer import Sealer

            sealer = Sealer(self.store, key)
            sealer.delivered([doc], results)
            sealer.flush()
        self.store.refresh()


def named_accounts(settings: dict[str, Any]) -> set[str]:
    """Accounts named in the settings (not the defaults, not other keys such as ``~spool:``)."""
    return {key for key in settings if key != DEFAULTS and not key.startswith("~")}


def _days(value: Any) -> str:
    return "default" if value is None else f"{value:g} days"
