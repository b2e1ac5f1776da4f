"""``useraudit verify``: recompute every hash, root, link and signature from the store.

One pass per account: the account's chain of checkpoints is read and
checked (signatures, Merkle roots, ``prev`` links, no missing ``seq``), the
sealed entries are collected, then the account's events are read once and
each is hashed and matched against them. Sealed events the read did not
meet are looked up by id (an event moved out of the period or the account
by an edit is *modified*, not *deleted*). Gaps in the hosts' numbering are
found across every account's entries. The findings are listed in
docs/integrity.md.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from useraudit.store.base import Store
from useraudit.store.ledger import Ledger, ledger_for
from useraudit.store.query import Query

from . import checkpoint
from .canonical import event_hash
from .keys import Keyring

FAILING = (
    "modified",
    "deleted",
    "inserted",
    "out-of-sequence",
    "gap",
    "truncated",
    "untrusted-head",
)


@dataclass(frozen=True)
class Finding:
    # modified, deleted, inserted, out-of-sequence, gap, truncated, untrusted-head, pruned, pending
    kind: str
    account: str
    event_id: str
    detail: str = ""

    def line(self) -> str:
        where = f" (account {self.account})" if self.account else ""
        return f"{self.kind:<16} {self.event_id}{where}{': ' + self.detail if self.detail else ''}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    events: int = 0
    sealed: int = 0
    checkpoints: int = 0
    accounts: int = 0

    @property
    def clean(self) -> bool:
        return not any(f.kind in FAILING for f in self.findings)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for f in self.findings:
            out[f.kind] += 1
        return dict(out)


def iso(ts: datetime) -> str:
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# event id -> (hash, @timestamp, checkpoint id) as sealed: a tuple of strings,
# which the garbage collector stops tracking (a million of them are no burden).
_Sealed = tuple[str, str, str]


@dataclass
class _Numbers:
    """Per host process (origin), the numbers sealed and the event each was sealed for."""

    first: dict[str, dict[int, str]] = field(default_factory=lambda: defaultdict(dict))
    # origin -> number -> every event id sealed with it, only where there are two or more
    twice: dict[str, dict[int, set[str]]] = field(default_factory=lambda: defaultdict(dict))

    def add(self, origin: str, number: int, event_id: str) -> None:
        used = self.first[origin]
        known = used.setdefault(number, event_id)
        if known != event_id:
            self.twice[origin].setdefault(number, {known}).add(event_id)


class Verifier:
    def __init__(
        self,
        store: Store,
        keyring: Keyring,
        *,
        grace: float = 60.0,
        clock: Any = time.time,
        ledger: Ledger | None = None,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.grace = grace
        self.clock = clock
        self.ledger = ledger or ledger_for(store)

    def run(
        self,
        account: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Report:
        report = Report()
        self.store.refresh()
        lo = iso(start) if start else ""
        hi = iso(end) if end else "\uffff"
        if account is not None:
            accounts = [account]
        else:
            accounts = sorted(set(self.ledger.accounts()) | set(self.store.accounts()))
        numbers = _Numbers()  # every account's: gaps cross accounts
        for name in accounts:
            report.accounts += 1
            self._account(name, start, end, lo, hi, report, numbers)
        if account is None:
            self._gaps(numbers, report)
        return report

    # -- one account -----------------------------------------------------------

    def _chain(self, account: str, report: Report) -> Iterator[dict[str, Any]]:
        """The account's trustworthy checkpoints, one by one; problems become findings."""
        expected, prev = 1, ""
        for doc in self.ledger.iterate(account):
            report.checkpoints += 1
            raw_seq = doc.get("seq")
            seq = raw_seq if isinstance(raw_seq, int) else -1
            cid = checkpoint.checkpoint_id(account, seq)
            problem = checkpoint.check(doc, self.keyring)
            if problem is None and doc.get("account") != account:
                problem = f"belongs to account {doc.get('account')!r}"
            if problem is not None:
                report.findings.append(Finding("out-of-sequence", account, cid, problem))
                expected = (seq if seq > 0 else expected) + 1
                prev = checkpoint.checkpoint_hash(doc)
                continue
            if seq != expected:
                missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
                report.findings.append(
                    Finding("out-of-sequence", account, cid, f"checkpoint(s) {missing} missing")
                )
            elif doc.get("prev") != prev:
                report.findings.append(
                    Finding(
                        "out-of-sequence",
                        account,
                        cid,
                        f"does not follow checkpoint {seq - 1} (prev hash differs)",
                    )
                )
            yield doc
            expected, prev = seq + 1, checkpoint.checkpoint_hash(doc)

    def _account(
        self,
        account: str,
        start: datetime | None,
        end: datetime | None,
        lo: str,
        hi: str,
        report: Report,
        numbers: _Numbers,
    ) -> None:
        sealed: dict[str, _Sealed] = {}
        cutoff = ""
        for doc in self._chain(account, report):  # read as it goes: leaves are not kept
            if doc.get("kind") == "prune":
                cutoff = max(cutoff, str(doc.get("before") or ""))
                continue
            cid = checkpoint.checkpoint_id(account, doc["seq"])
            for event_id, ts, origin, number, digest in doc.get("leaves") or ():
                ts = ts if isinstance(ts, str) else ""
                if not lo <= ts <= hi:
                    continue
                if origin is not None and isinstance(number, int):
                    numbers.add(str(origin), number, event_id)
                known = sealed.get(event_id)
                if known is None:
                    sealed[event_id] = (digest, ts, cid)
                elif known[0] != digest:
                    report.findings.append(
                        Finding(
                            "modified",
                            account,
                            event_id,
                            f"sealed with different hashes in {known[2]} and {cid}",
                        )
                    )
        report.sealed += len(sealed)
        seen: set[str] = set()
        now = self.clock()
        if account:
            lookup, saw = sealed.get, seen.add
            for doc in self.store.iterate(Query(account, start=start, end=end), batch_size=2000):
                report.events += 1
                event_id = str(doc.get("event.id", ""))
                info = lookup(event_id)
                if info is None:
                    self._unsealed(account, event_id, doc, now, report)
                    continue
                saw(event_id)
                if event_hash(doc) != info[0]:
                    report.findings.append(
                        Finding("modified", account, event_id, f"differs from {info[2]}")
                    )
        unseen = [eid for eid in sealed if eid not in seen]
        for i in range(0, len(unseen), 1000):
            chunk = unseen[i : i + 1000]
            found = self.store.get(chunk)
            for event_id in chunk:
                stored = found.get(event_id)
                digest, ts, cid = sealed[event_id]
                if stored is not None:
                    report.events += 1
                    if event_hash(stored) != digest:
                        report.findings.append(
                            Finding(
                                "modified",
                                account,
                                event_id,
                                f"differs from {cid} (now in account "
                                f"{stored.get('organization.id')!r} at {stored.get('@timestamp')})",
                            )
                        )
                elif ts and ts < cutoff:
                    report.findings.append(
                        Finding("pruned", account, event_id, f"retention before {cutoff}")
                    )
                else:
                    report.findings.append(
                        Finding("deleted", account, event_id, f"sealed in {cid}")
                    )

    def _unsealed(
        self, account: str, event_id: str, doc: dict[str, Any], now: float, report: Report
    ) -> None:
        """A stored event no checkpoint seals: not sealed yet, or inserted."""
        if self._recent(doc.get("event.ingested"), now):
            report.findings.append(
                Finding("pending", account, event_id, "stored moments ago, not sealed yet")
            )
        else:
            report.findings.append(
                Finding("inserted", account, event_id, "no checkpoint seals this event")
            )

    def _recent(self, ingested: Any, now: float) -> bool:
        if not isinstance(ingested, str):
            return False
        try:
            when = datetime.fromisoformat(ingested.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return False
        return now - self.grace <= when <= now + 5

    # -- hosts' numbering ------------------------------------------------------

    def _gaps(self, numbers: _Numbers, report: Report) -> None:
        for origin, used in sorted(numbers.first.items()):
            for number, ids in sorted(numbers.twice.get(origin, {}).items()):
                report.findings.append(
                    Finding(
                        "out-of-sequence",
                        "",
                        ", ".join(sorted(ids)),
                        f"origin {origin} numbered {len(ids)} events {number}",
                    )
                )
            for first, last in _missing(sorted(used)):
                span = f"{first}" if first == last else f"{first}..{last}"
                report.findings.append(
                    Finding(
                        "gap",
                        "",
                        f"{origin}#{span}",
                        f"{last - first + 1} event(s) numbered by this host process never stored",
                    )
                )


def _missing(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Runs of integers missing between the smallest and largest given (sorted input)."""
    out: list[tuple[int, int]] = []
    prev: int | None = None
    for n in numbers:
        if prev is not None and n > prev + 1:
            out.append((prev + 1, n - 1))
        prev = n
    return out
