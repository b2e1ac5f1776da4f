"""The export workbook: cells, sheets and limits (no Flask here).

Written by :mod:`.export` in a thread of the web process, or for big
exports by :mod:`.workbook_process` in a child process; both call
:func:`write_workbook`, so both produce the same file:

* the table's columns and labels (from :data:`useraudit.schema.COLUMNS`,
  widths included), a frozen, auto-filtered header row;
* real Excel datetimes in the admin's time zone;
* formula injection neutralised: a text cell starting with ``= + - @``,
  tab, CR, LF or NUL gets a leading ``'`` (OWASP / ASVS 5.0 1.2.10), so
  Excel shows it as text and never evaluates it;
* past Excel's 1,048,576 rows, further sheets ("User actions 2", ...);
* a "Filters" sheet saying what was exported, by whom, when.

openpyxl's write-only mode (with lxml) streams rows to a temporary file,
so memory stays flat however many rows.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import IO, Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from useraudit.schema import COLUMNS

from .columns import CELLS, parse_ts

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_CHARS = 32_767
SHEET_TITLE = "User actions"
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r", "\n", "\x00")
_TEXT_KEYS = [c.key for c in COLUMNS if c.key != "timestamp"]
_TS_INDEX = [c.key for c in COLUMNS].index("timestamp")


def neutralise(value: str) -> str:
    """Text that Excel will never treat as a formula, and that it can hold."""
    if not value:
        return value
    if ILLEGAL_CHARACTERS_RE.search(value):
        value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
    if value[0] in _DANGEROUS:
        value = "'" + value
    if len(value) > EXCEL_MAX_CHARS:
        value = value[: EXCEL_MAX_CHARS - 1] + "…"
    return value


def _header(ws: Worksheet) -> list[WriteOnlyCell]:
    font, fill = Font(bold=True, color="FFFFFF"), PatternFill("solid", fgColor="1F3A5F")
    cells = []
    for col in COLUMNS:
        cell = WriteOnlyCell(ws, value=col.label)
        cell.font, cell.fill = font, fill
        cell.alignment = Alignment(vertical="center")
        cells.append(cell)
    return cells


def _new_sheet(wb: Workbook, number: int) -> Worksheet:
    ws = wb.create_sheet(SHEET_TITLE if number == 1 else f"{SHEET_TITLE} {number}")
    ws.freeze_panes = "A2"
    for i, col in enumerate(COLUMNS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = col.width
    ws.append(_header(ws))
    return ws


_CELLS = [(i, CELLS[c.key]) for i, c in enumerate(COLUMNS) if c.key != "timestamp"]
_WIDTH = len(COLUMNS)


def export_row(doc: dict, tz: ZoneInfo) -> list[Any]:
    """One document as the export's cell values.

    Safe text, a naive local datetime, None for empty.
    """
    row: list[Any] = [None] * _WIDTH
    texts = [(i, text) for i, fn in _CELLS if (text := fn(doc))]
    # Illegal characters are rare: one search over the row ("\n" is legal)
    # instead of one per cell; only a row that has any takes the full path.
    if ILLEGAL_CHARACTERS_RE.search("\n".join(t for _i, t in texts)):
        for i, text in texts:
            row[i] = neutralise(text)
    else:
        for i, text in texts:
            if text[0] in _DANGEROUS or len(text) > EXCEL_MAX_CHARS:
                text = neutralise(text)
            row[i] = text
    ts = parse_ts(doc.get("@timestamp"))
    row[_TS_INDEX] = ts.astimezone(tz).replace(tzinfo=None) if ts else None
    return row


def doc_rows(docs: Iterable[dict], tz: ZoneInfo) -> Iterator[list[Any]]:
    for doc in docs:
        yield export_row(doc, tz)


def write_workbook(
    out: IO[bytes] | io.RawIOBase | str,
    rows: Iterable[list[Any]],
    about: list[tuple[str, str]],
    *,
    max_rows: int = EXCEL_MAX_ROWS,
) -> int:
    """Write ``rows`` (from :func:`export_row`) as the export workbook; returns how many."""
    wb = Workbook(write_only=True)
    sheets: list[tuple[Worksheet, int]] = []
    number, ws, in_sheet, total = 1, _new_sheet(wb, 1), 0, 0
    last = get_column_letter(len(COLUMNS))
    append = ws.append
    for row in rows:
        if in_sheet >= max_rows - 1:
            sheets.append((ws, in_sheet))
            number += 1
            ws, in_sheet = _new_sheet(wb, number), 0
            append = ws.append
        append(row)
        in_sheet += 1
        total += 1
    sheets.append((ws, in_sheet))
    for sheet, count in sheets:
        sheet.auto_filter.ref = f"A1:{last}{count + 1}"

    info = wb.create_sheet("Filters")
    info.column_dimensions["A"].width = 22
    info.column_dimensions["B"].width = 70
    bold = Font(bold=True)
    for label, value in [*about, ("Rows exported", str(total))]:
        key = WriteOnlyCell(info, value=neutralise(label))
        key.font = bold
        info.append([key, neutralise(value)])
    wb.save(out)
    return total
