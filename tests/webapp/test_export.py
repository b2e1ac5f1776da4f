"""Exports: every matching row as XLSX, CSV or NDJSON; one fact per column, safe cells."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from useraudit.store import Query
from useraudit.webapp.columns import parse_ts
from useraudit.webapp.export_columns import EXPORT_COLUMNS, export_labels
from useraudit.webapp.workbook import neutralise

from .conftest import FORMULAS, make_app


def _workbook(response: Any) -> Any:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype.endswith("spreadsheetml.sheet")
    return load_workbook(io.BytesIO(response.data))


LABELS = [c.label for c in EXPORT_COLUMNS]


def _col(label: str) -> int:
    return LABELS.index(label)


@pytest.fixture
def alice(as_user: Any) -> Any:
    return as_user("alice")


def test_export_holds_every_matching_row_not_just_the_page(alice: Any, seeded_store: Any) -> None:
    """All rows matching the filters are exported, newest first, matching Store.iterate."""
    response = alice.get("/a/acme/actions.xlsx?period=30d&product=common&tz=Europe/Berlin")
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="user-actions-acme-'
    )
    ws = _workbook(response)["User actions"]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    start = datetime.now(UTC) - timedelta(days=30)
    expected = list(seeded_store.iterate(Query(account="acme", products=("common",), start=start)))
    assert len(rows) == len(expected) > 100  # more than a page
    tz = ZoneInfo("Europe/Berlin")
    for row, doc in zip(rows, expected, strict=True):
        assert row[1] == parse_ts(doc["@timestamp"]).astimezone(tz).replace(tzinfo=None)  # type: ignore[union-attr]
        assert row[0] == doc["message"]
    times = [r[1] for r in rows]
    assert times == sorted(times, reverse=True)


def test_layout_header_widths_freeze_and_autofilter(alice: Any) -> None:
    """Header labels and widths come from EXPORT_COLUMNS; the header is frozen and filterable."""
    from openpyxl.utils import get_column_letter

    wb = _workbook(alice.get("/a/acme/actions.xlsx?period=7d"))
    ws = wb["User actions"]
    assert [c.value for c in ws[1]] == export_labels(ZoneInfo("UTC"))
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:{get_column_letter(len(LABELS))}{ws.max_row}"
    for i, col in enumerate(EXPORT_COLUMNS, start=1):
        assert ws.column_dimensions[get_column_letter(i)].width == col.width
    assert isinstance(ws.cell(2, 2).value, datetime) and ws.cell(2, 2).is_date
    assert wb.sheetnames == ["User actions", "Filters"]


def test_filters_sheet_describes_the_export(alice: Any) -> None:
    """The second sheet says which account, filters, time zone, who and when."""
    wb = _workbook(
        alice.get("/a/acme/actions.xlsx?period=30d&result=failure&q=password&tz=Asia/Tokyo")
    )
    about = dict(wb["Filters"].iter_rows(values_only=True))
    assert about["Account"] == "acme" and about["Exported by"] == "alice"
    assert about["Time zone"] == "Asia/Tokyo" and about["Period"] == "Last 30 days"
    assert about["Result"] == "Failure" and about["Comments contain"] == "password"
    assert about["Rows exported"] == wb["User actions"].max_row - 1


def test_filters_sheet_is_typed(alice: Any) -> None:
    """Counts are numbers and times are Excel datetimes on the Filters sheet, not text."""
    wb = _workbook(
        alice.get(
            "/a/acme/actions.xlsx?period=custom&from=2026-01-02T03:04&to=2030-01-01T00:00"
            "&tz=Asia/Tokyo"
        )
    )
    sheet = wb["Filters"]
    cells = {row[0].value: row[1] for row in sheet.iter_rows()}
    assert cells["From"].value == datetime(2026, 1, 2, 3, 4) and cells["From"].is_date
    # "To" takes its whole minute (webapp/filters.py END_OF_MINUTE)
    assert cells["To"].value == datetime(2030, 1, 1, 0, 0, 59, 999000) and cells["To"].is_date
    assert isinstance(cells["Exported at"].value, datetime) and cells["Exported at"].is_date
    assert isinstance(cells["Rows exported"].value, int)
    assert cells["Rows exported"].data_type == "n"
    assert cells["Account"].value == "acme"


def test_people_and_client_have_a_column_each(alice: Any, seeded_store: Any) -> None:
    """Name, e-mail and id of each person, IP, browser, OS, device and reason are separate cells."""
    wb = _workbook(alice.get("/a/acme/actions.xlsx?period=30d&result=failure"))
    rows = list(wb["User actions"].iter_rows(min_row=2, values_only=True))
    start = datetime.now(UTC) - timedelta(days=30)
    docs = list(seeded_store.iterate(Query(account="acme", outcomes=("failure",), start=start)))
    assert len(rows) == len(docs) > 10
    for row, doc in zip(rows, docs, strict=True):
        assert row[_col("User")] == doc.get("user.full_name")
        assert row[_col("User e-mail")] == doc.get("user.email")
        assert row[_col("User ID")] == doc.get("user.id")
        assert row[_col("Modified user e-mail")] == doc.get("user.target.email")
        assert row[_col("Impersonator ID")] == doc.get("audit.impersonator.id")
        assert row[_col("IP")] == doc.get("source.ip")
        assert row[_col("Browser")] == doc.get("user_agent.name")
        assert row[_col("OS")] == doc.get("user_agent.os.name")
        assert row[_col("Device")] == doc.get("user_agent.device.name")
        assert row[_col("Reason")] == doc.get("event.reason")
        assert row[_col("Result")] == "Failure"
    assert any(r[_col("Reason")] == "wrong password" for r in rows)


def test_long_text_is_wrapped(alice: Any) -> None:
    """Long comments are wrapped in their cells; short ones keep the default style."""
    wb = _workbook(alice.get("/a/acme/actions.xlsx?period=30d&product=jaicp"))
    ws = wb["User actions"]
    col = _col("Comments") + 1
    cells = [ws.cell(r, col) for r in range(2, ws.max_row + 1)]
    long_ = [c for c in cells if c.value and len(c.value) > 50]
    short = [c for c in cells if c.value and len(c.value) <= 50]
    assert long_ and short
    assert all(c.alignment.wrap_text for c in long_)
    assert not any(c.alignment.wrap_text for c in short)


def test_export_is_audited_with_its_filters(alice: Any, audit_spool: Any) -> None:
    """Each export is recorded as audit_log.downloaded with the filters in params."""
    alice.get("/a/acme/actions.xlsx?period=24h&user=anna.ivanova&q=Reviewers").close()
    (event,) = [e for e in audit_spool() if e["event.action"] == "audit_log.downloaded"]
    assert event["organization.id"] == "acme" and event["user.name"] == "alice"
    params = event["audit.params"]
    assert params["format"] == "xlsx" and "user=anna.ivanova" in params["query"]
    assert (
        params["filters"]["User"] == "anna.ivanova"
        and params["filters"]["Comments contain"] == "Reviewers"
    )


def test_formula_payloads_are_inert(alice: Any) -> None:
    """Cells that would start a formula are prefixed with ' and stored as text."""
    wb = _workbook(alice.get("/a/acme/actions.xlsx?period=24h&project=formula-proj"))
    ws = wb["User actions"]
    (row,) = list(ws.iter_rows(min_row=2))
    values = [c.value for c in row]
    assert all(c.data_type != "f" for c in row)
    assert values[_col("Comments")] == "'" + FORMULAS["audit.comments"]
    assert values[_col("User")].startswith("'+1+2")
    assert values[_col("Token ID")] == "'" + FORMULAS["audit.token.id"]
    assert values[_col("Project")].startswith("'@SUM")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("=1+1", "'=1+1", id="equals"),
        pytest.param("+1", "'+1", id="plus"),
        pytest.param("-1", "'-1", id="minus"),
        pytest.param("@SUM(A1)", "'@SUM(A1)", id="at"),
        pytest.param("\tx", "'\tx", id="tab"),
        pytest.param("\rx", "'\rx", id="cr"),
        pytest.param("a=1", "a=1", id="equals-inside"),
        pytest.param("x\x01y", "x\ufffdy", id="control-char"),
        pytest.param("x" * 40_000, "x" * 32_766 + "…", id="too-long"),
    ],
)
def test_neutralise(value: str, expected: str) -> None:
    """Formula starters get a leading quote; illegal characters and overlong text are made safe."""
    assert neutralise(value) == expected


def test_rows_past_the_sheet_limit_continue_on_further_sheets(
    seeded_store: Any, users_db: Any, audit_spool: Any
) -> None:
    """Past the per-sheet row limit (1,048,576 in Excel; 100 here) rows continue on new sheets."""
    from .conftest import login

    client = make_app(seeded_store, users_db, USERAUDIT_EXPORT_MAX_ROWS=100).test_client()
    login(client, "alice")
    wb = _workbook(client.get("/a/acme/actions.xlsx?period=30d"))
    data = [n for n in wb.sheetnames if n.startswith("User actions")]
    assert (
        data[:3] == ["User actions", "User actions 2", "User actions 3"]
        and wb.sheetnames[-1] == "Filters"
    )
    total = 0
    for name in data:
        ws = wb[name]
        assert [c.value for c in ws[1]] == export_labels(ZoneInfo("UTC")) and ws.max_row <= 100
        total += ws.max_row - 1
    assert total == dict(wb["Filters"].iter_rows(values_only=True))["Rows exported"]


def test_bad_export_filters_get_a_message(alice: Any) -> None:
    """An export with malformed filters answers 400 with the reason, not a broken file."""
    response = alice.get("/a/acme/actions.xlsx?ip=nope")
    assert response.status_code == 400 and "not an IP address" in response.get_data(as_text=True)


def test_prefetch_keeps_order_and_releases_the_source_early() -> None:
    """The prefetching thread yields documents in order and closes the
    store iterator when abandoned."""
    import threading

    from useraudit.webapp.export import prefetch

    closed = threading.Event()

    def source(n: int) -> Any:
        try:
            for i in range(n):
                yield {"i": i}
        finally:
            closed.set()

    assert [d["i"] for d in prefetch(source(2345), batch=100)] == list(range(2345))
    closed.clear()
    it = prefetch(source(10**9), batch=100, depth=2)
    assert next(it) == {"i": 0}
    it.close()
    assert closed.wait(5)


def test_prefetch_reraises_store_errors() -> None:
    """A store failure in the middle of an export reaches the response side."""
    from useraudit.store import StoreUnavailable
    from useraudit.webapp.export import prefetch

    def source() -> Any:
        yield {"i": 0}
        raise StoreUnavailable("gone")

    with pytest.raises(StoreUnavailable):
        list(prefetch(source(), batch=1))


def _cells(wb: Any) -> dict[str, list[tuple]]:
    sheets = {name: list(wb[name].iter_rows(values_only=True)) for name in wb.sheetnames}
    # "Exported at" differs by the time between the two requests.
    sheets["Filters"] = [r for r in sheets["Filters"] if r[0] != "Exported at"]
    return sheets


def test_big_exports_written_by_a_child_process_are_the_same_file(
    seeded_store: Any, users_db: Any, audit_spool: Any
) -> None:
    """From USERAUDIT_EXPORT_PROCESS_ROWS rows on, a child process writes the same workbook."""
    from .conftest import login

    # A fixed period: with period=30d the window (and the Filters sheet's
    # "To") would move between the two requests.
    now = datetime.now(UTC)
    fmt = "%Y-%m-%dT%H:%M"
    url = (
        f"/a/acme/actions.xlsx?period=custom&from={now - timedelta(days=30):{fmt}}"
        f"&to={now + timedelta(minutes=2):{fmt}}&tz=UTC"
    )
    books = []
    for process_rows in (0, 1):
        client = make_app(
            seeded_store,
            users_db,
            USERAUDIT_EXPORT_PROCESS_ROWS=process_rows,
            USERAUDIT_EXPORT_MAX_ROWS=300,
        ).test_client()
        login(client, "alice")
        books.append(_cells(_workbook(client.get(url))))
    in_thread, in_child = books
    assert len(in_thread) > 2  # several data sheets, so the sheet split is compared too
    assert in_child == in_thread


def test_workbook_process_reports_its_failures_and_is_reaped() -> None:
    """A failing row source or a failing child ends the download with an error, no child left."""
    from useraudit.store import StoreUnavailable
    from useraudit.webapp import workbook_process

    def rows() -> Any:
        yield ["a"] * len(LABELS)
        raise StoreUnavailable("gone")

    body = workbook_process.stream(rows(), [], max_rows=100)
    with pytest.raises(StoreUnavailable):
        list(body)

    # A child that cannot run at all (this "python" exits 3 at once).
    body = workbook_process.stream(iter([]), [], max_rows=100, python="/bin/false")
    with pytest.raises(workbook_process.WorkbookProcessError, match="exited with 1"):
        list(body)


def test_abandoned_download_stops_the_child_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that goes away mid-download: the child is stopped by its PID and reaped."""
    import secrets
    import subprocess

    from useraudit.webapp import workbook_process

    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen:
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(workbook_process.subprocess, "Popen", popen)
    # The zip is written at the end: enough distinct text that it takes
    # several chunks, so the download is abandoned while the child writes.
    rows = ([secrets.token_hex(32) for _ in LABELS] for _ in range(20_000))
    body = workbook_process.stream(rows, [], max_rows=10**6)
    assert next(body)  # bytes are flowing
    body.close()
    (proc,) = started
    assert proc.returncode is not None and proc.returncode < 0  # killed, not finished
