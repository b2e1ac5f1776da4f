"""The canonical form of a stored event (RFC 8785) and its hash.

What is hashed is the event's schema fields (``useraudit.schema.FIELDS``)
that are present and not empty: both stores hand exactly those back, so the
hash of what the indexer wrote equals the hash of what ``verify`` reads.

RFC 8785 is defined by the ``rfc8785`` library. orjson with sorted keys
writes the same bytes for the documents the enricher makes (strings, lists,
objects, integers within ±2^53, keys that sort alike in UTF-16 and in code
points) several times faster; :func:`canonical` takes that path only when a
walk of the document finds nothing else, and a test holds both paths
byte-equal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson
import rfc8785

from useraudit.schema import FIELDS

_SCHEMA = frozenset(f.name for f in FIELDS)
# Schema names are ASCII, so a projected event's own keys never need the UTF-16 check.
assert all(name.isascii() for name in _SCHEMA)
_MAX_SAFE = 2**53 - 1
_SORT = orjson.OPT_SORT_KEYS
# orjson refuses integers beyond ±2^53 with this: RFC 8785's exact range, checked in C.
_SORT_STRICT = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


def project(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields that are hashed: schema fields present and not empty."""
    # A stored document holds a few dozen fields, the schema a hundred: walk the document.
    return {
        name: value
        for name, value in doc.items()
        if name in _SCHEMA and not (value is None or value == "" or value == [] or value == {})
    }


def _plain(value: Any) -> bool:
    """True when orjson's sorted output is already RFC 8785 for ``value``."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return -_MAX_SAFE <= value <= _MAX_SAFE
    if kind is dict:
        for key in value:
            # UTF-16 order differs from code point order only past U+E000.
            if type(key) is not str or (not key.isascii() and max(key) >= "\ue000"):
                return False
        items = value.values()
    elif kind is list:
        items = value
    else:
        return False  # floats and anything else: the reference implementation
    for v in items:
        # Strings, the common leaf, without a call per value.
        if type(v) is not str and not _plain(v):
            return False
    return True


def canonical(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value."""
    if _plain(value):
        try:
            return orjson.dumps(value, option=_SORT)
        except TypeError:  # lone surrogates: let the reference say what it makes of them
            pass
    return rfc8785.dumps(value)


def canonical_event(doc: dict[str, Any]) -> bytes:
    """RFC 8785 bytes of a stored event's schema fields: ``canonical(project(doc))``, faster."""
    values = doc.values()
    # all(): no None, "", [] or {} (nor 0 or False, rare: those take the projection too).
    if all(values) and doc.keys() <= _SCHEMA:
        fields = doc  # the common case: nothing to drop, no copy
    else:
        fields = project(doc)
        values = fields.values()
    for value in values:
        kind = type(value)
        # Integers are range-checked by orjson (OPT_STRICT_INTEGER) below.
        if kind is str or kind is int:
            continue
        if kind is list:
            for item in value:
                if type(item) is not str and not _plain(item):
                    return rfc8785.dumps(fields)
        elif not _plain(value):
            return rfc8785.dumps(fields)
    try:
        return orjson.dumps(fields, option=_SORT_STRICT)
    except TypeError:  # lone surrogates, integers past 2^53: the reference decides
        return rfc8785.dumps(fields)


def canonical_entry(entry: Sequence[Any]) -> bytes:
    """RFC 8785 bytes of a checkpoint entry (a short list of strings, integers, nulls)."""
    for item in entry:
        kind = type(item)
        if kind is not str and kind is not int and item is not None:
            return canonical(list(entry))
    try:
        return orjson.dumps(entry, option=_SORT_STRICT)
    except TypeError:  # lone surrogates, integers past 2^53: the reference decides
        return canonical(list(entry))


def event_hash(doc: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical form of a stored event's schema fields."""
    return hashlib.sha256(canonical_event(doc)).hexdigest()
