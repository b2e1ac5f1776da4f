"""CSV and NDJSON exports: the page's filters, the workbook's cells, streamed, audited."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from useraudit.schema import nest
from useraudit.store import Query
from useraudit.webapp.columns import parse_ts
from useraudit.webapp.csvfile import csv_chunks, neutralise_csv
from useraudit.webapp.export_columns import EXPORT_COLUMNS, export_labels
from useraudit.webapp.ndjson import NdjsonWriter

from .conftest import FORMULAS

LABELS = [c.label for c in EXPORT_COLUMNS]


@pytest.fixture
def alice(as_user: Any) -> Any:
    return as_user("alice")


def _csv(response: Any) -> list[list[str]]:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "text/csv"
    assert response.mimetype_params["charset"] == "utf-8"
    text = response.data.decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


def test_csv_holds_every_matching_row_with_the_workbooks_columns(
    alice: Any, seeded_store: Any
) -> None:
    """The CSV has a header and one record per match, newest first, times with their offset."""
    response = alice.get("/a/acme/actions.csv?period=30d&product=jaicp&tz=Europe/Berlin")
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="user-actions-acme-'
    ) and response.headers["Content-Disposition"].endswith('.csv"')
    header, *rows = _csv(response)
    assert header == export_labels(ZoneInfo("Europe/Berlin"))
    start = datetime.now(UTC) - timedelta(days=30)
    docs = list(seeded_store.iterate(Query(account="acme", products=("jaicp",), start=start)))
    assert len(rows) == len(docs) == int(response.headers["X-Rows"]) > 50
    tz = ZoneInfo("Europe/Berlin")
    col = header.index
    for row, doc in zip(rows, docs, strict=True):
        when = datetime.fromisoformat(row[col("Date and time (Europe/Berlin)")])
        assert when == parse_ts(doc["@timestamp"])
        assert when.utcoffset() == when.astimezone(tz).utcoffset()
        assert row[col("UTC offset")] == "UTC" + when.isoformat()[-6:]
        assert row[col("Action")] == doc["message"]
        assert row[col("User e-mail")] == doc["user.email"]
        assert row[col("Project ID")] == doc["audit.project.id"]
        assert row[col("Comments")] == neutralise_csv(doc["audit.comments"])


def test_csv_is_rfc_4180(alice: Any) -> None:
    """CRLF after every record, fields with commas or quotes quoted, quotes doubled."""
    data = alice.get("/a/acme/actions.csv?period=24h&project=formula-proj").data
    assert data.endswith(b"\r\n") and b"\n" not in data.replace(b"\r\n", b"")
    assert not data.startswith(b"\xef\xbb\xbf")  # no BOM unless asked
    comment = "'" + FORMULAS["audit.comments"]
    assert ('"' + comment.replace('"', '""') + '"').encode() in data


def test_csv_bom_for_excel(alice: Any) -> None:
    """bom=1 starts the file with the UTF-8 byte-order mark Excel needs to read UTF-8."""
    data = alice.get("/a/acme/actions.csv?period=24h&bom=1").data
    assert data.startswith(b"\xef\xbb\xbf" + LABELS[0].encode())


def test_csv_formula_payloads_are_inert(alice: Any) -> None:
    """Cells that would start a formula get a leading quote, exactly as in the workbook."""
    header, row = _csv(alice.get("/a/acme/actions.csv?period=24h&project=formula-proj"))
    cell = dict(zip(header, row, strict=True))
    assert cell["Comments"] == "'" + FORMULAS["audit.comments"]
    assert cell["User"] == "'" + FORMULAS["user.full_name"]
    assert cell["Token ID"] == "'" + FORMULAS["audit.token.id"]
    assert cell["Project"] == "'" + FORMULAS["audit.project.name"]
    assert all(not v or v[0] not in "=+-@\t\r\n\x00" for v in row)


def test_ndjson_is_one_ecs_document_per_line(alice: Any, seeded_store: Any) -> None:
    """Each line is the stored event as a nested ECS document, in the page's order."""
    response = alice.get("/a/acme/actions.ndjson?period=30d&result=failure")
    assert response.status_code == 200 and response.mimetype == "application/x-ndjson"
    lines = response.data.split(b"\n")
    assert lines[-1] == b""
    docs = [json.loads(line) for line in lines[:-1]]
    start = datetime.now(UTC) - timedelta(days=30)
    stored = list(seeded_store.iterate(Query(account="acme", outcomes=("failure",), start=start)))
    assert len(docs) == len(stored) == int(response.headers["X-Rows"]) > 10
    for doc, flat in zip(docs, stored, strict=True):
        assert doc == json.loads(json.dumps(nest(flat)))
        assert doc["event"]["outcome"] == "failure" and doc["organization"]["id"] == "acme"
        assert isinstance(doc["user"], dict) and "user.name" not in doc


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_exports_are_audited_with_their_format(alice: Any, audit_spool: Any, fmt: str) -> None:
    """Each CSV or NDJSON export is recorded as audit_log.downloaded, with format and filters."""
    alice.get(f"/a/acme/actions.{fmt}?period=24h&user=anna.ivanova&q=Reviewers").close()
    (event,) = [e for e in audit_spool() if e["event.action"] == "audit_log.downloaded"]
    params = event["audit.params"]
    assert params["format"] == fmt and "user=anna.ivanova" in params["query"]
    assert params["filters"]["User"] == "anna.ivanova"
    assert isinstance(params["rows"], int)


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_bad_filters_get_a_message_not_a_file(alice: Any, audit_spool: Any, fmt: str) -> None:
    """Malformed filters answer 400 with the reason; nothing is exported or recorded."""
    response = alice.get(
        f"/a/acme/actions.{fmt}?period=custom&from=2026-02-01T00:00&to=2026-01-01T00:00"
    )
    assert response.status_code == 400
    assert "ends before it starts" in response.get_data(as_text=True)
    assert not [e for e in audit_spool() if e["event.action"] == "audit_log.downloaded"]


def _counting(n: int, pulled: list[int]) -> Any:
    for i in range(n):
        pulled[0] = i + 1
        yield {
            "@timestamp": "2026-01-01T00:00:00.000Z",
            "event.action": "user.signed_in",
            "audit.comments": f"comment number {i} " + "x" * 100,
            "user.name": f"user{i}",
        }


@pytest.mark.parametrize("kind", ["csv", "ndjson"])
def test_writers_stream_in_bounded_chunks(kind: str) -> None:
    """The writers pull documents only as they hand out ~256 KiB chunks: memory stays flat."""
    pulled = [0]
    docs = _counting(20_000, pulled)
    if kind == "csv":
        chunks = csv_chunks(docs, ZoneInfo("UTC"))
    else:
        chunks = NdjsonWriter().chunks(docs)
    first = next(chunks)
    assert 200_000 <= len(first) <= 400_000
    assert pulled[0] < 3_000  # not the whole source read ahead
    sizes = [len(first), *(len(c) for c in chunks)]
    assert pulled[0] == 20_000 and len(sizes) > 10 and max(sizes) <= 400_000


def test_ndjson_writer_is_extensible() -> None:
    """A subclass may change each document and add a trailer (for verifiable exports)."""

    class Tagged(NdjsonWriter):
        def document(self, doc: dict) -> dict:
            return {**super().document(doc), "proof": len(doc)}

        def trailer(self) -> bytes:
            return b'{"end":true}\n'

    out = b"".join(Tagged().chunks([{"user.name": "a"}]))
    assert out == b'{"user":{"name":"a"},"proof":1}\n{"end":true}\n'


def test_invalid_filters_disable_export_instead_of_exporting_the_default(alice: Any) -> None:
    """A reversed custom period: the page says why, and no export button links to a file
    (it used to export the unfiltered last 7 days)."""
    import re

    page = alice.get(
        "/a/acme/actions?period=custom&from=2026-02-01T00:00&to=2026-01-01T00:00&result=failure"
    )
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    buttons = re.findall(r'<a [^>]*data-testid="export[^"]*"[^>]*>', html)
    assert len(buttons) == 3
    assert all('aria-disabled="true"' in b and "href=" not in b for b in buttons)


def test_export_links_carry_the_pages_filters(alice: Any) -> None:
    """Each export button links to its format with exactly the page's filters."""
    import re
    from html import unescape

    html = alice.get("/a/acme/actions?period=30d&user=a,b&user=c&result=failure").get_data(
        as_text=True
    )
    links = {
        m.group(1): unescape(m.group(2))
        for m in re.finditer(r'data-testid="(export[^"]*)" href="([^"]+)"', html)
    }
    assert links["export"].startswith("/a/acme/actions.xlsx?")
    assert links["export-csv"].startswith("/a/acme/actions.csv?")
    assert links["export-ndjson"].startswith("/a/acme/actions.ndjson?")
    for link in links.values():
        assert "result=failure" in link and "period=30d" in link


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_exports_hold_only_the_routes_account(as_user: Any, fmt: str) -> None:
    """bob administers acme and globex: acme's export never holds globex's events."""
    bob = as_user("bob")
    acme = bob.get(f"/a/acme/actions.{fmt}?period=30d&q=renamed").data
    globex = bob.get(f"/a/globex/actions.{fmt}?period=30d&q=renamed").data
    assert b"globexsecret" in globex and b"globexsecret" not in acme
    assert acme.count(b"\n") > 5


def test_people_are_found_by_the_full_name_the_table_shows(alice: Any) -> None:
    """The User filter takes the full name shown in the table, any case, and the export agrees."""
    header, *rows = _csv(alice.get("/a/acme/actions.csv?period=30d&user=ANNA+IVANOVA"))
    assert rows and {r[header.index("User")] for r in rows} == {"Anna Ivanova"}
    page = alice.get("/a/acme/actions?period=30d&user=anna+ivanova").get_data(as_text=True)
    assert f"<strong>{len(rows):,}</strong>" in page
