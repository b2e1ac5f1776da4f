"""The columns of the XLSX and CSV exports: one fact per column.

The page shows a person as "name over e-mail" and the client as "IP ·
browser · OS" in one cell, which reads well but cannot be filtered or
sorted in a spreadsheet. The exports split every such cell into its parts
(name, e-mail and id of each person; IP, browser, OS, device) and add the
failure reason the table has no room for. Both formats take their values
from :func:`export_values`, so an XLSX and a CSV of the same filters hold
the same cells.

Values are raw here: text (``""`` when absent) or, for the timestamp, an
aware datetime in the admin's zone. Each writer makes them safe for its
format (formula neutralising, Excel's limits).

Times are local to the zone the page showed, which the time column's
header names ("Date and time (Europe/Berlin)"); the next column gives each
row's own UTC offset ("UTC+01:00"), which changes across a daylight-saving
change inside one file. NDJSON keeps ECS's UTC ``@timestamp``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from .columns import OUTCOME_LABELS, action_label, parse_ts


@dataclass(frozen=True, slots=True)
class ExportColumn:
    key: str
    label: str
    fields: tuple[str, ...]
    width: int  # characters, for the XLSX export
    # Long text in this column is wrapped in the workbook.
    wrap: bool = False


def _text(name: str) -> Callable[[dict], str]:
    def get(doc: dict) -> str:
        value = doc.get(name)
        return "" if value is None else str(value)

    return get


def _person_name(prefix: str) -> Callable[[dict], str]:
    full, login = f"{prefix}.full_name", f"{prefix}.name"

    def get(doc: dict) -> str:
        return str(doc.get(full) or doc.get(login) or "")

    return get


def _person(prefix: str, label: str) -> list[tuple[ExportColumn, Callable[[dict], str]]]:
    return [
        (
            ExportColumn(f"{prefix}.name", label, (f"{prefix}.full_name", f"{prefix}.name"), 26),
            _person_name(prefix),
        ),
        (
            ExportColumn(f"{prefix}.email", f"{label} e-mail", (f"{prefix}.email",), 28),
            _text(f"{prefix}.email"),
        ),
        (
            ExportColumn(f"{prefix}.id", f"{label} ID", (f"{prefix}.id",), 12),
            _text(f"{prefix}.id"),
        ),
    ]


def _action(doc: dict) -> str:
    return action_label(str(doc.get("event.action") or ""), str(doc.get("message") or ""))


def _result(doc: dict) -> str:
    outcome = str(doc.get("event.outcome") or "")
    return OUTCOME_LABELS.get(outcome, outcome)


def _ip(doc: dict) -> str:
    return str(doc.get("source.ip") or doc.get("source.address") or "")


_TIMESTAMP = ExportColumn("timestamp", "Date and time", ("@timestamp",), 20)
_OFFSET = ExportColumn("utc_offset", "UTC offset", ("@timestamp",), 10)
_DEFINED: list[tuple[ExportColumn, Callable[[dict], str]]] = [
    (ExportColumn("action", "Action", ("event.action", "message"), 34), _action),
    (ExportColumn("action_code", "Action code", ("event.action",), 26), _text("event.action")),
    *_person("user", "User"),
    (ExportColumn("token", "Token ID", ("audit.token.id",), 16), _text("audit.token.id")),
    *_person("user.target", "Modified user"),
    (
        ExportColumn("project", "Project", ("audit.project.name",), 20),
        _text("audit.project.name"),
    ),
    (
        ExportColumn("project_id", "Project ID", ("audit.project.id",), 14),
        _text("audit.project.id"),
    ),
    (
        ExportColumn("comments", "Comments", ("audit.comments",), 60, wrap=True),
        _text("audit.comments"),
    ),
    (ExportColumn("ip", "IP", ("source.ip", "source.address"), 16), _ip),
    (ExportColumn("browser", "Browser", ("user_agent.name",), 14), _text("user_agent.name")),
    (
        ExportColumn("browser_version", "Browser version", ("user_agent.version",), 10),
        _text("user_agent.version"),
    ),
    (ExportColumn("os", "OS", ("user_agent.os.name",), 12), _text("user_agent.os.name")),
    (
        ExportColumn("os_version", "OS version", ("user_agent.os.version",), 10),
        _text("user_agent.os.version"),
    ),
    (
        ExportColumn("device", "Device", ("user_agent.device.name",), 14),
        _text("user_agent.device.name"),
    ),
    (ExportColumn("result", "Result", ("event.outcome",), 10), _result),
    (ExportColumn("reason", "Reason", ("event.reason",), 40, wrap=True), _text("event.reason")),
    *_person("audit.impersonator", "Impersonator"),
]

# Action first, then the time: the order of the page's table, split.
EXPORT_COLUMNS: tuple[ExportColumn, ...] = (
    _DEFINED[0][0],
    _TIMESTAMP,
    _OFFSET,
    *(c for c, _fn in _DEFINED[1:]),
)
TIMESTAMP_INDEX = 1
OFFSET_INDEX = 2
# (column index, its text function) for every column but the time and its offset.
TEXT_CELLS: tuple[tuple[int, Callable[[dict], str]], ...] = tuple(
    (i if i < TIMESTAMP_INDEX else i + 2, fn) for i, (_c, fn) in enumerate(_DEFINED)
)
WRAPPED: frozenset[int] = frozenset(i for i, c in enumerate(EXPORT_COLUMNS) if c.wrap)
# Every field an export row reads: what Store.iterate needs to return.
EXPORT_FIELDS: tuple[str, ...] = tuple(dict.fromkeys(f for c in EXPORT_COLUMNS for f in c.fields))
WIDTH = len(EXPORT_COLUMNS)

assert EXPORT_COLUMNS[TIMESTAMP_INDEX] is _TIMESTAMP
assert EXPORT_COLUMNS[OFFSET_INDEX] is _OFFSET
assert len({c.key for c in EXPORT_COLUMNS}) == WIDTH, "export column keys are unique"


def export_values(doc: dict, tz: ZoneInfo) -> list[Any]:
    """One stored (flat) document as the export's raw values, in column order."""
    row: list[Any] = [""] * WIDTH
    for i, fn in TEXT_CELLS:
        row[i] = fn(doc)
    ts = local_timestamp(doc, tz)
    row[TIMESTAMP_INDEX] = ts
    row[OFFSET_INDEX] = utc_offset(ts)
    return row


def export_labels(tz: ZoneInfo) -> list[str]:
    """The header row: the time column names the zone its times are in."""
    labels = [c.label for c in EXPORT_COLUMNS]
    labels[TIMESTAMP_INDEX] = f"{_TIMESTAMP.label} ({zone_name(tz)})"
    return labels


def zone_name(tz: ZoneInfo) -> str:
    return str(getattr(tz, "key", None) or tz)


def local_timestamp(doc: dict, tz: ZoneInfo) -> datetime | None:
    ts = parse_ts(doc.get("@timestamp"))
    return ts.astimezone(tz) if ts else None


def utc_offset(ts: datetime | None) -> str:
    """``UTC+01:00`` / ``UTC-07:00`` / ``UTC+00:00``: the offset of an aware local time.

    Never a bare ``+01:00``: a spreadsheet opening the CSV would take the
    leading ``+`` for the start of a formula.
    """
    if ts is None:
        return ""
    return _offset_text(ts.utcoffset() or timedelta(0))


@lru_cache(maxsize=256)
def _offset_text(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{mins:02d}"
