"""Filter semantics, as a property on both stores: OR within a facet, AND across facets.

For any selection in one facet (the action picker's groups and actions
together, products, results, people, browsers...), the events found are
exactly the union of what each single choice finds; for choices in several
facets, the intersection of each facet's answer. Runs on the real
OpenSearch node and on SQLite (the ``seeded`` fixture) with the contract's
data set.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from useraudit.store.base import Store
from useraudit.store.query import Query

from .conftest import ACCOUNT, NEWEST_FIRST

# Facet → the choices a picker or a filter box offers (some match nothing,
# some differ only in case, accents or script from what is stored).
CHOICES: dict[str, list[Any]] = {
    "picker": [
        ("actions", "custom_role.created"),
        ("actions", "custom_role.deleted"),
        ("actions", "token.created"),
        ("actions", "user.signed_in"),
        ("actions", "never.happened"),
        ("groups", ("common", "Custom role")),
        ("groups", ("jaicp", "API tokens")),
        ("groups", ("common", "Users")),
        ("groups", ("jaicp", "Custom role")),
    ],
    "products": ["common", "jaicp", "useraudit", "unknown", "nope"],
    "outcomes": ["success", "failure", "unknown"],
    "users": ["alice", "BOB@example.com", "u-carol", "jose nunez", "Carol Дмитриева", "nobody"],
    "target_users": ["bob", "carol дмитриева", "u-carol"],
    "impersonators": ["ROOT", "Root Admin", "u-root", "alice"],
    "history": ["alice", "bob", "Root@Example.com", "u-carol"],
    "browsers": ["firefox", "Chrome", "MOBILE SAFARI", "lynx"],
    "oses": ["windows", "IOS", "ubuntu", "Linux"],
    "devices": ["iphone", "Other", "pixel"],
    "ips": ["10.1.0.0/16", "2001:db8::5", "172.16.0.9", "192.0.2.0/24"],
    "projects": ["p-sales", "p-billing", "p-none"],
    "token_ids": ["tok-1", "tok-2"],
}
ORDER = {eid: i for i, eid in enumerate(NEWEST_FIRST)}
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _kwargs(facet: str, choices: list[Any]) -> dict[str, Any]:
    if facet != "picker":
        return {facet: tuple(choices)}
    out: dict[str, list[Any]] = {"actions": [], "groups": []}
    for attr, value in choices:
        out[attr].append(value)
    return {k: tuple(v) for k, v in out.items() if v}


class Answers:
    """Event ids a query finds on one store, remembered per query."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen: dict[Query, list[str]] = {}

    def __call__(self, **filters: Any) -> list[str]:
        query = Query(ACCOUNT, **filters)
        if query not in self.seen:
            found = [d["event.id"] for d in self.store.iterate(query, fields=("event.id",))]
            assert self.store.count(query) == len(found)
            self.seen[query] = found
        return self.seen[query]


def _newest_first(ids: set[str]) -> list[str]:
    return sorted(ids, key=ORDER.__getitem__)


def selection(facet: str) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.sampled_from(CHOICES[facet]), min_size=1, max_size=4, unique=True)


@st.composite
def one_facet(draw: Any) -> tuple[str, list[Any]]:
    facet = draw(st.sampled_from(sorted(CHOICES)))
    return facet, draw(selection(facet))


@st.composite
def several_facets(draw: Any) -> dict[str, list[Any]]:
    facets = draw(st.lists(st.sampled_from(sorted(CHOICES)), min_size=2, max_size=3, unique=True))
    return {f: draw(selection(f)) for f in facets}


def test_a_selection_finds_the_union_of_its_single_choices(seeded: Store) -> None:
    """Within one facet, choices are ORed: the answer is the union of each choice's answer."""
    answers = Answers(seeded)

    @SETTINGS
    @given(one_facet())
    def check(picked: tuple[str, list[Any]]) -> None:
        facet, choices = picked
        union: set[str] = set()
        for choice in choices:
            union.update(answers(**_kwargs(facet, [choice])))
        assert answers(**_kwargs(facet, choices)) == _newest_first(union), (facet, choices)

    check()
    # The data set makes the property bite: some single choices find events.
    assert any(answers.seen.values())


def test_facets_combine_as_the_intersection_of_each(seeded: Store) -> None:
    """Across facets, filters are ANDed: the answer is the intersection of each facet's answer."""
    answers = Answers(seeded)

    @SETTINGS
    @given(several_facets())
    def check(picked: dict[str, list[Any]]) -> None:
        combined: dict[str, Any] = {}
        expected: set[str] | None = None
        for facet, choices in picked.items():
            kwargs = _kwargs(facet, choices)
            combined.update(kwargs)
            found = set(answers(**kwargs))
            expected = found if expected is None else expected & found
        assert expected is not None
        assert answers(**combined) == _newest_first(expected), picked

    check()
