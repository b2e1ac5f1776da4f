"""The CSV export: RFC 4180, UTF-8, formula-neutralised, streamed.

Same columns and cells as the workbook (:mod:`.export_columns`), written
by the standard :mod:`csv` module: fields quoted only when they hold a
comma, quote, CR or LF, quotes doubled, CRLF between records, a header
record first. Times are ISO 8601 with their UTC offset in the admin's zone
(a CSV cell has no type, so the offset travels with the text); the header
names the zone and the next column repeats the offset, as in the workbook.

Excel opens a UTF-8 CSV as its legacy code page unless the file starts
with a byte-order mark: ``bom=True`` writes one (``?bom=1`` on the URL).

A text cell that starts with ``= + - @``, tab, CR, LF or NUL gets a
leading ``'``, exactly as in the workbook (OWASP / ASVS 5.0 1.2.10), so a
spreadsheet never evaluates it. NUL, which some CSV readers stop at,
becomes U+FFFD.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from zoneinfo import ZoneInfo

from .export_columns import (
    OFFSET_INDEX,
    TEXT_CELLS,
    TIMESTAMP_INDEX,
    WIDTH,
    export_labels,
    local_timestamp,
    utc_offset,
)
from .workbook import DANGEROUS

CSV_MIME = "text/csv"
BOM = "\ufeff"
CHUNK_CHARS = 256 * 1024


def neutralise_csv(text: str) -> str:
    """Text a spreadsheet opening the CSV will show, never evaluate."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if text and text[0] in DANGEROUS:
        return "'" + text
    return text


def csv_row(doc: dict, tz: ZoneInfo) -> list[str]:
    """One stored (flat) document as the CSV's fields."""
    row = [""] * WIDTH
    for i, fn in TEXT_CELLS:
        text = fn(doc)
        if text and (text[0] in DANGEROUS or "\x00" in text):
            text = neutralise_csv(text)
        row[i] = text
    ts = local_timestamp(doc, tz)
    row[TIMESTAMP_INDEX] = ts.isoformat(timespec="milliseconds") if ts else ""
    row[OFFSET_INDEX] = utc_offset(ts)
    return row


def csv_chunks(docs: Iterable[dict], tz: ZoneInfo, *, bom: bool = False) -> Iterator[bytes]:
    """The CSV file of ``docs`` as UTF-8 chunks of about 256 KiB."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    if bom:
        buf.write(BOM)
    writer.writerow(export_labels(tz))
    writerow = writer.writerow
    for doc in docs:
        writerow(csv_row(doc, tz))
        if buf.tell() >= CHUNK_CHARS:
            yield buf.getvalue().encode("utf-8", "replace")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8", "replace")
