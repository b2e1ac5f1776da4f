"""Plausible audit events from the whole catalog, for tests and benchmarks (not shipped).

    from support.sample import sample_docs
    store.write(list(sample_docs(1000, accounts=("acme",))))

Events are built as raw dicts (what ``record()`` spools) and normalised by
the real :class:`~useraudit.indexer.enrich.Enricher`, so they are exactly
what the indexer would store. Deterministic for a given ``seed``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from useraudit.catalog import CATALOG

FIRST = [
    "Anna",
    "Boris",
    "Chen",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kira",
    "Leo",
    "Maya",
    "Nikolai",
    "Olga",
    "Pavel",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
]
LAST = [
    "Ivanova",
    "Smirnov",
    "Li",
    "Kowalski",
    "Garcia",
    "Haddad",
    "Hopper",
    "Tanaka",
    "Moreau",
    "Berg",
    "Novak",
    "Petrov",
    "Singh",
    "Orlov",
    "Sato",
]
PROJECTS = [
    ("bank-bot", "Bank assistant"),
    ("hr-faq", "HR FAQ"),
    ("shop-support", "Shop support"),
    ("voice-ivr", "Voice IVR"),
    ("onboarding", "Onboarding bot"),
    ("sales-lead", "Sales lead bot"),
]
AGENTS = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36"
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.1 Safari/605.1.15"
    ),
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/119.0.0.0 Safari/537.36 Edg/119.0.2151.97"
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.6099.43 Mobile Safari/537.36"
    ),
    "python-requests/2.31.0",
]
WORDS = [
    "Reviewers",
    "Editors",
    "Operators",
    "production",
    "staging",
    "webhook",
    "greeting",
    "timeout",
    "fallback",
    "language",
    "escalation",
    "retention",
    "masking",
    "phone",
    "e-mail",
    "export",
]


def _person(rng: random.Random, i: int) -> dict[str, str]:
    first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
    login = f"{first.lower()}.{last.lower()}"
    return {
        "id": f"u{i:04d}",
        "name": login,
        "email": f"{login}@example.com",
        "full_name": f"{first} {last}",
    }


def raw_events(
    n: int,
    *,
    accounts: Sequence[str] = ("acme",),
    seed: int = 7,
    now: datetime | None = None,
    days: float = 30,
    users: int = 40,
) -> Iterator[dict[str, Any]]:
    """``n`` raw events spread over the last ``days`` days, every catalog action represented."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    actions = [a for a in CATALOG.actions() if a.product != "useraudit"]
    people = [_person(rng, i) for i in range(users)]
    span_ms = int(days * 86_400_000)
    for k in range(n):
        action = actions[k % len(actions)] if k < len(actions) * 2 else rng.choice(actions)
        ts = now - timedelta(milliseconds=rng.randrange(1, span_ms))
        ms = int(ts.timestamp() * 1000)
        actor = rng.choice(people)
        ev: dict[str, Any] = {
            "@timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event.id": f"{ms:012x}{rng.getrandbits(80):020x}",
            "event.action": action.code,
            "event.outcome": "success",
            "organization.id": accounts[k % len(accounts)],
            "source.address": (
                f"{rng.choice(['203.0.113', '198.51.100', '10.1.2', '192.0.2'])}"
                f".{rng.randrange(1, 255)}"
            ),
            "user_agent.original": rng.choice(AGENTS),
        }
        for key, value in actor.items():
            ev[f"user.{key}"] = value
        if action.code.startswith("user.signed_in") or action.code.startswith("phone_number"):
            if rng.random() < 0.25:
                ev["event.outcome"] = "failure"
                ev["event.reason"] = (
                    "wrong password" if "signed_in" in action.code else "code expired"
                )
        elif rng.random() < 0.03:
            ev["event.outcome"] = "failure"
        if action.targets_user:
            for key, value in rng.choice(people).items():
                ev[f"user.target.{key}"] = value
        if action.product == "jaicp":
            pid, pname = rng.choice(PROJECTS)
            ev["audit.project.id"], ev["audit.project.name"] = pid, pname
        if action.code.startswith("token."):
            ev["audit.token.id"] = f"tok_{rng.getrandbits(32):08x}"
        if rng.random() < 0.05:
            for key, value in people[0].items():
                ev[f"audit.impersonator.{key}"] = value
        a, b = rng.sample(WORDS, 2)
        ev["audit.comments"] = f"{action.label}: {a} → {b}; by {actor['full_name']}"
        ev["audit.params"] = {"from": a, "to": b}
        yield ev


def sample_docs(n: int, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Stored documents: :func:`raw_events` normalised by the real Enricher."""
    from useraudit.indexer.enrich import Enricher

    enrich = Enricher()
    for raw in raw_events(n, **kwargs):
        yield enrich(raw)


def seed_store(store: Any, n: int, *, chunk: int = 5000, **kwargs: Any) -> int:
    """Write ``n`` sample events to ``store`` and refresh; returns how many were delivered."""
    delivered, batch = 0, []
    for doc in sample_docs(n, **kwargs):
        batch.append(doc)
        if len(batch) >= chunk:
            delivered += sum(r.delivered for r in store.write(batch))
            batch = []
    if batch:
        delivered += sum(r.delivered for r in store.write(batch))
    store.refresh()
    return delivered
