"""The Store contract, held against every backend with the same data.

Each test runs once on the real OpenSearch node and once on a SQLite file
(the ``store`` fixture). Where the backends cannot give the same answer the
test says so and asserts each backend's own answer: nothing is skipped.
"""

from __future__ import annotations

import re
import tracemalloc
from datetime import UTC, datetime

import pytest

from useraudit.store.base import Store
from useraudit.store.query import (
    MAX_CLAUSES,
    Query,
    QueryError,
    SearchRequest,
    decode_cursor,
    encode_cursor,
)

from .conftest import ACCOUNT, DATASET, NEWEST_FIRST, OTHER, mirror, raw, write_all


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def ids(store: Store, **filters: object) -> list[str]:
    """Event ids of every match, newest first, through search pages of 5."""
    out: list[str] = []
    cursor = None
    while True:
        page = store.search(
            SearchRequest(Query(ACCOUNT, **filters), size=5, cursor=cursor, facets=())
        )
        out += [h["event.id"] for h in page.hits]
        cursor = page.next_cursor
        if not cursor:
            return out


def marked_words(html_text: str) -> list[str]:
    return " ".join(re.findall(r"<mark>(.*?)</mark>", html_text)).split()


# -- filters -------------------------------------------------------------------

FILTER_CASES = [
    pytest.param({}, NEWEST_FIRST, id="account-only"),
    pytest.param({"products": ("jaicp",)}, ["a13", "a11", "a07", "a05", "a04"], id="product"),
    pytest.param({"products": ("useraudit", "unknown")}, ["a12", "a10"], id="products-or"),
    pytest.param(
        {"actions": ("custom_role.created", "custom_role.deleted")}, ["a09", "a01"], id="actions"
    ),
    pytest.param({"projects": ("p-billing",)}, ["a07", "a04"], id="project"),
    pytest.param({"token_ids": ("tok-1",)}, ["a07", "a04"], id="token"),
    pytest.param({"outcomes": ("failure",)}, ["a07", "a03"], id="outcome-failure"),
    pytest.param({"outcomes": ("unknown",)}, ["a10"], id="outcome-unknown"),
    pytest.param({"browsers": ("Firefox",)}, ["a12", "a08", "a05", "a02"], id="browser"),
    pytest.param({"oses": ("iOS",)}, ["a04"], id="os"),
    pytest.param({"devices": ("iPhone",)}, ["a04"], id="device"),
    pytest.param({"groups": (("common", "Custom role"),)}, ["a09", "a02", "a01"], id="group"),
    pytest.param(
        {"groups": (("common", "Custom role"), ("jaicp", "API tokens"))},
        ["a09", "a07", "a04", "a02", "a01"],
        id="groups-or",
    ),
    pytest.param({"groups": (("jaicp", "Custom role"),)}, [], id="group-of-other-product"),
    pytest.param(
        {"groups": (("common", "Custom role"),), "actions": ("token.created",)},
        ["a09", "a04", "a02", "a01"],
        id="group-or-action",
    ),
    pytest.param(
        {"groups": (("common", "Custom role"),), "actions": ("custom_role.deleted",)},
        ["a09", "a02", "a01"],
        id="group-or-action-inside-it",
    ),
    pytest.param(
        {
            "groups": (("common", "Custom role"),),
            "actions": ("token.created",),
            "outcomes": ("success",),
            "users": ("carol",),
        },
        ["a04"],
        id="picker-and-other-facets",
    ),
    pytest.param({"browsers": ("firefox",)}, ["a12", "a08", "a05", "a02"], id="browser-any-case"),
    pytest.param({"oses": ("IOS",)}, ["a04"], id="os-any-case"),
    pytest.param({"devices": ("IPHONE", "pixel")}, ["a04"], id="devices-any-case"),
    pytest.param(
        {"browsers": ("FIREFOX", "mobile safari")},
        ["a12", "a08", "a05", "a04", "a02"],
        id="browsers-any-case-or",
    ),
    pytest.param(
        {"users": ("ALICE",)}, ["a13", "a11", "a07", "a03", "a01"], id="user-name-any-case"
    ),
    pytest.param({"users": ("u-bob",)}, ["a12", "a05", "a02"], id="user-id"),
    pytest.param({"users": ("BOB@Example.COM",)}, ["a12", "a05", "a02"], id="user-email-any-case"),
    pytest.param({"users": ("jose",)}, ["a06"], id="user-name-accent-folded"),
    pytest.param({"users": ("JOSÉ",)}, ["a06"], id="user-name-accented"),
    pytest.param({"users": ("U-BOB",)}, [], id="user-id-is-exact"),
    pytest.param(
        {"users": ("alice smith",)}, ["a13", "a11", "a07", "a03", "a01"], id="user-full-name"
    ),
    pytest.param({"users": ("jose nunez",)}, ["a06"], id="user-full-name-accents-ignored"),
    pytest.param({"users": ("CAROL ДМИТРИЕВА",)}, ["a04"], id="user-full-name-cyrillic-any-case"),
    pytest.param({"target_users": ("Carol Дмитриева",)}, ["a08"], id="target-full-name"),
    pytest.param({"impersonators": ("root admin",)}, ["a07", "a04"], id="impersonator-full-name"),
    pytest.param(
        {"users": ("alice", "dave")},
        ["a13", "a11", "a09", "a08", "a07", "a03", "a01"],
        id="users-or",
    ),
    pytest.param({"target_users": ("bob",)}, ["a03"], id="target-name"),
    pytest.param({"target_users": ("Carol@Example.org",)}, ["a08"], id="target-email"),
    pytest.param({"target_users": ("u-carol",)}, ["a08"], id="target-id"),
    pytest.param({"impersonators": ("ROOT",)}, ["a07", "a04"], id="impersonator-name"),
    pytest.param({"impersonators": ("root@example.com",)}, ["a07", "a04"], id="impersonator-email"),
    pytest.param({"ips": ("10.1.2.3",)}, ["a13", "a11", "a09", "a08", "a01"], id="ip-exact"),
    pytest.param(
        {"ips": ("10.1.0.0/16",)}, ["a13", "a11", "a09", "a08", "a06", "a02", "a01"], id="ip-cidr"
    ),
    pytest.param({"ips": ("2001:db8::/32",)}, ["a04"], id="ipv6-cidr"),
    pytest.param({"ips": ("2001:db8::5",)}, ["a04"], id="ipv6-exact"),
    pytest.param({"ips": ("192.168.0.0/16", "172.16.0.0/12")}, ["a07", "a03"], id="ips-or"),
    pytest.param(
        {"start": utc("2026-01-12T09:00:00Z")},
        ["a13", "a12", "a11", "a10", "a09", "a08"],
        id="start-inclusive",
    ),
    pytest.param({"end": utc("2026-01-06T09:00:00Z")}, ["a02", "a01"], id="end-inclusive"),
    pytest.param(
        {"start": utc("2026-01-07T00:00:00Z"), "end": utc("2026-01-09T09:00:00Z")},
        ["a05", "a04", "a03"],
        id="period",
    ),
    pytest.param({"start": datetime(2026, 2, 2, 9)}, ["a13", "a12"], id="naive-start-is-utc"),
    pytest.param({"products": ("jaicp",), "outcomes": ("failure",)}, ["a07"], id="filters-and"),
    pytest.param(
        {"users": ("alice",), "ips": ("10.1.0.0/16",)}, ["a13", "a11", "a01"], id="user-and-ip"
    ),
    pytest.param({"history": ("root",), "text": "deleted"}, ["a07"], id="history-and-text"),
    pytest.param({"request_ids": ("req-1",)}, ["a07", "a04"], id="request"),
    pytest.param({"request_ids": ("req-1", "req-2")}, ["a07", "a05", "a04"], id="requests-or"),
    pytest.param({"request_ids": ("REQ-1",)}, [], id="request-id-is-exact"),
    pytest.param(
        {"request_ids": ("req-1",), "outcomes": ("failure",)}, ["a07"], id="request-and-outcome"
    ),
]


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES)
def test_filters(seeded: Store, filters: dict, expected: list[str]) -> None:
    """Each filter, alone and combined, selects exactly the expected events in order."""
    assert ids(seeded, **filters) == expected
    assert seeded.count(Query(ACCOUNT, **filters)) == len(expected)


HISTORY_CASES = [
    pytest.param(("alice",), ["a13", "a11", "a07", "a03", "a01"], id="actor"),
    pytest.param(("BOB",), ["a12", "a05", "a03", "a02"], id="actor-and-target"),
    pytest.param(("u-carol",), ["a08", "a04"], id="target-by-id"),
    pytest.param(("Root@example.COM",), ["a07", "a04"], id="impersonator-by-email"),
    pytest.param(("eve", "jose"), ["a10", "a06"], id="several"),
    pytest.param(("nobody",), [], id="unknown-user"),
    pytest.param(("carol дмитриева",), ["a08", "a04"], id="full-name-cyrillic"),
]


@pytest.mark.parametrize(("history", "expected"), HISTORY_CASES)
def test_user_history(seeded: Store, history: tuple[str, ...], expected: list[str]) -> None:
    """User history finds a user as actor, modified user or impersonator, by id, name or e-mail."""
    assert ids(seeded, history=history) == expected


# -- full text -----------------------------------------------------------------

TEXT_CASES = [
    pytest.param("token", ["a07", "a04"], id="word"),
    pytest.param("TOKEN", ["a07", "a04"], id="word-any-case"),
    pytest.param("api token deleted", ["a07"], id="several-words-all-required"),
    pytest.param("+api +deleted", ["a07"], id="explicit-and"),
    pytest.param('"custom role"', ["a09", "a01"], id="phrase"),
    pytest.param('"role support"', ["a01"], id="phrase-order-matters"),
    pytest.param('"support role"', [], id="phrase-wrong-order"),
    pytest.param("support* -bot", ["a08", "a01"], id="prefix-and-exclusion"),
    pytest.param("support* -roles", ["a11"], id="prefix-and-stemmed-exclusion"),
    pytest.param("deleted | renamed", ["a13", "a09", "a07", "a02"], id="or"),
    pytest.param("(token | role) deleted", ["a09", "a07"], id="group"),
    pytest.param("оператор", ["a02"], id="cyrillic-word"),
    pytest.param("ОПЕРАТОР", ["a02"], id="cyrillic-any-case"),
    pytest.param("опер*", ["a02"], id="cyrillic-prefix"),
    pytest.param('"главный оператор"', ["a02"], id="cyrillic-phrase"),
    pytest.param("погода -шаблона", [], id="cyrillic-exclusion"),
    pytest.param("погода -шаблон", [], id="cyrillic-exclusion-stemmed"),
    pytest.param("creating", ["a04", "a01"], id="english-stem"),
    pytest.param("roles", ["a09", "a08", "a02", "a01"], id="english-plural-finds-singular"),
    pytest.param('"api tokens"', ["a07", "a04"], id="english-phrase-stemmed"),
    pytest.param("оператора", ["a02"], id="russian-stem"),
    pytest.param("погоды шаблон", ["a05"], id="russian-word-forms"),
    pytest.param('"главного оператора"', ["a02"], id="russian-phrase-stemmed"),
    pytest.param("deleted OR renamed", ["a13", "a09", "a07", "a02"], id="or-keyword"),
    # OR binds looser than the implicit AND: token OR (погода -deploy).
    pytest.param("token OR погода -deploy", ["a07", "a05", "a04"], id="or-keyword-precedence"),
    pytest.param("deleted or renamed", [], id="lowercase-or-is-a-word"),
    pytest.param("1500", ["a12"], id="number"),
    pytest.param("sign-in blocked", ["a03"], id="hyphenated-word"),
    pytest.param("tok-1", ["a07"], id="token-id-in-text"),
    pytest.param("café", ["a06"], id="accented-word"),
    pytest.param("vip", ["a13"], id="word-inside-quotes-and-markup"),
    pytest.param("invoice -paid", [], id="exclusion-removes-all"),
    pytest.param("read AND write", ["a01"], id="uppercase-and-is-a-word"),
    pytest.param("NEAR(read write)", [], id="near-is-a-word"),
]


@pytest.mark.parametrize(("text", "expected"), TEXT_CASES)
def test_full_text(seeded: Store, text: str, expected: list[str]) -> None:
    """Full text over comments: words, phrases, prefixes, OR, exclusion and Cyrillic."""
    assert ids(seeded, text=text) == expected


def test_full_text_accent_folding_differs(seeded: Store, backend: str) -> None:
    """Documented difference: SQLite (FTS5 remove_diacritics) finds 'Café' for 'cafe'; OpenSearch's
    standard analyzer does not."""
    expected = {"sqlite": ["a06"], "opensearch": []}[backend]
    assert ids(seeded, text="cafe") == expected


def test_full_text_tokenizer_differs_on_addresses(seeded: Store, backend: str) -> None:
    """Documented difference: OpenSearch keeps 'example.com' as one token, FTS5 splits it, so only
    SQLite finds 'example' alone."""
    expected = {"sqlite": ["a12"], "opensearch": []}[backend]
    assert ids(seeded, text="example") == expected
    # Searching the whole address works on both.
    assert ids(seeded, text='"alice@example.com"') == ["a12"]


def test_highlight(seeded: Store) -> None:
    """Highlights wrap matches in <mark>, escape everything else, and
    survive matches at either end."""
    page = seeded.search(SearchRequest(Query(ACCOUNT, text="custom | billing"), facets=()))
    by_id = {h["event.id"]: h for h in page.hits}
    assert by_id["a01"]["_highlight"].startswith("<mark>Custom</mark> role")
    assert by_id["a04"]["_highlight"].endswith("project <mark>Billing</mark>")
    assert marked_words(by_id["a09"]["_highlight"]) == ["Custom"]

    page = seeded.search(SearchRequest(Query(ACCOUNT, text='"главный оператор" | vip'), facets=()))
    by_id = {h["event.id"]: h for h in page.hits}
    assert marked_words(by_id["a02"]["_highlight"]) == ["Главный", "оператор"]
    assert by_id["a13"]["_highlight"] == (
        "&lt;b&gt;Tag&lt;/b&gt; renamed to &quot;<mark>VIP</mark> &amp; Co&quot;"
    )


def test_highlight_without_text_is_escaped_comments(seeded: Store) -> None:
    """Without search text, _highlight is the escaped comments; with highlight off it is absent."""
    page = seeded.search(SearchRequest(Query(ACCOUNT, users=("alice",)), size=1, facets=()))
    assert (
        page.hits[0]["_highlight"] == "&lt;b&gt;Tag&lt;/b&gt; renamed to &quot;VIP &amp; Co&quot;"
    )
    page = seeded.search(SearchRequest(Query(ACCOUNT), size=1, facets=(), highlight=False))
    assert "_highlight" not in page.hits[0]


def test_highlight_marks_word_forms(seeded: Store) -> None:
    """A stemmed search marks the words as written: "creating" marks "created"."""
    page = seeded.search(SearchRequest(Query(ACCOUNT, text="creating -deploy"), facets=()))
    (hit,) = page.hits
    assert marked_words(hit["_highlight"]) == ["created"]
    page = seeded.search(SearchRequest(Query(ACCOUNT, text="оператора"), facets=()))
    assert marked_words(page.hits[0]["_highlight"]) == ["оператор", "оператор"]


def test_stemming_finds_word_forms_in_english_and_russian(store: Store, enricher) -> None:  # noqa: ANN001
    """Both stores stem alike: "reviewer" finds "Reviewers", "рецензента" finds "рецензенты"."""
    events = [
        raw(
            "s1",
            "2026-03-01T09:00:00Z",
            "custom_role.renamed",
            "alice",
            "Role Editors renamed to Reviewers",
        ),
        raw(
            "s2",
            "2026-03-02T09:00:00Z",
            "custom_role.renamed",
            "bob",
            "Роль Редакторы переименована в Рецензенты",
        ),
        raw(
            "s3", "2026-03-03T09:00:00Z", "custom_role.created", "carol", "Reviewing rules created"
        ),
    ]
    write_all(store, [enricher(e) for e in events])
    assert ids(store, text="reviewer") == ["s3", "s1"]
    assert ids(store, text="Reviewers") == ["s3", "s1"]
    assert ids(store, text="editor") == ["s1"]
    assert ids(store, text="рецензента") == ["s2"]
    assert ids(store, text="редактор переименовали") == ["s2"]
    assert ids(store, text="reviewer OR рецензент") == ["s3", "s2", "s1"]
    assert ids(store, text="reviewer -rules") == ["s1"]
    page = store.search(SearchRequest(Query(ACCOUNT, text="reviewer"), facets=()))
    assert [marked_words(h["_highlight"]) for h in page.hits] == [["Reviewing"], ["Reviewers"]]


def test_highlight_prefix_marks_whole_word(seeded: Store) -> None:
    """A prefix search highlights the whole matching word."""
    page = seeded.search(SearchRequest(Query(ACCOUNT, text="опер*"), facets=()))
    assert marked_words(page.hits[0]["_highlight"]) == ["оператор", "оператор"]


MALFORMED = [
    pytest.param("*token", id="leading-wildcard"),
    pytest.param("to*en", id="inner-wildcard"),
    pytest.param("t*", id="prefix-too-short"),
    pytest.param('"unclosed phrase', id="unclosed-quote"),
    pytest.param("(token", id="unclosed-paren"),
    pytest.param("token)", id="stray-paren"),
    pytest.param("-token", id="only-exclusion"),
    pytest.param("token | -role", id="exclusion-alone-in-or"),
    pytest.param("token |", id="dangling-or"),
    pytest.param("token OR", id="dangling-or-keyword"),
    pytest.param("OR token", id="leading-or-keyword"),
    pytest.param("()", id="empty-group"),
    pytest.param("...", id="no-letters"),
    pytest.param("(" * 7 + "a" + ")" * 7, id="too-deep"),
    pytest.param(" ".join(f"w{i}" for i in range(MAX_CLAUSES + 1)), id="too-many-clauses"),
    pytest.param("x" * 600, id="too-long"),
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_text_is_query_error(seeded: Store, text: str) -> None:
    """Malformed search text raises QueryError with a message, before any backend runs it."""
    with pytest.raises(QueryError) as info:
        seeded.search(SearchRequest(Query(ACCOUNT, text=text)))
    assert str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("token~2", id="fuzzy-is-text"),
        pytest.param("/tok.n/", id="regex-is-text"),
        pytest.param("to\\ken", id="backslash-is-text"),
        pytest.param('"token" ~3', id="slop-is-text"),
    ],
)
def test_unsupported_operators_are_plain_text(seeded: Store, text: str) -> None:
    """Fuzzy, regex, slop and escapes are off: their characters are ordinary text,
    never an error or a syntax."""
    page = seeded.search(SearchRequest(Query(ACCOUNT, text=text), facets=()))
    assert all(h["event.id"].startswith("a") for h in page.hits)


def test_malformed_cursor_is_query_error(seeded: Store) -> None:
    """A cursor that is not ours raises QueryError on every backend."""
    for cursor in ("nonsense", encode_cursor(1, "x")[:-3] + "!!!", "W10"):
        with pytest.raises(QueryError):
            seeded.search(SearchRequest(Query(ACCOUNT), cursor=cursor))


# -- facets --------------------------------------------------------------------


def test_facets_unfiltered(seeded: Store) -> None:
    """Facets count the account's events, highest count first, ties by value (byte order)."""
    page = seeded.search(SearchRequest(Query(ACCOUNT), size=1, facet_size=10))
    assert page.total == len(DATASET)
    assert page.facets["user"] == [
        ("alice", 5),
        ("bob", 3),
        ("dave", 2),
        ("José", 1),
        ("carol", 1),
        ("eve", 1),
    ]
    assert page.facets["result"] == [("success", 10), ("failure", 2), ("unknown", 1)]
    assert page.facets["impersonator"] == [("root", 2)]
    assert page.facets["target"] == [("bob", 1), ("carol", 1)]
    assert page.facets["product"] == [("common", 6), ("jaicp", 5), ("unknown", 1), ("useraudit", 1)]
    assert page.facets["device"] == [("iPhone", 1)]


def test_facets_follow_filters_and_text(seeded: Store) -> None:
    """Facet counts reflect every active filter, full text included, and respect facet_size."""
    page = seeded.search(SearchRequest(Query(ACCOUNT, products=("jaicp",)), facet_size=10))
    assert page.total == 5
    assert page.facets["user"] == [("alice", 3), ("bob", 1), ("carol", 1)]
    assert page.facets["result"] == [("success", 4), ("failure", 1)]
    assert page.facets["project"] == [
        ("p-billing", 2),
        ("p-sales", 1),
        ("p-support", 1),
        ("p-weather", 1),
    ]
    assert page.facets["browser"] == [("Chrome", 3), ("Firefox", 1), ("Mobile Safari", 1)]
    assert page.facets["target"] == []

    page = seeded.search(
        SearchRequest(Query(ACCOUNT, text="token"), facets=("user", "action"), facet_size=1)
    )
    assert set(page.facets) == {"user", "action"}
    assert page.facets["user"] == [("alice", 1)]
    assert page.facets["action"] == [("token.created", 1)]


PERIODS = [
    pytest.param("2026-01-07T00:00:00Z", "2026-01-12T09:00:00Z", id="whole-days-then-partial-day"),
    pytest.param("2026-01-06T09:00:00Z", "2026-01-11T08:59:59.999Z", id="partial-days-both-ends"),
    pytest.param("2026-01-12T08:00:00Z", "2026-01-12T10:00:00Z", id="inside-one-day"),
    pytest.param("2026-01-05T00:00:00Z", "2026-02-03T23:59:59.999Z", id="whole-days-only"),
    pytest.param("2026-01-01T00:00:00Z", "2026-01-31T23:59:59.999Z", id="one-whole-month"),
    pytest.param("2025-12-15T00:00:00Z", "2026-02-02T12:00:00Z", id="days-month-days-partial-day"),
    pytest.param("2025-11-01T00:00:00Z", "2026-02-28T23:59:59.999Z", id="whole-months-only"),
    pytest.param(None, "2026-01-09T09:00:00Z", id="open-start"),
    pytest.param("2026-01-09T09:00:00.001Z", None, id="open-end"),
]


@pytest.mark.parametrize(("start", "end"), PERIODS)
def test_facets_under_a_period(seeded: Store, start: str | None, end: str | None) -> None:
    """Total and facets for a period count exactly the events inside it,
    whatever the day boundaries."""
    lo = utc(start) if start else None
    hi = utc(end) if end else None
    inside = [
        e
        for e in DATASET
        if (lo is None or utc(e["@timestamp"]) >= lo) and (hi is None or utc(e["@timestamp"]) <= hi)
    ]
    page = seeded.search(SearchRequest(Query(ACCOUNT, start=lo, end=hi), size=1, facet_size=100))
    assert page.total == len(inside)
    users: dict[str, int] = {}
    for e in inside:
        users[e["user.name"]] = users.get(e["user.name"], 0) + 1
    assert page.facets["user"] == sorted(users.items(), key=lambda kv: (-kv[1], kv[0]))
    assert sum(n for _v, n in page.facets["result"]) == len(inside)


def test_facets_ignore_the_cursor(seeded: Store) -> None:
    """Total and facets describe the whole result, on every page."""
    first = seeded.search(SearchRequest(Query(ACCOUNT), size=3))
    second = seeded.search(SearchRequest(Query(ACCOUNT), size=3, cursor=first.next_cursor))
    assert second.total == first.total == len(DATASET)
    assert second.facets == first.facets


# -- order and pages -----------------------------------------------------------


def test_order_ties_fall_to_event_id(seeded: Store) -> None:
    """Events with the same timestamp come in descending event.id order,
    across page boundaries too."""
    assert ids(seeded) == NEWEST_FIRST
    # A page boundary right inside the tie (a10 | a09, a08).
    page = seeded.search(SearchRequest(Query(ACCOUNT), size=4, facets=()))
    assert [h["event.id"] for h in page.hits] == ["a13", "a12", "a11", "a10"]
    nxt = seeded.search(SearchRequest(Query(ACCOUNT), size=2, cursor=page.next_cursor, facets=()))
    assert [h["event.id"] for h in nxt.hits] == ["a09", "a08"]


def test_last_page_has_no_cursor(seeded: Store) -> None:
    """The page that ends the result has no next cursor, even when it is exactly full."""
    page = seeded.search(SearchRequest(Query(ACCOUNT), size=len(DATASET), facets=()))
    assert len(page.hits) == len(DATASET) and page.next_cursor is None
    page = seeded.search(SearchRequest(Query(ACCOUNT), size=len(DATASET) - 1, facets=()))
    assert page.next_cursor is not None


def test_cursor_is_stable_across_inserts(seeded: Store, enricher) -> None:  # noqa: ANN001
    """Events written between pages neither duplicate nor skip older events;
    newer ones wait for page one."""
    first = seeded.search(SearchRequest(Query(ACCOUNT), size=4, facets=()))
    assert [h["event.id"] for h in first.hits] == ["a13", "a12", "a11", "a10"]
    new = [
        raw("a99", "2026-03-01T00:00:00Z", "user.signed_in", "bob", "newest"),  # before page 1
        raw(
            "a085", "2026-01-12T09:00:00Z", "user.signed_in", "bob", "tie, a09 > id > a08"
        ),  # after cursor
        raw(
            "a1z", "2026-01-12T09:00:00Z", "user.signed_in", "bob", "tie, id > a10"
        ),  # before cursor
        raw("a00", "2025-12-31T00:00:00Z", "user.signed_in", "bob", "oldest"),  # after cursor
    ]
    write_all(seeded, [enricher(e) for e in new])
    rest: list[str] = []
    cursor = first.next_cursor
    while cursor:
        page = seeded.search(SearchRequest(Query(ACCOUNT), size=3, cursor=cursor, facets=()))
        rest += [h["event.id"] for h in page.hits]
        cursor = page.next_cursor
    assert rest == ["a09", "a085", "a08", "a07", "a06", "a05", "a04", "a03", "a02", "a01", "a00"]
    seen = ["a13", "a12", "a11", "a10", *rest]
    assert len(seen) == len(set(seen))
    assert set(NEWEST_FIRST) <= set(seen)


# Every SQLite read path: the whole account, a period (the rollup), a facet
# filter (the events_hot scan), a person (the events table) and full text.
BACKWARD_CASES = [
    pytest.param({}, id="all"),
    pytest.param({"start": utc("2026-01-06T00:00:00Z")}, id="period"),
    pytest.param({"outcomes": ("success",)}, id="facet"),
    pytest.param({"users": ("alice", "dave", "bob")}, id="people"),
    pytest.param({"text": "role OR password OR deleted OR invited"}, id="text"),
]


def backward_ids(store: Store, size: int, **filters: object) -> list[list[str]]:
    """Pages from Last, then Previous (``before``) until page 1, in page order."""
    query = Query(ACCOUNT, **filters)
    page = store.search(SearchRequest(query, size=size, last=True, facets=()))
    assert page.next_cursor is None  # nothing is older than the last page
    pages = [[h["event.id"] for h in page.hits]]
    while page.prev_cursor:
        before = page.prev_cursor
        page = store.search(SearchRequest(query, size=size, before=before, facets=()))
        assert page.next_cursor is not None  # the page Previous came from is older
        pages.insert(0, [h["event.id"] for h in page.hits])
    return pages


@pytest.mark.parametrize("filters", BACKWARD_CASES)
@pytest.mark.parametrize("size", [1, 3, 4, 5, 13, 50])
def test_last_then_previous_are_the_forward_pages(seeded: Store, filters: dict, size: int) -> None:
    """Last holds ``total % size`` events (or a full page), the oldest; Previous from
    it walks back through exactly the pages Next walks forward, ties included."""
    forward: list[list[str]] = []
    cursor = None
    while True:
        page = seeded.search(
            SearchRequest(Query(ACCOUNT, **filters), size=size, cursor=cursor, facets=())
        )
        forward.append([h["event.id"] for h in page.hits])
        cursor = page.next_cursor
        if not cursor:
            break
    total = sum(map(len, forward))
    assert total >= 4, "each case should span pages"
    backward = backward_ids(seeded, size, **filters)
    assert backward == forward
    assert len(backward[-1]) == (total % size or size)


def test_last_page_counts_and_facets_the_whole_result(seeded: Store) -> None:
    """The last page's total and facets describe every match, as page 1's do."""
    first = seeded.search(SearchRequest(Query(ACCOUNT), size=5))
    last = seeded.search(SearchRequest(Query(ACCOUNT), size=5, last=True))
    assert last.total == first.total == len(DATASET)
    assert last.facets == first.facets
    assert [h["event.id"] for h in last.hits] == NEWEST_FIRST[-(len(DATASET) % 5) :]
    assert last.prev_cursor is not None and first.prev_cursor is None


def test_previous_and_next_meet(seeded: Store) -> None:
    """Next from a page reached by Previous gives the page Previous came from."""
    query = Query(ACCOUNT)
    last = seeded.search(SearchRequest(query, size=4, last=True, facets=()))
    back = seeded.search(SearchRequest(query, size=4, before=last.prev_cursor, facets=()))
    again = seeded.search(SearchRequest(query, size=4, cursor=back.next_cursor, facets=()))
    assert [h["event.id"] for h in again.hits] == [h["event.id"] for h in last.hits]
    assert again.next_cursor is None


def test_last_of_nothing_is_empty(seeded: Store) -> None:
    page = seeded.search(SearchRequest(Query(ACCOUNT, users=("nobody",)), size=5, last=True))
    assert (page.hits, page.total, page.next_cursor, page.prev_cursor) == ([], 0, None, None)


def test_backward_stays_in_the_account(seeded: Store) -> None:
    """A crafted ``before`` cursor (the oldest possible position) gives this account's
    oldest five, never the other account's mirror of them."""
    page = seeded.search(
        SearchRequest(Query(ACCOUNT), size=5, before=encode_cursor(0, ""), facets=())
    )
    assert [h["event.id"] for h in page.hits] == NEWEST_FIRST[-5:]
    assert all(h["organization.id"] == ACCOUNT for h in page.hits)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cursor": encode_cursor(1, "a"), "last": True},
        {"before": encode_cursor(1, "a"), "last": True},
        {"cursor": encode_cursor(1, "a"), "before": encode_cursor(1, "a")},
    ],
)
def test_one_position_per_request(kwargs: dict) -> None:
    with pytest.raises(QueryError):
        SearchRequest(Query(ACCOUNT), **kwargs)


def test_malformed_before_cursor_is_query_error(seeded: Store) -> None:
    with pytest.raises(QueryError):
        seeded.search(SearchRequest(Query(ACCOUNT), before="nonsense"))


# -- tenant isolation ----------------------------------------------------------


def test_tenant_isolation(seeded: Store) -> None:
    """A second account's events never appear in search, facets, count or
    iterate, whatever the filters."""
    page = seeded.search(SearchRequest(Query(ACCOUNT), size=100, facet_size=100))
    assert {h["organization.id"] for h in page.hits} == {ACCOUNT}
    assert page.total == len(DATASET)
    assert sum(n for _v, n in page.facets["product"]) == len(DATASET)
    assert seeded.count(Query(ACCOUNT)) == len(DATASET)
    assert seeded.count(Query(OTHER)) == len(DATASET)
    assert seeded.count(Query("nobody")) == 0
    assert {d["organization.id"] for d in seeded.iterate(Query(ACCOUNT), batch_size=4)} == {ACCOUNT}
    for filters in (
        {"text": "token"},
        {"history": ("alice",)},
        {"ips": ("0.0.0.0/0",)},
        {"users": ("u-alice",)},
        {"groups": (("jaicp", "API tokens"),)},
    ):
        found = ids(seeded, **filters)
        assert found and all(i.startswith("a") for i in found), filters


def test_crafted_cursor_cannot_cross_accounts(seeded: Store) -> None:
    """Cursors carry sort values only: one built from another account's event
    still returns only our events."""
    theirs = seeded.search(SearchRequest(Query(OTHER), size=1, facets=())).hits[0]
    assert theirs["event.id"] == "g13"
    ts = int(utc(theirs["@timestamp"]).timestamp() * 1000)
    for cursor in (encode_cursor(ts, "g13"), encode_cursor(ts, "")):
        page = seeded.search(SearchRequest(Query(ACCOUNT), size=50, cursor=cursor))
        assert page.hits and {h["organization.id"] for h in page.hits} == {ACCOUNT}
        assert sum(n for _v, n in page.facets["result"]) == len(DATASET)
    # A time past the calendar is the user's error (400), never a store fault.
    with pytest.raises(QueryError):
        seeded.search(SearchRequest(Query(ACCOUNT), size=50, cursor=encode_cursor(2**62, "zzzz")))
    assert decode_cursor(encode_cursor(ts, "g13")) == (ts, "g13")


def test_accounts_listed(seeded: Store) -> None:
    """Operators can list the accounts that have events."""
    assert sorted(seeded.accounts()) == [ACCOUNT, OTHER]


# -- writing -------------------------------------------------------------------


def test_idempotent_rewrites(seeded: Store, enricher) -> None:  # noqa: ANN001
    """Writing the same events again reports duplicates per item and stores nothing twice."""
    again = [enricher(e) for e in DATASET[:3]]
    fresh = enricher(raw("a50", "2026-03-05T00:00:00Z", "user.signed_in", "eve", "fresh"))
    results = seeded.write([again[0], fresh, again[1], fresh, again[2]])
    assert [r.status for r in results] == [
        "duplicate",
        "created",
        "duplicate",
        "duplicate",
        "duplicate",
    ]
    assert all(r.delivered for r in results)
    seeded.refresh()
    assert seeded.count(Query(ACCOUNT)) == len(DATASET) + 1
    assert [r.status for r in seeded.write([enricher(e) for e in DATASET])] == ["duplicate"] * len(
        DATASET
    )
    seeded.refresh()
    assert seeded.count(Query(ACCOUNT)) == len(DATASET) + 1
    page = seeded.search(SearchRequest(Query(ACCOUNT), size=1))
    assert page.total == len(DATASET) + 1
    assert page.facets["user"][:2] == [("alice", 5), ("bob", 3)]
    assert ("eve", 2) in page.facets["user"]


def test_documents_round_trip(seeded: Store, enricher) -> None:  # noqa: ANN001
    """get() and search return the flat documents exactly as written."""
    written = {d["event.id"]: d for d in (enricher(e) for e in DATASET)}
    got = seeded.get(list(written))
    for eid, doc in written.items():
        stored = dict(got[eid])
        stored["event.ingested"] = doc["event.ingested"]
        assert stored == doc, eid
    hit = seeded.search(SearchRequest(Query(ACCOUNT, text="vip"), highlight=False)).hits[0]
    hit["event.ingested"] = written["a13"]["event.ingested"]
    assert hit == written["a13"]


def test_retention_deletes_only_older_events(seeded: Store) -> None:
    """delete_older_than removes events before the cutoff, in every account, and nothing newer."""
    deleted = seeded.delete_older_than(utc("2026-01-10T09:00:00Z"), batch_size=2)
    assert deleted == 2 * 5
    seeded.refresh()
    assert ids(seeded) == NEWEST_FIRST[:8]
    assert seeded.count(Query(OTHER)) == 8
    assert ids(seeded, text="token") == ["a07"]
    assert ids(seeded, history=("carol",)) == ["a08"]
    page = seeded.search(SearchRequest(Query(ACCOUNT), size=1))
    assert page.total == 8
    assert page.facets["user"] == [("alice", 3), ("dave", 2), ("José", 1), ("bob", 1), ("eve", 1)]


# -- export --------------------------------------------------------------------


def test_iterate_matches_search(seeded: Store) -> None:
    """iterate yields every match newest first, with the same filters
    as search, in any batch size."""
    for batch in (1, 4, 1000):
        assert [
            d["event.id"] for d in seeded.iterate(Query(ACCOUNT), batch_size=batch)
        ] == NEWEST_FIRST
    assert [d["event.id"] for d in seeded.iterate(Query(ACCOUNT, text="token | role"))] == ids(
        seeded, text="token | role"
    )
    assert list(seeded.iterate(Query("nobody"))) == []


def test_search_with_fields_keeps_at_least_those(seeded: Store) -> None:
    """A page asked for some fields holds them, with the same values, in the same order."""
    fields = ("event.id", "event.action", "user.email", "audit.comments", "user_agent.os.name")
    for text in ("", "token"):
        full = seeded.search(SearchRequest(Query(ACCOUNT, text=text), size=20))
        some = seeded.search(SearchRequest(Query(ACCOUNT, text=text), size=20, fields=fields))
        assert [h["event.id"] for h in some.hits] == [h["event.id"] for h in full.hits]
        assert some.total == full.total and some.facets == full.facets
        for a, b in zip(some.hits, full.hits, strict=True):
            assert {f: a.get(f) for f in fields} == {f: b.get(f) for f in fields}
            assert a.get("_highlight") == b.get("_highlight")


@pytest.mark.slow
def test_iterate_exports_100k_events(store: Store, enricher) -> None:  # noqa: ANN001
    """Exporting 100,000 events yields each exactly once, newest first, with bounded memory."""
    n = 100_000
    base = {
        "event.action": "user.signed_in",
        "event.outcome": "success",
        "audit.comments": "Signed in",
        "user.id": "u-bulk",
        "user.name": "bulk",
        "source.address": "10.0.0.1",
    }
    template = enricher(
        {**base, "event.id": "x", "@timestamp": "2026-01-01T00:00:00Z", "organization.id": ACCOUNT}
    )
    start = int(utc("2026-01-01T00:00:00Z").timestamp())
    docs = []
    for i in range(n):
        # Several events per second so ties are common; ids sort within a second.
        ts = datetime.fromtimestamp(start + i // 3, UTC).isoformat().replace("+00:00", ".000Z")
        docs.append({**template, "event.id": f"bulk{i:07d}", "@timestamp": ts})
    docs += mirror([{**d, "event.id": "b" + d["event.id"]} for d in docs[:5000]])
    write_all(store, docs, batch=5000)
    tracemalloc.start()
    try:
        seen = 0
        previous = None
        for doc in store.iterate(Query(ACCOUNT), batch_size=2000):
            key = (doc["@timestamp"], doc["event.id"])
            assert previous is None or key < previous
            assert doc["organization.id"] == ACCOUNT
            previous = key
            seen += 1
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == n
    assert peak < 64 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    assert store.count(Query(ACCOUNT)) == n


# -- histogram (the activity chart) ----------------------------------------------

DAY_MS = 86_400_000
HISTOGRAM_CASES = [
    pytest.param({}, DAY_MS, 0, id="days-utc"),
    pytest.param({}, DAY_MS, 3 * 3_600_000, id="days-offset-plus-3h"),
    pytest.param({}, DAY_MS, -5 * 3_600_000, id="days-offset-minus-5h"),
    pytest.param({}, 3_600_000, 0, id="hours"),
    pytest.param({"products": ("jaicp",)}, DAY_MS, 0, id="product"),
    pytest.param({"outcomes": ("failure", "unknown")}, 7 * DAY_MS, 0, id="outcomes-weeks"),
    pytest.param({"users": ("alice",), "text": "token"}, DAY_MS, 0, id="user-and-text"),
    pytest.param(
        {"start": utc("2026-01-07T00:00:00Z"), "end": utc("2026-01-09T09:00:00Z")},
        6 * 3_600_000,
        0,
        id="period-6h",
    ),
]


@pytest.mark.parametrize(("filters", "interval", "offset"), HISTOGRAM_CASES)
def test_histogram_counts_are_the_counts_of_each_bucket(
    seeded: Store, filters: dict, interval: int, offset: int
) -> None:
    """Each bucket's outcome counts equal count() narrowed to that bucket and outcome;
    together they are count() of the query (the table's total)."""
    from datetime import timedelta

    query = Query(ACCOUNT, **filters)
    buckets = seeded.histogram(query, interval, offset)
    assert sum(b.total for b in buckets) == seeded.count(query) > 0
    starts = [b.start_ms for b in buckets]
    assert starts == sorted(starts) and all((s - offset) % interval == 0 for s in starts)
    for b in buckets:
        lo = datetime.fromtimestamp(b.start_ms / 1000, UTC)
        hi = lo + timedelta(milliseconds=interval - 1)
        start = max(lo, query.start) if query.start else lo
        end = min(hi, query.end) if query.end else hi
        for outcome in ("success", "failure", "unknown"):
            narrowed = Query(
                ACCOUNT, **{**filters, "start": start, "end": end, "outcomes": (outcome,)}
            )
            if "outcomes" in filters and outcome not in filters["outcomes"]:
                assert b.counts.get(outcome, 0) == 0
                continue
            assert b.counts.get(outcome, 0) == seeded.count(narrowed), (b.start_ms, outcome)


def test_histogram_of_nothing_is_empty(seeded: Store) -> None:
    """No matches, no buckets; another account's events never count."""
    assert seeded.histogram(Query(ACCOUNT, text="zzzznomatch"), DAY_MS) == []
    assert seeded.histogram(Query("nobody-here"), DAY_MS) == []


def test_histogram_refuses_tiny_buckets(seeded: Store) -> None:
    """A bucket under a minute is a QueryError, not a flood of bars."""
    with pytest.raises(QueryError):
        seeded.histogram(Query(ACCOUNT), 1_000)


@pytest.mark.parametrize(("filters", "interval", "offset"), HISTOGRAM_CASES)
def test_a_search_asked_for_the_histogram_answers_what_histogram_answers(
    seeded: Store, filters: dict, interval: int, offset: int
) -> None:
    """The page asks for hits, facets and the chart in one request: its buckets are
    exactly ``histogram()``'s, and the hits, total and facets are those of a plain search."""
    query = Query(ACCOUNT, **filters)
    plain = seeded.search(SearchRequest(query, size=5))
    both = seeded.search(SearchRequest(query, size=5, histogram=(interval, offset)))
    assert plain.histogram is None
    assert both.histogram == seeded.histogram(query, interval, offset) != []
    assert (both.total, both.facets, both.next_cursor) == (
        plain.total,
        plain.facets,
        plain.next_cursor,
    )
    assert [h["event.id"] for h in both.hits] == [h["event.id"] for h in plain.hits]


def test_a_search_refuses_a_tiny_histogram_bucket(seeded: Store) -> None:
    with pytest.raises(QueryError):
        seeded.search(SearchRequest(Query(ACCOUNT), histogram=(1_000, 0)))
