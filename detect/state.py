"""Per-account detection state: small, mergeable, keyed values kept in the store.

Every state value has one shape: ``{member: [[ts_ms, event_id, extra], ...]}``
(a member is a device, a network, a user, an event id...). Adding an entry
twice is a no-op (entries are a set by ``(ts_ms, event_id)``), and two
values merge by union. That is what makes detection safe to replay after a
crash and to run on several indexers at once: whatever order entries
arrive in, and however often, the merged value is the same.

Values are kept bounded: entries older than the horizon before the value's
newest entry go (pruning is relative to the data, never to the clock, so a
replay prunes the same way), each member keeps its newest
:data:`MAX_PER_MEMBER` entries, a value its :data:`MAX_MEMBERS` most recent
members.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

MAX_PER_MEMBER = 16
MAX_MEMBERS = 512
DAY_MS = 86_400_000
DEFAULT_HORIZON_MS = 35 * DAY_MS

Entry = list  # [ts_ms, event_id, extra]


def merge_values(a: dict, b: dict, horizon_ms: int = DEFAULT_HORIZON_MS) -> dict:
    """The union of two state values, bounded."""
    out = copy.deepcopy(a)
    for member, entries in b.items():
        mine = out.setdefault(member, [])
        seen = {(e[0], e[1]) for e in mine}
        for e in entries:
            if (e[0], e[1]) not in seen:
                mine.append(list(e))
                seen.add((e[0], e[1]))
    return bound(out, horizon_ms)


def bound(value: dict, horizon_ms: int = DEFAULT_HORIZON_MS) -> dict:
    """``value`` without entries past the horizon or the caps (members' order kept).

    A value already within them (most are, at every save) is returned as it is.
    """
    newest, oldest, longest = 0, None, 0
    for entries in value.values():
        longest = max(longest, len(entries))
        for e in entries:
            ts = e[0]
            if ts > newest:
                newest = ts
            if oldest is None or ts < oldest:
                oldest = ts
    floor = newest - horizon_ms
    if (
        len(value) <= MAX_MEMBERS
        and longest <= MAX_PER_MEMBER
        and (oldest is None or oldest >= floor)
        and all(value.values())
    ):
        return value
    kept: dict[str, list] = {}
    for member, entries in value.items():
        fresh = [e for e in entries if e[0] >= floor]
        if len(fresh) > MAX_PER_MEMBER:
            fresh.sort(key=lambda e: (e[0], e[1]))
            fresh = fresh[-MAX_PER_MEMBER:]
        if fresh:
            kept[member] = fresh
    if len(kept) > MAX_MEMBERS:
        recent = sorted(kept, key=lambda m: (kept[m][-1][0], m))[-MAX_MEMBERS:]
        kept = {m: kept[m] for m in recent}
    return kept


class StateView:
    """The state of one account, as a rule sees it: read entries, add entries.

    Only keys the rule named in ``keys()`` are loaded; reading another key
    sees it empty.
    """

    def __init__(self, account: str, values: dict[tuple[str, str], dict]) -> None:
        self.account = account
        self._values = values
        self.dirty: set[tuple[str, str]] = set()

    def value(self, key: str) -> dict[str, list[Entry]]:
        return self._values.get((self.account, key), {})

    def entries(
        self, key: str, member: str | None = None, prefix: str = ""
    ) -> Iterator[tuple[str, Entry]]:
        """(member, entry) pairs of a key, of one member of it, or of members with a prefix."""
        value = self.value(key)
        if member is not None:
            for e in value.get(member, ()):
                yield member, e
            return
        for m, entries in value.items():
            if m.startswith(prefix):
                for e in entries:
                    yield m, e

    def add(self, key: str, member: str, ts_ms: int, event_id: str, extra: Any = None) -> None:
        """Record an entry (a no-op when this event's entry is already there)."""
        value = self._values.setdefault((self.account, key), {})
        entries = value.setdefault(member, [])
        for e in entries:
            if e[0] == ts_ms and e[1] == event_id:
                return
        entries.append([ts_ms, event_id, extra])
        self.dirty.add((self.account, key))
