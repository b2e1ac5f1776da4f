"""Events for checking the saved searches and visualisations on the real node.

Each event is a positive or a near-miss for some saved search (a failed
action that is not a sign-in, a sign-out, an impersonator known only by
name, a token used without a token action, ...). ``EXPECTED`` says which
events each saved search must return, no more, no fewer.
"""

from __future__ import annotations

from typing import Any

import pytest

from useraudit.indexer.enrich import Enricher

PEOPLE = {
    "alice": {
        "id": "u-alice",
        "name": "alice",
        "email": "Alice@Example.com",
        "full_name": "Alice Smith",
    },
    "bob": {"id": "u-bob", "name": "bob", "email": "bob@example.com", "full_name": "Bob Jones"},
    "carol": {
        "id": "u-carol",
        "name": "carol",
        "email": "carol@example.org",
        "full_name": "Carol Дмитриева",
    },
    "dave": {
        "id": "u-dave",
        "name": "dave",
        "email": "dave@example.com",
        "full_name": "Dave Brown",
    },
    "eve": {"id": "u-eve", "name": "eve", "email": "eve@example.com", "full_name": "Eve Adams"},
    "root": {
        "id": "u-root",
        "name": "root",
        "email": "root@example.com",
        "full_name": "Root Admin",
    },
    # A failed sign-in knows only the login that was typed.
    "mallory": {"name": "mallory"},
    # An impersonator some host app identifies by name only.
    "support": {"name": "support-admin"},
}


def ev(
    eid: str,
    day: int,
    action: str,
    user: str,
    *,
    outcome: str = "success",
    ip: str | None = None,
    target: str | None = None,
    impersonator: str | None = None,
    project: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "event.id": eid,
        "@timestamp": f"2026-11-{day:02d}T10:00:00.000Z",
        "event.action": action,
        "event.outcome": outcome,
        "organization.id": "acme",
    }
    for prefix, who in (
        ("user", user),
        ("user.target", target),
        ("audit.impersonator", impersonator),
    ):
        if who:
            raw.update({f"{prefix}.{k}": v for k, v in PEOPLE[who].items()})
    if ip:
        raw["source.address"] = ip
    if project:
        raw["audit.project.id"] = project
        raw["audit.project.name"] = project.removeprefix("p-").title()
    if token:
        raw["audit.token.id"] = token
    return raw


EVENTS = [
    ev("s01", 20, "user.signed_in", "alice", ip="10.1.2.3"),
    ev("s02", 20, "user.signed_in", "mallory", outcome="failure", ip="203.0.113.7"),
    ev("s03", 21, "user.signed_in", "bob", outcome="failure", ip="10.20.0.5"),
    ev("s04", 21, "user.signed_out", "alice", ip="10.1.2.3"),
    ev("s05", 22, "custom_role.renamed", "alice", ip="10.1.2.3"),
    ev("s06", 22, "user.roles_updated", "dave", target="carol", ip="192.168.5.20"),
    ev("s07", 23, "user_account.blocked", "alice", outcome="failure", target="bob", ip="10.1.2.3"),
    ev(
        "s08",
        23,
        "token.created",
        "carol",
        impersonator="root",
        project="p-billing",
        token="tok-1",
        ip="2001:db8::5",
    ),
    ev("s09", 24, "bot_project.created", "bob", project="p-weather", token="tok-2", ip="10.2.0.1"),
    ev("s10", 24, "token.deleted", "alice", ip="172.16.0.9"),
    ev("s11", 25, "bot_project.exported", "bob", project="p-weather", ip="10.2.0.1"),
    ev("s12", 25, "message_log.downloaded", "eve", impersonator="root", ip="10.9.9.9"),
    ev("s13", 26, "audit_log.downloaded", "bob", ip="10.9.9.9"),
    ev("s14", 26, "custom_role.created", "eve", impersonator="support", ip="192.168.1.1"),
    ev("s15", 26, "bot_project.settings_updated", "dave", project="p-support", ip="192.168.1.1"),
    ev("s16", 26, "user.signed_in", "mallory", outcome="failure", ip="203.0.113.7"),
]

# Saved search slug → the events it must find.
EXPECTED = {
    "failed-sign-ins": {"s02", "s03", "s16"},
    "role-changes": {"s05", "s06", "s14"},
    "api-token-activity": {"s08", "s09", "s10"},
    "impersonated-actions": {"s08", "s12", "s14"},
    "exports-downloads": {"s11", "s12", "s13"},
}


def ids(response: dict[str, Any]) -> set[str]:
    return {hit["_id"] for hit in response["hits"]["hits"]}


@pytest.fixture
def seeded_os(os_store: Any) -> Any:
    """The real node with our template under a unique prefix, holding EVENTS."""
    enrich = Enricher()
    results = os_store.write([enrich(e) for e in EVENTS])
    assert all(r.status == "created" for r in results), results
    os_store.refresh()
    return os_store
