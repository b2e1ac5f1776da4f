"""The export workbook: cells, sheets and limits (no Flask here).

Written by :mod:`.export` in a thread of the web process, or for big
exports by :mod:`.workbook_process` in a child process; both call
:func:`write_workbook`, so both produce the same file:

* one fact per column (:data:`.export_columns.EXPORT_COLUMNS`: name,
  e-mail and id of each person, IP, browser, OS, device, reason), widths
  included, a frozen, auto-filtered header row; long comments and reasons
  wrapped;
* real Excel datetimes in the admin's time zone;
* formula injection neutralised: a text cell starting with ``= + - @``,
  tab, CR, LF or NUL gets a leading ``'`` (OWASP / ASVS 5.0 1.2.10), so
  Excel shows it as text and never evaluates it;
* past Excel's 1,048,576 rows, further sheets ("User actions 2", ...);
* a "Filters" sheet saying what was exported, by whom, when, its values
  typed: counts as numbers, times as Excel datetimes.

openpyxl's write-only mode (with lxml) streams rows to a temporary file,
so memory stays flat however many rows.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from copy import copy
from datetime import datetime
from typing import IO, Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from .export_columns import (
    EXPORT_COLUMNS,
    OFFSET_INDEX,
    TEXT_CELLS,
    TIMESTAMP_INDEX,
    WIDTH,
    WRAPPED,
    local_timestamp,
    utc_offset,
)

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_CHARS = 32_767
SHEET_TITLE = "User actions"
DANGEROUS = ("=", "+", "-", "@", "\t", "\r", "\n", "\x00")
# Text longer than this in a wrapped column gets the wrapping style.
WRAP_FROM = 50
# A Filters-sheet value: text, a count, or a (naive, local) time.
AboutValue = str | int | datetime


def neutralise(value: str) -> str:
    """Text that Excel will never treat as a formula, and that it can hold."""
    if not value:
        return value
    if ILLEGAL_CHARACTERS_RE.search(value):
        value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
    if value[0] in DANGEROUS:
        value = "'" + value
    if len(value) > EXCEL_MAX_CHARS:
        value = value[: EXCEL_MAX_CHARS - 1] + "…"
    return value


def _header(ws: Worksheet, labels: Sequence[str]) -> list[WriteOnlyCell]:
    font, fill = Font(bold=True, color="FFFFFF"), PatternFill("solid", fgColor="1F3A5F")
    cells = []
    for label in labels:
        cell = WriteOnlyCell(ws, value=label)
        cell.font, cell.fill = font, fill
        cell.alignment = Alignment(vertical="center")
        cells.append(cell)
    return cells


def _new_sheet(wb: Workbook, number: int, labels: Sequence[str]) -> Worksheet:
    ws = wb.create_sheet(SHEET_TITLE if number == 1 else f"{SHEET_TITLE} {number}")
    ws.freeze_panes = "A2"
    for i, col in enumerate(EXPORT_COLUMNS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = col.width
    ws.append(_header(ws, labels))
    return ws


def export_row(doc: dict, tz: ZoneInfo) -> list[Any]:
    """One document as the export's cell values.

    Safe text, a naive local datetime, None for empty.
    """
    row: list[Any] = [None] * WIDTH
    texts = [(i, text) for i, fn in TEXT_CELLS if (text := fn(doc))]
    # Illegal characters are rare: one search over the row ("\n" is legal)
    # instead of one per cell; only a row that has any takes the full path.
    if ILLEGAL_CHARACTERS_RE.search("\n".join(t for _i, t in texts)):
        for i, text in texts:
            row[i] = neutralise(text)
    else:
        for i, text in texts:
            if text[0] in DANGEROUS or len(text) > EXCEL_MAX_CHARS:
                text = neutralise(text)
            row[i] = text
    ts = local_timestamp(doc, tz)
    row[TIMESTAMP_INDEX] = ts.replace(tzinfo=None) if ts else None  # Excel has no zones
    row[OFFSET_INDEX] = utc_offset(ts) or None
    return row


def doc_rows(docs: Iterable[dict], tz: ZoneInfo) -> Iterator[list[Any]]:
    for doc in docs:
        yield export_row(doc, tz)


def _wrapping_style(ws: Worksheet) -> Any:
    """The style array of a wrapped, top-aligned cell, registered once per sheet."""
    cell = WriteOnlyCell(ws)
    cell.alignment = Alignment(wrap_text=True, vertical="top")
    return cell._style


def about_cell(value: AboutValue) -> AboutValue:
    """A Filters-sheet value as Excel should hold it: numbers and times typed, text safe."""
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)  # Excel has no zones; the sheet names it
    return value


def write_workbook(
    out: IO[bytes] | io.RawIOBase | str,
    rows: Iterable[list[Any]],
    about: Sequence[tuple[str, AboutValue]],
    *,
    max_rows: int = EXCEL_MAX_ROWS,
    labels: Sequence[str] | None = None,
) -> int:
    """Write ``rows`` (from :func:`export_row`) as the export workbook; returns how many.

    ``labels`` is the header (:func:`export_labels` names the time zone).
    """
    labels = list(labels) if labels is not None else [c.label for c in EXPORT_COLUMNS]
    wb = Workbook(write_only=True)
    sheets: list[tuple[Worksheet, int]] = []
    number, ws, in_sheet, total = 1, _new_sheet(wb, 1, labels), 0, 0
    last = get_column_letter(WIDTH)
    append = ws.append
    wrapped = sorted(WRAPPED)
    style = _wrapping_style(ws)
    for row in rows:
        if in_sheet >= max_rows - 1:
            sheets.append((ws, in_sheet))
            number += 1
            ws, in_sheet = _new_sheet(wb, number, labels), 0
            append = ws.append
            style = _wrapping_style(ws)
        for i in wrapped:
            text = row[i]
            if text is not None and len(text) > WRAP_FROM:
                cell = WriteOnlyCell(ws, value=text)
                cell._style = copy(style)
                row[i] = cell
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
    for label, value in [*about, ("Rows exported", total)]:
        key = WriteOnlyCell(info, value=neutralise(label))
        key.font = bold
        cell = WriteOnlyCell(info, value=about_cell(value))
        if isinstance(value, datetime):
            cell.number_format = "yyyy-mm-dd hh:mm:ss"
        info.append([key, cell])
    wb.save(out)
    return total
