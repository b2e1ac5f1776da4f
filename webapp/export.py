"""Export to XLSX: every matching action, streamed, safe to open.

``GET <account>/actions.xlsx?<the page's filters>`` answers a workbook with

* every row that matches (``Store.iterate``, newest first — not just the
  page on screen), the table's columns and labels (from
  :data:`useraudit.schema.COLUMNS`, widths included);
* real Excel datetimes in the admin's time zone; a frozen, auto-filtered
  header row;
* a "Filters" sheet saying what was exported, by whom, when;
* formula injection neutralised: a text cell starting with ``= + - @``,
  tab, CR, LF or NUL gets a leading ``'`` (OWASP / ASVS 5.0 1.2.10), so
  Excel shows it as text and never evaluates it;
* past Excel's 1,048,576 rows, further sheets ("User actions 2", ...).

Memory stays flat however many rows: openpyxl's write-only mode (with lxml)
streams rows to a temporary file, and the finished zip is handed to the
client chunk by chunk through a bounded queue while it is written, from a
worker thread. The export itself is audited as ``audit_log.downloaded``
with the filters in its params.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, render_template, request
from flask_login import current_user
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

import useraudit
from useraudit.schema import COLUMN_FIELDS, COLUMNS
from useraudit.store import QueryError

from . import app as _app
from .actions import admin_required
from .columns import CELLS, parse_ts
from .filters import PERIODS, Filters, zone

bp = Blueprint("export", __name__)

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_CHARS = 32_767
SHEET_TITLE = "User actions"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
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
    """One document as the export's cell values: safe text, a naive local datetime, None for empty."""
    row: list[Any] = [None] * _WIDTH
    for i, fn in _CELLS:
        text = fn(doc)
        if text:
            row[i] = neutralise(text)
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


class _QueueWriter(io.RawIOBase):
    """A write-only, unseekable file whose bytes go to a bounded queue."""

    def __init__(self, q: queue.Queue[Any], stop: threading.Event) -> None:
        self.q, self.stop = q, stop

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        while True:
            if self.stop.is_set():
                raise BrokenPipeError("the client went away")
            try:
                self.q.put(data, timeout=0.5)
                return len(data)
            except queue.Full:
                continue


_DONE = object()


def prefetch(docs: Iterable[dict], batch: int = 500, depth: int = 4) -> Iterator[dict]:
    """Iterate ``docs`` in a background thread, ``depth`` batches ahead.

    While openpyxl turns one batch into XML, the store is already fetching
    the next: the wait on OpenSearch overlaps with our CPU work. Memory
    stays bounded to ``depth × batch`` documents.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it = iter(docs)
        try:
            chunk: list[dict] = []
            for doc in it:
                chunk.append(doc)
                if len(chunk) >= batch:
                    if not put(chunk):
                        return
                    chunk = []
            if chunk and not put(chunk):
                return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the consumer side
            put(exc)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # releases the store's point-in-time early

    worker = threading.Thread(target=produce, name="useraudit-export-fetch", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield from item
    finally:
        stop.set()
        worker.join(timeout=5)


def stream_workbook(
    rows: Iterable[list[Any]],
    about: list[tuple[str, str]],
    *,
    max_rows: int = EXCEL_MAX_ROWS,
) -> Iterator[bytes]:
    """Yield the workbook's bytes while a worker thread writes it."""
    q: queue.Queue[Any] = queue.Queue(maxsize=8)
    stop = threading.Event()

    def until_stopped() -> Iterator[list[Any]]:
        # A client that goes away stops the fetching too, not only the zip.
        for row in rows:
            if stop.is_set():
                raise BrokenPipeError("the client went away")
            yield row

    def work() -> None:
        try:
            write_workbook(_QueueWriter(q, stop), until_stopped(), about, max_rows=max_rows)
        except BaseException as exc:  # noqa: BLE001 - handed to the response side
            item: Any = exc
        else:
            item = _DONE
        while not stop.is_set():
            try:
                q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    worker = threading.Thread(target=work, name="useraudit-export", daemon=True)
    worker.start()
    try:
        buf: list[bytes] = []
        size = 0
        while True:
            item = q.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            buf.append(item)
            size += len(item)
            if size >= 256 * 1024:
                yield b"".join(buf)
                buf, size = [], 0
        if buf:
            yield b"".join(buf)
    finally:
        stop.set()
        worker.join(timeout=5)


def describe(account: str, filters: Filters, tz: ZoneInfo, now: datetime) -> list[tuple[str, str]]:
    """The Filters sheet: what was exported, by whom, when."""
    start, end = filters.bounds(now)
    fmt = "%Y-%m-%d %H:%M:%S %Z"
    about = [
        ("Account", account),
        ("Exported at", now.astimezone(tz).strftime(fmt)),
        ("Exported by", getattr(current_user, "username", "") or ""),
        ("Time zone", filters.tz),
        ("Period", PERIODS[filters.period][0]),
        ("From", start.astimezone(tz).strftime(fmt) if start else "(any)"),
        ("To", (end or now).astimezone(tz).strftime(fmt)),
    ]
    return about + filters.describe()


@bp.get("/a/<account>/actions.xlsx")
@admin_required
def export(account: str) -> Any:
    try:
        filters = Filters.parse(request.args, current_app.config["USERAUDIT_DEFAULT_TZ"])
        now = datetime.now(UTC)
        query = filters.query(account, now)
        store = _app.store()
        total = store.count(query)  # fails here, before any byte is sent, if the store is down
    except QueryError as exc:
        return render_template(
            "useraudit/error.html", status=400, title="Cannot export", message=str(exc)
        ), 400
    tz = zone(filters.tz)
    about = describe(account, filters, tz, now)
    described: dict[str, list[str]] = {}
    for label, value in about:
        if label != "Exported by":
            described.setdefault(label, []).append(value)
    useraudit.record(
        "audit_log.downloaded",
        account=account,
        user=current_user.person(),
        params={
            "format": "xlsx",
            "rows": total,
            "query": filters.qs(),
            "filters": {k: ", ".join(v) for k, v in described.items()},
        },
    )
    name = f"user-actions-{account}-{now.astimezone(tz):%Y%m%d-%H%M}.xlsx"
    max_rows = int(current_app.config.get("USERAUDIT_EXPORT_MAX_ROWS", EXCEL_MAX_ROWS))
    rows = doc_rows(prefetch(store.iterate(query, batch_size=2000, fields=COLUMN_FIELDS)), tz)
    body = stream_workbook(rows, about, max_rows=max_rows)
    return Response(
        body,
        mimetype=XLSX_MIME,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Rows": str(total),
        },
    )
