"""The seed's "Action information" columns as text, shared by the table and the export.

One function per column key of :data:`useraudit.schema.COLUMNS`, each taking a
flat stored document. The table and the XLSX export call the same code, so
they always say the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from useraudit.catalog import CATALOG
from useraudit.schema import COLUMNS, device_label, person_label

OUTCOME_LABELS = {"success": "Success", "failure": "Failure", "unknown": "Unknown"}


def action_label(code: str, fallback: str = "") -> str:
    action = CATALOG.get(code)
    return action.label if action else (fallback or code)


def parse_ts(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def local_time(doc: dict, tz: ZoneInfo) -> datetime | None:
    ts = parse_ts(doc.get("@timestamp"))
    return ts.astimezone(tz) if ts else None


def ip_device(doc: dict) -> str:
    ip = doc.get("source.ip") or doc.get("source.address") or ""
    device = device_label(doc)
    return " · ".join(p for p in (str(ip), device) if p)


def _project(doc: dict) -> str:
    name, ident = doc.get("audit.project.name"), doc.get("audit.project.id")
    if name and ident and name != ident:
        return f"{name} ({ident})"
    return str(name or ident or "")


CELLS: dict[str, Callable[[dict], str]] = {
    "action": lambda d: action_label(str(d.get("event.action") or ""), str(d.get("message") or "")),
    "user": lambda d: person_label(d, "user"),
    "token": lambda d: str(d.get("audit.token.id") or ""),
    "target": lambda d: person_label(d, "user.target"),
    "project": _project,
    "comments": lambda d: str(d.get("audit.comments") or ""),
    "ip_device": ip_device,
    "result": lambda d: OUTCOME_LABELS.get(
        str(d.get("event.outcome")), str(d.get("event.outcome") or "")
    ),
    "impersonator": lambda d: person_label(d, "audit.impersonator"),
}

assert set(CELLS) | {"timestamp"} == {c.key for c in COLUMNS}, "every column needs a renderer"


def row(doc: dict, tz: ZoneInfo) -> list[Any]:
    """Cell values in column order; the timestamp as a naive local datetime (Excel's kind)."""
    out: list[Any] = []
    for col in COLUMNS:
        if col.key == "timestamp":
            ts = local_time(doc, tz)
            out.append(ts.replace(tzinfo=None) if ts else None)
        else:
            out.append(CELLS[col.key](doc))
    return out
