"""Fixtures for the Store contract: one suite, every backend, the same data.

``store`` is parametrized over the real OpenSearch node (``os_store`` from
the top-level conftest) and a SQLite file in ``tmp_path``. ``seeded`` writes
:data:`DATASET` (account ``acme``) plus a mirror of it under a second
account (``globex``) that must never show up in ``acme``'s answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from useraudit.indexer.enrich import Enricher
from useraudit.store.base import Store

ACCOUNT = "acme"
OTHER = "globex"

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)

PEOPLE = {
    "alice": ("u-alice", "alice", "Alice@Example.com", "Alice Smith"),
    "bob": ("u-bob", "bob", "bob@example.com", "Bob Jones"),
    "carol": ("u-carol", "carol", "carol@example.org", "Carol Дмитриева"),
    "root": ("u-root", "root", "Root@Example.com", "Root Admin"),
    "jose": ("u-jose", "José", "jose@example.com", "José Núñez"),
    "dave": ("u-dave", "dave", "dave@example.com", "Dave Brown"),
    "eve": ("u-eve", "eve", "eve@example.com", "Eve Adams"),
}


def person(prefix: str, key: str) -> dict:
    ident, name, email, full = PEOPLE[key]
    return {
        f"{prefix}.id": ident,
        f"{prefix}.name": name,
        f"{prefix}.email": email,
        f"{prefix}.full_name": full,
    }


def raw(
    eid: str,
    ts: str,
    action: str,
    user: str,
    comments: str | None,
    *,
    ip: str | None = None,
    ua: str | None = None,
    outcome: str = "success",
    target: str | None = None,
    impersonator: str | None = None,
    project: str | None = None,
    token: str | None = None,
    request: str | None = None,
) -> dict:
    event = {
        "event.id": eid,
        "@timestamp": ts,
        "event.action": action,
        "event.outcome": outcome,
        "organization.id": ACCOUNT,
        **person("user", user),
    }
    if comments:
        event["audit.comments"] = comments
    if ip:
        event["source.address"] = ip
    if ua:
        event["user_agent.original"] = ua
    if target:
        event.update(person("user.target", target))
    if impersonator:
        event.update(person("audit.impersonator", impersonator))
    if project:
        event["audit.project.id"] = project
    if token:
        event["audit.token.id"] = token
    if request:
        event["http.request.id"] = request
    return event


# Account acme. a08, a09 and a10 share one timestamp (order falls to event.id).
DATASET: list[dict] = [
    raw(
        "a01",
        "2026-01-05T09:00:00Z",
        "custom_role.created",
        "alice",
        "Custom role Support lead created with permissions read and write",
        ip="10.1.2.3",
        ua=CHROME,
        project="p-sales",
    ),
    raw(
        "a02",
        "2026-01-06T09:00:00Z",
        "custom_role.renamed",
        "bob",
        "Role Старший оператор renamed to Главный оператор",
        ip="10.1.9.9",
        ua=FIREFOX,
        project="p-sales",
    ),
    raw(
        "a03",
        "2026-01-07T09:00:00Z",
        "user_account.blocked",
        "alice",
        "Account of bob blocked: too many failed sign-in attempts",
        ip="192.168.5.20",
        ua=CHROME,
        outcome="failure",
        target="bob",
    ),
    raw(
        "a04",
        "2026-01-08T09:00:00Z",
        "token.created",
        "carol",
        "API token Deploy bot created for project Billing",
        ip="2001:db8::5",
        ua=IPHONE,
        impersonator="root",
        project="p-billing",
        token="tok-1",
        request="req-1",
    ),
    raw(
        "a05",
        "2026-01-09T09:00:00Z",
        "bot_project.created",
        "bob",
        "Bot project Погода создан из шаблона",
        ip="10.2.0.1",
        ua=FIREFOX,
        project="p-weather",
        request="req-2",
    ),
    raw(
        "a06",
        "2026-01-10T09:00:00Z",
        "user.signed_in",
        "jose",
        "Signed in from Café Wi-Fi",
        ip="10.1.2.4",
        ua=CHROME,
    ),
    raw(
        "a07",
        "2026-01-11T09:00:00Z",
        "token.deleted",
        "alice",
        "API token tok-1 deleted",
        ip="172.16.0.9",
        ua=CHROME,
        outcome="failure",
        impersonator="root",
        project="p-billing",
        token="tok-1",
        request="req-1",
    ),
    raw(
        "a08",
        "2026-01-12T09:00:00Z",
        "user.roles_updated",
        "dave",
        "Roles of carol updated: added Support lead, removed Viewer",
        ip="10.1.2.3",
        ua=FIREFOX,
        target="carol",
    ),
    raw(
        "a09",
        "2026-01-12T09:00:00Z",
        "custom_role.deleted",
        "dave",
        "Custom role Viewer deleted",
        ip="10.1.2.3",
    ),
    raw(
        "a10",
        "2026-01-12T09:00:00Z",
        "billing.invoice_paid",
        "eve",
        "Invoice paid",
        outcome="unknown",
    ),
    raw(
        "a11",
        "2026-02-01T09:00:00Z",
        "inbound_channel.connected",
        "alice",
        "Inbound channel Telegram connected to project Support bot",
        ip="10.1.2.3",
        ua=CHROME,
        project="p-support",
    ),
    raw(
        "a12",
        "2026-02-02T09:00:00Z",
        "audit_log.downloaded",
        "bob",
        "Audit log exported: 1500 rows, filters: user alice@example.com",
        ip="10.9.9.9",
        ua=FIREFOX,
    ),
    raw(
        "a13",
        "2026-02-03T09:00:00Z",
        "project_label.updated",
        "alice",
        '<b>Tag</b> renamed to "VIP & Co"',
        ip="10.1.2.3",
        ua=CHROME,
        project="p-sales",
    ),
]
ACME_IDS = [e["event.id"] for e in DATASET]
# Newest first, ties by event id descending.
NEWEST_FIRST = [
    "a13",
    "a12",
    "a11",
    "a10",
    "a09",
    "a08",
    "a07",
    "a06",
    "a05",
    "a04",
    "a03",
    "a02",
    "a01",
]


def mirror(events: Iterable[dict], account: str = OTHER, prefix: str = "g") -> list[dict]:
    """The same events under another account and ids (for isolation checks)."""
    return [
        {**e, "organization.id": account, "event.id": prefix + e["event.id"][1:]} for e in events
    ]


@pytest.fixture(scope="session")
def enricher() -> Enricher:
    return Enricher()


def write_all(store: Store, docs: list[dict], batch: int = 5000) -> None:
    """Write documents in batches, assert each was stored, make them visible."""
    for i in range(0, len(docs), batch):
        results = store.write(docs[i : i + batch])
        bad = [r for r in results if r.status != "created"]
        assert not bad, bad[:3]
    store.refresh()


@pytest.fixture(params=["opensearch", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each backend: the real OpenSearch node, a SQLite file."""
    if request.param == "opensearch":
        yield request.getfixturevalue("os_store")
        return
    from useraudit.store.sqlite import SQLiteStore

    s = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    s.install()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def backend(store: Store) -> str:
    return "sqlite" if store.url.startswith("sqlite") else "opensearch"


@pytest.fixture
def seeded(store: Store, enricher: Enricher) -> Store:
    """``store`` holding DATASET for acme and its mirror for globex."""
    docs = [enricher(e) for e in DATASET + mirror(DATASET)]
    write_all(store, docs)
    return store
