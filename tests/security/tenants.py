"""Two tenants' events on the real OpenSearch node, for the isolation and XSS tests.

``tenant-b``'s every text field carries the marker ``bsecret`` and its IPs
are in 203.0.113.0/24, so any of its data on a ``tenant-a`` page or export
is visible; ``tenant-a`` uses 198.51.100.0/24.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from useraudit.catalog import CATALOG

MARKER = "bsecret"
B_NET = "203.0.113."
UAS = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0 Safari/537.36"
    ),
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
    ),
]


def raw_events(account: str, n: int, now: datetime) -> list[dict[str, Any]]:
    codes = sorted(a.code for a in CATALOG.actions())[:40]
    b = account == "tenant-b"
    tag = f"{MARKER}-" if b else "a-"
    net = B_NET if b else "198.51.100."
    out = []
    for i in range(n):
        ts = now - timedelta(minutes=7 * i + (3 if b else 0))
        person = f"{tag}user{i % 5}"
        out.append(
            {
                "@timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "event.id": f"{int(ts.timestamp() * 1000):012x}{uuid.uuid4().hex[:20]}",
                "event.action": codes[i % len(codes)],
                "event.outcome": ("success", "failure")[i % 2],
                "organization.id": account,
                "organization.name": f"{tag}org",
                "user.id": f"{tag}id{i % 5}",
                "user.name": person,
                "user.email": f"{person}@{tag}mail.example",
                "user.full_name": f"{tag}Full Name {i % 5}",
                "user.target.name": f"{tag}target{i % 3}",
                "user.target.email": f"{tag}target{i % 3}@{tag}mail.example",
                "audit.impersonator.name": f"{tag}imp{i % 2}" if i % 4 == 0 else None,
                "audit.project.id": f"{tag}proj{i % 4}",
                "audit.project.name": f"{tag}Project {i % 4}",
                "audit.token.id": f"{tag}tok{i % 6}",
                "audit.comments": f"{tag}comment {i} renamed Editors to Reviewers",
                "audit.params": {"k": f"{tag}param{i}"},
                "source.address": f"{net}{i % 250 + 1}",
                "user_agent.original": UAS[i % len(UAS)],
            }
        )
    return out


def seed(store: Any, n: int = 60) -> dict[str, list[dict[str, Any]]]:
    """Write ``n`` events per tenant; returns the stored documents by account."""
    from useraudit.indexer.enrich import Enricher

    enrich = Enricher()
    now = datetime.now(UTC) - timedelta(minutes=1)
    docs = {
        acct: [enrich(r) for r in raw_events(acct, n, now)] for acct in ("tenant-a", "tenant-b")
    }
    results = store.write([d for ds in docs.values() for d in ds])
    assert all(r.delivered for r in results)
    store.refresh()
    return docs
