"""Multi-value filters travel as repeated URL parameters and are never split on commas."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from werkzeug.datastructures import MultiDict

from useraudit.store import QueryError
from useraudit.webapp.filters import Filters


def test_a_comma_is_part_of_the_value() -> None:
    """'Smith, John' is one user, not two: names and e-mails may hold commas."""
    f = Filters.from_pairs([("user", "Smith, John"), ("user", "anna")])
    assert f.values["user"] == ("Smith, John", "anna")
    assert f.query("acme").users == ("Smith, John", "anna")


def test_values_round_trip_as_repeated_parameters() -> None:
    """Writing the filters back gives one parameter per value, commas encoded inside it."""
    f = Filters.from_pairs(
        [("user", "Smith, John"), ("user", "anna"), ("device", "iPhone"), ("result", "failure")]
    )
    pairs = parse_qsl(f.qs())
    assert [v for k, v in pairs if k == "user"] == ["Smith, John", "anna"]
    assert Filters.parse(MultiDict(pairs)) == f


def test_blank_and_repeated_values_are_dropped() -> None:
    """Empty boxes (the form's "add one more") and duplicates do not become filters."""
    f = Filters.from_pairs([("user", ""), ("user", "  anna "), ("user", "anna"), ("ip", " ")])
    assert f.values == {"user": ("anna",)}


def test_too_many_values_is_a_clear_error() -> None:
    """More than 100 values for one filter: a message, not a slow query."""
    with pytest.raises(QueryError, match="at most 100 values"):
        Filters.from_pairs([("user", f"u{i}") for i in range(101)])


def test_groups_and_actions_reach_the_query_as_one_picker() -> None:
    """Ticked groups and actions both reach the query (the store ORs them as one facet)."""
    f = Filters.from_pairs([("group", "common:Custom role"), ("action", "token.created")])
    q = f.query("acme")
    assert q.groups == (("common", "Custom role"),) and q.actions == ("token.created",)
