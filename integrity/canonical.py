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
from typing import Any

import orjson
import rfc8785

from useraudit.schema import FIELDS

_SCHEMA = frozenset(f.name for f in FIELDS)
_MAX_SAFE = 2**53 - 1
_SORT = orjson.OPT_SORT_KEYS


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


def event_hash(doc: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical form of a stored event's schema fields."""
    return hashlib.sha256(canonical(project(doc))).hexdigest()
