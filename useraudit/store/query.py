"""What the UI asks a Store for: filters, full text, facets, a page, a cursor.

Backends translate a :class:`Query` into their own language
(OpenSearch DSL, SQL) and must give the same answers; the contract suite
in ``tests/store/`` holds them to it.

Tenant isolation starts here: ``Query.account`` is required and every
backend filters on it in every request (search, facets, export, count).
Cursors carry only sort values, never filters, so a crafted cursor cannot
widen a query to another account.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from dataclasses import dataclass, field
from datetime import datetime

# Facet name → the field it counts. Order is the UI's order.
FACETS: dict[str, str] = {
    "action": "event.action",
    "result": "event.outcome",
    "user": "user.name",
    "target": "user.target.name",
    "impersonator": "audit.impersonator.name",
    "project": "audit.project.id",
    "product": "audit.product",
    "browser": "user_agent.name",
    "os": "user_agent.os.name",
    "device": "user_agent.device.name",
}

# Person filters match any of these identifiers, case-insensitively.
PERSON_FILTERS: dict[str, str] = {
    "users": "user",
    "target_users": "user.target",
    "impersonators": "audit.impersonator",
}

# Simple term filters: Query attribute → field (exact match).
TERM_FILTERS: dict[str, str] = {
    "products": "audit.product",
    "actions": "event.action",
    "projects": "audit.project.id",
    "token_ids": "audit.token.id",
    "outcomes": "event.outcome",
    "browsers": "user_agent.name",
    "oses": "user_agent.os.name",
    "devices": "user_agent.device.name",
}

MAX_TEXT = 512
MAX_VALUES = 100
MAX_PAGE = 500


class QueryError(ValueError):
    """The query is malformed; the message is safe to show to the user."""


@dataclass(frozen=True)
class Query:
    """Filters. Values within one filter are OR-ed; filters are AND-ed."""

    account: str
    start: datetime | None = None
    end: datetime | None = None
    products: tuple[str, ...] = ()
    # (product, group) pairs: "narrowed to groups" as on the product page.
    groups: tuple[tuple[str, str], ...] = ()
    actions: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    target_users: tuple[str, ...] = ()
    impersonators: tuple[str, ...] = ()
    # User history: the user as actor, modified user or impersonator.
    history: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    token_ids: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    # Exact addresses or CIDR networks.
    ips: tuple[str, ...] = ()
    browsers: tuple[str, ...] = ()
    oses: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    # Full text over comments, simple-query-string semantics.
    text: str = ""

    def __post_init__(self) -> None:
        if not self.account:
            raise QueryError("an account is required")
        if len(self.text) > MAX_TEXT:
            raise QueryError(f"search text is limited to {MAX_TEXT} characters")
        for name in (*TERM_FILTERS, *PERSON_FILTERS, "history", "ips", "groups"):
            if len(getattr(self, name)) > MAX_VALUES:
                raise QueryError(f"at most {MAX_VALUES} values per filter")
        for value in self.ips:
            networks(value)
        if self.start and self.end and self.start > self.end:
            raise QueryError("the period ends before it starts")


def networks(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise QueryError(f"{value!r} is not an IP address or CIDR range") from None


@dataclass(frozen=True)
class SearchRequest:
    query: Query
    size: int = 50
    cursor: str | None = None
    facets: tuple[str, ...] = tuple(FACETS)
    facet_size: int = 10
    highlight: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.size <= MAX_PAGE:
            raise QueryError(f"page size must be 1..{MAX_PAGE}")
        unknown = set(self.facets) - set(FACETS)
        if unknown:
            raise QueryError(f"unknown facet(s): {', '.join(sorted(unknown))}")


@dataclass
class SearchPage:
    """One page of hits, newest first.

    ``hits`` are flat documents (dotted keys). When highlighting, a hit's
    ``_highlight`` holds the comments with matches wrapped in ``<mark>``
    and everything else HTML-escaped, ready to render.
    """

    hits: list[dict]
    total: int
    next_cursor: str | None
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


HIGHLIGHT_PRE = "\x02"
HIGHLIGHT_POST = "\x03"


def encode_cursor(timestamp_ms: int, event_id: str) -> str:
    raw = json.dumps([timestamp_ms, event_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """Sort values from a cursor; anything malformed is a QueryError."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, event_id = json.loads(raw)
        if not isinstance(ts, int) or isinstance(ts, bool) or not isinstance(event_id, str) or len(event_id) > 64:
            raise ValueError
        return ts, event_id
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
        raise QueryError("that page link is invalid or expired") from None
