"""The canonical form: orjson's fast path writes exactly RFC 8785's bytes."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from useraudit.integrity.canonical import (
    canonical,
    canonical_entry,
    canonical_event,
    event_hash,
    project,
)
from useraudit.schema import FIELDS

keys = st.text(max_size=6)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


def reference(value: object) -> bytes | None:
    try:
        return rfc8785.dumps(value)
    except Exception:  # noqa: BLE001 - values RFC 8785 has no form for
        return None


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_fast_path_equals_rfc8785(value: object) -> None:
    expected = reference(value)
    if expected is not None:
        assert canonical(value) == expected


def test_key_order_is_utf16_not_code_points() -> None:
    # U+1F600 sorts before U+E000 in UTF-16 (a surrogate pair), after it in code points.
    value = {"\ue000": 1, "\U0001f600": 2}
    assert canonical(value) == rfc8785.dumps(value)
    assert canonical(value).index("\U0001f600".encode()) < canonical(value).index("\ue000".encode())


def test_floats_take_the_reference_form() -> None:
    assert canonical({"n": 1.0, "m": 1e21}) == b'{"m":1e+21,"n":1}'


def test_project_keeps_schema_fields_that_are_not_empty() -> None:
    doc = {
        "event.id": "e1",
        "@timestamp": "2026-01-01T00:00:00.000Z",
        "audit.comments": "",
        "audit.params": {},
        "related.user": [],
        "not.a.field": "x",
    }
    assert project(doc) == {"event.id": "e1", "@timestamp": "2026-01-01T00:00:00.000Z"}
    assert event_hash(doc) == event_hash({**doc, "not.a.field": "y", "audit.flags": None})
    assert event_hash(doc) != event_hash({**doc, "event.id": "e2"})


# Stored documents: schema names (and a few others), values of every JSON kind,
# empty ones included, so both the no-copy path and the projection are taken.
field_names = st.sampled_from([f.name for f in FIELDS][:12] + ["not.a.field", "x"])
documents = st.dictionaries(
    field_names,
    json_values | st.just("") | st.just([]) | st.just({}) | st.just(0) | st.just(2**53),
    max_size=10,
)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_canonical_event_is_the_canonical_form_of_the_projection(doc: dict) -> None:
    expected = reference(project(doc))
    if expected is not None:
        assert canonical_event(doc) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.none() | st.text(max_size=8) | st.integers(-(2**60), 2**60) | scalars, max_size=6)
)
def test_canonical_entry_equals_rfc8785(entry: list) -> None:
    expected = reference(entry)
    if expected is not None:
        assert canonical_entry(entry) == expected
        assert canonical_entry(tuple(entry)) == expected


def test_integers_past_2_53_take_the_reference_path() -> None:
    doc = {"event.id": "e1", "audit.origin.seq": 2**53}
    with pytest.raises(rfc8785.IntegerDomainError):
        canonical_event(doc)
    with pytest.raises(rfc8785.IntegerDomainError):
        canonical_entry(["e1", 2**53])
