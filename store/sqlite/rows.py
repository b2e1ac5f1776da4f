"""An event as a row of ``events`` and back: the INSERT parameters, IP keys, folded names.

Ingest speed is mostly Python per event, so the row of an event is built by
one generated function (:func:`build_row`) rather than a loop over fields;
docs/sqlite.md has the measurements behind the choices here.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

import orjson

from useraudit.schema import Kind

from ..query import fold, networks, to_ms
from . import facet_values, related_users
from .facet_combos import COMBO_COLUMNS
from .facet_values import VALUE_COLUMNS
from .layout import COLUMNS, FACET_COLUMNS, FIELD_COLUMN, FOLDED, VALUE_ID_COLUMNS, WEEK_MS
from .related_users import persons_of

INSERT_COLUMNS = (
    ["rid", "event_id", "ts_ms", "week"]
    + [col for name, col, _k, _m in COLUMNS if name != "event.id"]
    + [col for _n, col in FOLDED]
    + ["ip_key", "combo", *VALUE_ID_COLUMNS]
)
# How a write row carries NULL: binding None costs ~7x an int or a str
# (docs/sqlite.md), so absent text and blobs travel as 0 and absent integers
# as '', and the INSERT turns them back into NULL.
NULL_TEXT = 0
NULL_INTEGER = ""
_INTEGER_COLUMNS = frozenset(
    col for _name, col, kind, multi in COLUMNS if not multi and kind is Kind.INTEGER
) | frozenset(VALUE_ID_COLUMNS)
_NOT_NULL = frozenset(("rid", "event_id", "ts_ms", "week", "combo"))
INSERT = (
    f"INSERT OR IGNORE INTO events ({', '.join(INSERT_COLUMNS)}) VALUES ("
    + ", ".join(
        "?"
        if col in _NOT_NULL
        else f"nullif(?, {NULL_INTEGER!r})"
        if col in _INTEGER_COLUMNS
        else f"nullif(?, {NULL_TEXT})"
        for col in INSERT_COLUMNS
    )
    + ")"
)
READ_COLUMNS = [col for _n, col, _k, _m in COLUMNS]
SELECT = "SELECT " + ", ".join(READ_COLUMNS) + " FROM events"
_DECODERS: tuple[tuple[str, int, Callable[[Any], Any] | None], ...] = tuple(
    (name, i, json.loads if (multi or kind is Kind.FLAT) else None)
    for i, (name, _col, kind, multi) in enumerate(COLUMNS)
)


_V4_MAPPED = b"\0" * 10 + b"\xff\xff"


def ip_key(address: str) -> bytes:
    # inet_pton takes exactly the canonical forms ipaddress does, far faster
    # (docs/sqlite.md); zone ids go the long way.
    try:
        return _V4_MAPPED + socket.inet_pton(socket.AF_INET, address)
    except OSError:
        pass
    try:
        return socket.inet_pton(socket.AF_INET6, address)
    except OSError:
        pass
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed).packed
    return ip.packed


def ip_range(value: str) -> tuple[bytes, bytes]:
    """First and last 16-byte keys of an address or CIDR network."""
    net = networks(value)
    if isinstance(net, ipaddress.IPv4Network):
        return ip_key(str(net.network_address)), ip_key(str(net.broadcast_address))
    return net.network_address.packed, net.broadcast_address.packed


_encode_std = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False
).encode


def _encode(value: Any) -> str:
    """Compact JSON text: orjson (~8x faster), the standard library for what it refuses.

    orjson refuses lone surrogates and integers beyond 64 bits; what neither
    can encode raises TypeError, and write() rejects that event.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return _encode_std(value)


def _build_row_function() -> Callable[[dict, int, int], list]:
    """``build_row(doc, rid, ts_ms)``: the INSERT parameters, as one generated expression.

    Absent values are :data:`NULL_TEXT` or :data:`NULL_INTEGER`, not None.

    Ingest speed is mostly Python per event; a loop over ~50 fields with
    branches per kind costs several times this straight-line code.
    """
    parts = ["rid", 'doc["event.id"]', "ts_ms", f"ts_ms // {WEEK_MS}"]
    for name, _col, kind, multi in COLUMNS:
        if name == "event.id":
            continue
        get = f"g({name!r})"
        if multi:
            parts.append(f"(NT if (v := {get}) is None else enc(v if type(v) is list else [v]))")
        elif kind is Kind.FLAT:
            parts.append(f"(NT if (v := {get}) is None else enc(v))")
        elif _col in _INTEGER_COLUMNS:
            parts.append(f"(NI if (v := {get}) is None else int(v))")
        else:
            parts.append(f"(NT if (v := {get}) is None else v if type(v) is str else str(v))")
    for name, _col in FOLDED:
        # Stored only where folding changes the value (the query reads
        # coalesce(fold, value)): most addresses and ids are lowercase already.
        parts.append(f"(f if (v := g({name!r})) and (f := fold(v)) != v else NT)")
    parts.append('(ipk(v) if (v := g("source.ip")) else NT)')
    parts.append("None")  # combo: given by write() from the row's own values
    parts += ["NI"] * len(VALUE_ID_COLUMNS)  # value ids: given by write()
    src = (
        "def build_row(doc, rid, ts_ms):\n    g = doc.get\n    return [\n        "
        + ",\n        ".join(parts)
        + "]\n"
    )
    namespace: dict[str, Any] = {
        "enc": _encode,
        "fold": fold_value,
        "ipk": _ip_key_for_row,
        "NT": NULL_TEXT,
        "NI": NULL_INTEGER,
    }
    exec(compile(src, "<useraudit.store.sqlite row>", "exec"), namespace)  # noqa: S102 - our own code
    return namespace["build_row"]


def _ip_key_for_row(address: str) -> bytearray | int:
    # A bytearray binds directly; bytes go through the adapter protocol (~0.5 us).
    try:
        return bytearray(ip_key(address))
    except ValueError:
        return NULL_TEXT


# The SQL function each connection registers to fold a column as the query values are.
FOLD_FUNCTION = "useraudit_fold"


def fold_or_none(value: Any) -> str | None:
    return None if value is None else fold_value(value)


def fold_value(value: Any) -> str:
    value = value if isinstance(value, str) else str(value)
    return value.lower() if value.isascii() else fold(value)


build_row = _build_row_function()


def read_doc(row: Sequence[Any]) -> dict:
    doc: dict[str, Any] = {}
    for name, i, decode in _DECODERS:
        v = row[i]
        if v is not None:
            doc[name] = decode(v) if decode else v
    return doc


def timestamp_ms(value: Any) -> int:
    """Epoch milliseconds of an event's @timestamp (Python 3.11 parses "Z" itself)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    return to_ms(datetime.fromisoformat(value if type(value) is str else str(value)))


INSERT_INDEX = {col: i for i, col in enumerate(INSERT_COLUMNS)}
WEEK = INSERT_INDEX["week"]
ACCOUNT = INSERT_INDEX["organization_id"]
COMBO = INSERT_INDEX["combo"]
COMMENTS = INSERT_INDEX["audit_comments"]
combo_of_row = itemgetter(*(INSERT_INDEX[col] for col in COMBO_COLUMNS))
# (value, value id) positions in a write row.
VALUE_SLOTS = tuple(
    (INSERT_INDEX[col], INSERT_INDEX[facet_values.id_column(col)]) for col in VALUE_COLUMNS
)


def persons_in(get: Callable[[str], Any], users: Any) -> list[frozenset[str]]:
    """An event's persons (see related_users), from its fields and related.user.

    write() and retention both find them here, so a delete finds exactly the
    related_users rows the write made (there is no index on rid to find them by).
    """
    if not users:
        return []
    return persons_of(get, users if isinstance(users, list) else [users], fold_value)


# The person fields, to find a stored event's persons again (deletes, upgrades).
ROLE_FIELDS = tuple(f for fields in related_users.ROLE_FIELDS for f in fields)
ROLE_SELECT = ", ".join(FIELD_COLUMN[f] for f in ROLE_FIELDS)


def stored_persons(role_values: Sequence[Any], related_json: str) -> list[frozenset[str]]:
    """:func:`persons_in` of a stored event: its ``ROLE_SELECT`` columns and related_user."""
    return persons_in(
        dict(zip(ROLE_FIELDS, role_values, strict=True)).get, json.loads(related_json)
    )


# Where the account, ts_ms and facet values sit in an INSERT row...
COUNT_POSITIONS = [
    INSERT_INDEX["organization_id"],
    INSERT_INDEX["ts_ms"],
    *(INSERT_INDEX[col] for _name, col in FACET_COLUMNS),
]
# ...and the same values as a SELECT list (for deletes).
COUNT_SELECT = ", ".join(["organization_id", "ts_ms", *(col for _name, col in FACET_COLUMNS)])
