"""Exports: every matching action as XLSX, CSV or NDJSON, streamed, safe to open.

``GET <account>/actions.xlsx?<the page's filters>`` answers the workbook of
:mod:`.workbook`, ``actions.csv`` the CSV of :mod:`.csvfile` (``bom=1``
for Excel) and ``actions.ndjson`` the ECS documents of :mod:`.ndjson`,
each with every row that matches (``Store.iterate``, newest first — not
just the page on screen). All three read the filters with the page's own
:class:`~.filters.Filters` and count with the page's query, so a file
holds exactly the rows the page counts (``X-Rows``). Every export is
audited as ``audit_log.downloaded`` with its format and filters.

CSV and NDJSON are written in the request's thread from the same
prefetching reader as the workbook, in chunks of about 256 KiB.

Memory stays flat however many rows: the store is read one batch ahead in
a thread (:func:`prefetch`) and the finished zip is handed to the client
chunk by chunk while it is written — by a worker thread for small exports,
by a child process (:mod:`.workbook_process`) from
``USERAUDIT_EXPORT_PROCESS_ROWS`` rows on, so openpyxl's CPU time runs on
another core and the web worker stays responsive.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, render_template, request
from flask_login import current_user

import useraudit
from useraudit.store import Query, QueryError, StoreError
from useraudit.store.completeness import complete_up_to

from . import resources, workbook_process
from .actions import admin_required
from .csvfile import CSV_MIME, csv_chunks
from .export_columns import EXPORT_FIELDS, export_labels, utc_offset
from .export_slots import ExportSlots, holding
from .filters import PERIODS, Filters, zone
from .i18n import problem
from .ndjson import NDJSON_MIME, NdjsonWriter
from .prefs import default_tz
from .workbook import EXCEL_MAX_ROWS, AboutValue, doc_rows, write_workbook

bp = Blueprint("export", __name__)

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# From this many rows the workbook is written by a child process: starting
# it costs ~0.25 s, openpyxl ~75 µs per row (bench.export). 0 or None: never.
PROCESS_ROWS = 20_000


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
    about: list[tuple[str, AboutValue]],
    *,
    max_rows: int = EXCEL_MAX_ROWS,
    labels: list[str] | None = None,
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
            write_workbook(
                _QueueWriter(q, stop), until_stopped(), about, max_rows=max_rows, labels=labels
            )
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


def describe(
    account: str, filters: Filters, tz: ZoneInfo, now: datetime
) -> list[tuple[str, AboutValue]]:
    """The Filters sheet: what was exported, by whom, when (times in ``tz``)."""
    start, end = filters.bounds(now)
    about: list[tuple[str, AboutValue]] = [
        ("Account", account),
        ("Exported at", now.astimezone(tz)),
        ("Exported by", getattr(current_user, "username", "") or ""),
        ("Time zone", filters.tz),
        # Each row's own offset is in the "UTC offset" column (it changes with DST).
        ("UTC offset at export", utc_offset(now.astimezone(tz))),
        ("Period", PERIODS[filters.period][0]),
        ("From", start.astimezone(tz) if start else "(any)"),
        ("To", (end or now).astimezone(tz)),
    ]
    try:
        mark = complete_up_to(resources.store(), account)
    except StoreError:
        mark = None
    # Events after this time may not be in the file yet (docs/integrity.md, completeness).
    about.append(("Complete up to", mark.astimezone(tz) if mark else "(unknown)"))
    return about + list(filters.describe())


def _as_text(value: AboutValue) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z")
    return str(value)


class _Export:
    """What every format shares: the parsed filters, the query, the count, the record."""

    def __init__(self, account: str, fmt: str) -> None:
        # A slot first (1 per user, 2 per process): many exports at once
        # must not starve the pages. Given back when the stream ends.
        release = _export_slots().acquire(current_user.get_id())
        if release is None:
            raise _ExportBusy("an export is already running")
        self.release = release
        try:
            self._prepare(account, fmt)
        except BaseException:
            release()
            raise

    def _prepare(self, account: str, fmt: str) -> None:
        self.account = account
        # The page's default zone is the admin's saved one; the file must match the page.
        self.filters = Filters.parse(request.args, default_tz())
        self.now = datetime.now(UTC)
        query = self.filters.query(account, self.now)
        # An open period ends now, as the Filters sheet says: events that
        # arrive during the download are not in the file or its count.
        self.query: Query = query if query.end else replace(query, end=self.now)
        self.store = resources.store()
        # Fails here, before any byte is sent, if the store is down.
        self.total = self.store.count(self.query)
        self.tz = zone(self.filters.tz)
        self.about = describe(account, self.filters, self.tz, self.now)
        described: dict[str, list[str]] = {}
        for label, value in self.about:
            if label != "Exported by":
                described.setdefault(label, []).append(_as_text(value))
        useraudit.record(
            "audit_log.downloaded",
            account=account,
            user=current_user.person(),
            params={
                "format": fmt,
                "rows": self.total,
                "query": self.filters.qs(),
                "filters": {k: ", ".join(v) for k, v in described.items()},
            },
        )
        self.filename = f"user-actions-{account}-{self.now.astimezone(self.tz):%Y%m%d-%H%M}.{fmt}"

    def docs(self, fields: tuple[str, ...] | None) -> Iterator[dict]:
        # Whole documents (NDJSON) are several times larger than the columns: smaller
        # batches keep the memory bound of the column exports.
        batch = 3000 if fields else 1000
        return prefetch(self.store.iterate(self.query, batch_size=batch, fields=fields))

    def response(self, body: Iterable[bytes], mimetype: str) -> Response:
        response = Response(
            holding(body, self.release),
            mimetype=mimetype,
            headers={
                "Content-Disposition": f'attachment; filename="{self.filename}"',
                "X-Rows": str(self.total),
            },
        )
        response.call_on_close(self.release)  # also when the client goes away mid-download
        return response


class _ExportBusy(QueryError):
    """The user's previous export, or too many others, are still streaming."""


def _export_slots() -> ExportSlots:
    ext = current_app.extensions["useraudit"]
    if ext.get("export_slots") is None:
        ext["export_slots"] = ExportSlots(
            int(current_app.config.get("USERAUDIT_EXPORTS_PER_PROCESS", 2)),
            int(current_app.config.get("USERAUDIT_EXPORTS_PER_USER", 1)),
        )
    return ext["export_slots"]


def _refused(exc: QueryError) -> Any:
    if isinstance(exc, _ExportBusy):
        return (
            render_template(
                "useraudit/error.html",
                status=429,
                title="Export already running",
                message="Your previous export, or too many others, are still being written. "
                "Try again when it has finished.",
            ),
            429,
            {"Retry-After": "30"},
        )
    return render_template(
        "useraudit/error.html", status=400, title="Cannot export", detail=problem(exc)
    ), 400


@bp.get("/a/<account>/actions.xlsx")
@admin_required
def export(account: str) -> Any:
    try:
        job = _Export(account, "xlsx")
    except QueryError as exc:
        return _refused(exc)
    max_rows = int(current_app.config.get("USERAUDIT_EXPORT_MAX_ROWS", EXCEL_MAX_ROWS))
    rows = doc_rows(job.docs(EXPORT_FIELDS), job.tz)
    labels = export_labels(job.tz)
    process_rows = current_app.config.get("USERAUDIT_EXPORT_PROCESS_ROWS", PROCESS_ROWS)
    if process_rows and job.total >= int(process_rows):
        body = workbook_process.stream(rows, job.about, max_rows=max_rows, labels=labels)
    else:
        body = stream_workbook(rows, job.about, max_rows=max_rows, labels=labels)
    return job.response(body, XLSX_MIME)


@bp.get("/a/<account>/actions.csv")
@admin_required
def export_csv(account: str) -> Any:
    try:
        job = _Export(account, "csv")
    except QueryError as exc:
        return _refused(exc)
    bom = request.args.get("bom", "") in ("1", "true", "yes")
    response = job.response(csv_chunks(job.docs(EXPORT_FIELDS), job.tz, bom=bom), CSV_MIME)
    response.mimetype_params["charset"] = "utf-8"
    response.mimetype_params["header"] = "present"
    return response


@bp.get("/a/<account>/actions.ndjson")
@admin_required
def export_ndjson(account: str) -> Any:
    try:
        job = _Export(account, "ndjson")
    except QueryError as exc:
        return _refused(exc)
    writer = NdjsonWriter()
    if request.args.get("proof", "") in ("1", "true", "yes"):
        # Checkpoints and inclusion paths after the lines (docs/integrity.md).
        from useraudit.integrity.export import Proofs

        from .ndjson_proof import ProofNdjsonWriter

        writer = ProofNdjsonWriter(Proofs(job.store, account))
    return job.response(writer.chunks(job.docs(None)), NDJSON_MIME)
