"""Differential check: random data and random queries, SQLite and OpenSearch side by side.

The contract suite pins hand-picked answers; this one writes the same 3,000
generated events to both backends and asks both the same 150 random
queries, requiring identical totals, first pages, cursors and facets. The
vocabulary avoids the documented tokenizer differences (Latin accents and
dotted words), so any mismatch is a bug.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from useraudit.catalog import CATALOG
from useraudit.store.opensearch import OpenSearchStore
from useraudit.store.query import Query, SearchRequest
from useraudit.store.sqlite import SQLiteStore
from useraudit.store.sqlite import search as sqlite_search

from .conftest import CHROME, FIREFOX, IPHONE, write_all

WORDS = (
    "role token project channel label report rule template bot task billing support webhook "
    "password admin viewer deploy роль токен проект отчёт шаблон оператор погода доступ"
).split()
ACCOUNTS = ("t1", "t2", "t3")
START = datetime(2026, 1, 1, tzinfo=UTC)


def generate(rnd: random.Random, n: int) -> list[dict]:
    actions = list(CATALOG.actions())
    events = []
    for i in range(n):
        account = rnd.choice(ACCOUNTS)
        user = f"User{rnd.randrange(12)}"
        event = {
            "event.id": f"{rnd.getrandbits(40):010x}{i:06d}",
            # Coarse timestamps so ties are frequent.
            "@timestamp": (START + timedelta(minutes=rnd.randrange(200_000) // 7 * 7))
            .isoformat()
            .replace("+00:00", "Z"),
            "event.action": rnd.choice(actions).code,
            "event.outcome": rnd.choice(("success", "success", "failure", "unknown")),
            "organization.id": account,
            "user.id": user.lower(),
            "user.name": user,
            "user.email": f"{user}@Example.com",
            "source.address": f"10.{rnd.randrange(3)}.{rnd.randrange(4)}.{rnd.randrange(1, 50)}",
            "user_agent.original": rnd.choice((CHROME, FIREFOX, IPHONE)),
            "audit.project.id": f"p{rnd.randrange(6)}",
            "audit.comments": " ".join(rnd.choices(WORDS, k=rnd.randrange(2, 9))).capitalize(),
        }
        if rnd.random() < 0.3:
            target = f"User{rnd.randrange(12)}"
            event.update({"user.target.id": target.lower(), "user.target.name": target})
        if rnd.random() < 0.1:
            event.update({"audit.impersonator.id": "root", "audit.impersonator.name": "Root"})
        events.append(event)
    return events


def random_query(rnd: random.Random) -> Query:
    kwargs: dict = {"account": rnd.choice(ACCOUNTS)}
    for _ in range(rnd.randrange(0, 3)):
        kind = rnd.choice(
            (
                "text",
                "users",
                "history",
                "outcomes",
                "projects",
                "ips",
                "period",
                "products",
                "target_users",
                "impersonators",
                "browsers",
            )
        )
        if kind == "text":
            a, b, c = rnd.sample(WORDS, 3)
            kwargs["text"] = rnd.choice(
                (
                    a,
                    f"{a} {b}",
                    f'"{a} {b}"',
                    f"{a[:3]}*",
                    f"{a} | {b} -{c}",
                    f"({a} | {b}) {c}",
                    a.upper(),
                )
            )
        elif kind == "users":
            kwargs["users"] = (
                rnd.choice(
                    (
                        f"user{rnd.randrange(12)}",
                        f"USER{rnd.randrange(12)}@example.COM",
                        f"user{rnd.randrange(12)}",
                    )
                ),
            )
        elif kind == "history":
            kwargs["history"] = (f"User{rnd.randrange(12)}", f"user{rnd.randrange(12)}")
        elif kind == "outcomes":
            kwargs["outcomes"] = (rnd.choice(("success", "failure", "unknown")),)
        elif kind == "projects":
            kwargs["projects"] = tuple(f"p{i}" for i in rnd.sample(range(6), 2))
        elif kind == "ips":
            kwargs["ips"] = (
                rnd.choice(
                    (
                        f"10.{rnd.randrange(3)}.0.0/16",
                        f"10.0.{rnd.randrange(4)}.0/24",
                        f"10.1.1.{rnd.randrange(1, 50)}",
                    )
                ),
            )
        elif kind == "period":
            lo = START + timedelta(hours=rnd.randrange(0, 3000))
            kwargs["start"], kwargs["end"] = lo, lo + timedelta(hours=rnd.randrange(1, 2000))
        elif kind == "products":
            kwargs["products"] = (rnd.choice(("common", "jaicp")),)
        elif kind == "target_users":
            kwargs["target_users"] = (f"user{rnd.randrange(12)}",)
        elif kind == "impersonators":
            kwargs["impersonators"] = ("ROOT",)
        elif kind == "browsers":
            kwargs["browsers"] = (rnd.choice(("Chrome", "Firefox", "Mobile Safari")),)
    return Query(**kwargs)


@pytest.mark.parametrize(
    "fts_drive_limit",
    [
        pytest.param(sqlite_search.FTS_DRIVE_LIMIT, id="text-drives-by-rowid"),
        pytest.param(0, id="text-scans-events_hot"),
    ],
)
def test_random_queries_agree(
    os_store: OpenSearchStore,
    tmp_path: Path,
    enricher,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
    fts_drive_limit: int,
) -> None:
    """150 random queries over 3,000 random events give identical totals, pages, cursors and facets
    on both backends, through either SQLite plan for text."""
    monkeypatch.setattr(sqlite_search, "FTS_DRIVE_LIMIT", fts_drive_limit)
    rnd = random.Random(20261127)
    docs = [enricher(e) for e in generate(rnd, 3000)]
    sqlite = SQLiteStore(f"sqlite:///{tmp_path / 'diff.db'}")
    write_all(sqlite, docs, batch=1000)
    write_all(os_store, docs, batch=1000)
    nonzero = 0
    for _ in range(150):
        query = random_query(rnd)
        request = SearchRequest(query, size=7, facet_size=5)
        a, b = sqlite.search(request), os_store.search(request)
        assert a.total == b.total, query
        assert [h["event.id"] for h in a.hits] == [h["event.id"] for h in b.hits], query
        assert a.next_cursor == b.next_cursor, query
        assert a.facets == b.facets, query
        if a.next_cursor:
            # The next page with facets: counted over every match, not only those after it.
            a2 = sqlite.search(SearchRequest(query, size=7, facet_size=5, cursor=a.next_cursor))
            b2 = os_store.search(SearchRequest(query, size=7, facet_size=5, cursor=a.next_cursor))
            assert [h["event.id"] for h in a2.hits] == [h["event.id"] for h in b2.hits], query
            assert a2.facets == b2.facets == a.facets, query
            assert a2.total == a.total, query
        assert sqlite.count(query) == os_store.count(query) == a.total
        nonzero += a.total > 0
    assert nonzero > 50  # the queries are not all empty
    sqlite.close()
