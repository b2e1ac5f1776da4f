"""schema.picker: the export's fast flatten must say exactly what flatten says."""

from __future__ import annotations

import pytest

from useraudit.schema import COLUMN_FIELDS, flatten, nest, picker

NESTED = {
    "@timestamp": "2026-11-01T10:00:00.000Z",
    "event": {"id": "e1", "action": "project.exported", "outcome": "success"},
    "user": {"id": "u1", "name": "Ann", "email": "ann@example.com", "target": {"name": "Bob"}},
    "user_agent": {"name": "Chrome", "os": {"name": "Windows"}, "device": {"name": "Other"}},
    "source": {"ip": "10.0.0.1"},
    "audit": {"comments": "=1+1", "params": {"a": {"b": 1}}, "project": {"id": "p1"}},
    "organization": {"id": "acme"},
}


def expected(doc: dict, fields: tuple[str, ...]) -> dict:
    return {k: v for k, v in flatten(doc).items() if k in fields and v is not None}


@pytest.mark.parametrize(
    "doc",
    [
        NESTED,
        {},
        {"event": None, "user": "not an object", "audit": {"project": []}},
        # dotted keys at the top, as another tool may have written them
        {"event.action": "user.signed_in", "user": {"name": "Ann"}, "audit.comments": "x"},
        nest({"user.target.email": "t@example.com", "audit.params": {"k": [1, 2]}}),
    ],
)
def test_picker_matches_flatten_on_the_picked_fields(doc: dict) -> None:
    fields = (*COLUMN_FIELDS, "audit.params", "organization.id")
    assert picker(fields)(doc) == expected(doc, fields)


def test_picker_keeps_only_what_was_asked() -> None:
    assert picker(("event.action", "audit.params"))(NESTED) == {
        "event.action": "project.exported",
        "audit.params": {"a": {"b": 1}},
    }


def test_picker_refuses_a_field_that_is_also_a_parent() -> None:
    with pytest.raises(ValueError, match="both a field and a parent"):
        picker(("user.name", "user.name.first"))
