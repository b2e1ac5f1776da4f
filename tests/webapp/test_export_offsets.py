"""The exports say which zone their times are in, and each row's own UTC offset.

Events on both sides of Europe/Berlin's two daylight-saving changes of 2026
(29 March, 25 October; the October pair even reads 02:30 twice), written to
a real SQLite store; the files are opened with csv, openpyxl and json.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from flask.testing import FlaskClient

from .conftest import PASSWORD, login, make_app

ACCOUNT = "dstco"
# (UTC instant, Berlin wall clock, offset)
MOMENTS = [
    ("2026-10-25T01:30:00Z", "2026-10-25 02:30:00", "UTC+01:00"),  # second 02:30, winter
    ("2026-10-25T00:30:00Z", "2026-10-25 02:30:00", "UTC+02:00"),  # first 02:30, summer
    ("2026-03-29T01:30:00Z", "2026-03-29 03:30:00", "UTC+02:00"),  # after the spring change
    ("2026-03-29T00:30:00Z", "2026-03-29 01:30:00", "UTC+01:00"),  # before it
]
PERIOD = "period=custom&from=2026-03-28T00:00&to=2026-10-26T00:00"


@pytest.fixture
def client(tmp_path: Path, audit_spool: Any) -> Iterator[FlaskClient]:
    from useraudit.indexer.enrich import Enricher
    from useraudit.store.sqlite import SQLiteStore
    from useraudit.webapp.users import UserStore

    store = SQLiteStore(f"sqlite:///{tmp_path / 'dst.db'}")
    store.install()
    enrich = Enricher()
    docs = [
        enrich(
            {
                "@timestamp": ts,
                "event.id": f"{i:04d}{uuid.uuid4().hex[:20]}",
                "organization.id": ACCOUNT,
                "event.action": "user.signed_in",
                "event.outcome": "success",
                "user.id": "u1",
                "user.name": "zoe",
                "user.email": "zoe@example.com",
            }
        )
        for i, (ts, _wall, _offset) in enumerate(MOMENTS)
    ]
    assert all(r.delivered for r in store.write(docs))
    store.refresh()
    users = UserStore(tmp_path / "users.db")
    users.add("olga", PASSWORD, email="olga@example.com", full_name="Olga Admin")
    users.grant("olga", ACCOUNT, "USER_ADMIN")
    client = make_app(store, users).test_client()
    login(client, "olga")
    try:
        yield client
    finally:
        store.close()


def _get(client: FlaskClient, fmt: str, tz: str) -> Any:
    response = client.get(f"/a/{ACCOUNT}/actions.{fmt}?{PERIOD}&tz={tz}")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response


def test_csv_header_names_the_zone_and_each_row_has_its_own_offset(client: FlaskClient) -> None:
    text = _get(client, "csv", "Europe/Berlin").data.decode("utf-8")
    header, *rows = list(csv.reader(io.StringIO(text, newline="")))
    time_col = header.index("Date and time (Europe/Berlin)")
    offset_col = header.index("UTC offset")
    assert offset_col == time_col + 1
    assert len(rows) == len(MOMENTS)
    for row, (instant, wall, offset) in zip(rows, MOMENTS, strict=True):
        value = datetime.fromisoformat(row[time_col])
        assert value == datetime.fromisoformat(instant.replace("Z", "+00:00"))
        assert value.strftime("%Y-%m-%d %H:%M:%S") == wall
        assert row[time_col].endswith(offset.removeprefix("UTC"))  # ISO 8601, with offset
        assert row[offset_col] == offset


def test_xlsx_header_names_the_zone_rows_carry_their_offset_and_filters_say_the_zone(
    client: FlaskClient, tmp_path: Path
) -> None:
    path = tmp_path / "dst.xlsx"
    path.write_bytes(_get(client, "xlsx", "Europe/Berlin").data)
    wb = openpyxl.load_workbook(path)
    sheet = wb["User actions"]
    header, *rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    time_col = header.index("Date and time (Europe/Berlin)")
    assert header[time_col + 1] == "UTC offset"
    assert len(rows) == len(MOMENTS)
    for row, (_instant, wall, offset) in zip(rows, MOMENTS, strict=True):
        assert isinstance(row[time_col], datetime)  # a real Excel datetime, local wall clock
        assert row[time_col].strftime("%Y-%m-%d %H:%M:%S") == wall
        assert row[time_col + 1] == offset
    about = {k: v for k, v in wb["Filters"].iter_rows(values_only=True)}
    assert about["Time zone"] == "Europe/Berlin"
    now_offset = datetime.now(UTC).astimezone(ZoneInfo("Europe/Berlin")).utcoffset()
    assert about["UTC offset at export"] == (
        "UTC+01:00" if now_offset and now_offset.seconds == 3600 else "UTC+02:00"
    )


def test_utc_and_a_zone_west_of_it(client: FlaskClient) -> None:
    """UTC says UTC+00:00 on every row; New York's offsets are negative (an ASCII minus)."""
    header, *rows = list(csv.reader(io.StringIO(_get(client, "csv", "UTC").data.decode())))
    assert "Date and time (UTC)" in header
    assert {r[header.index("UTC offset")] for r in rows} == {"UTC+00:00"}
    text = _get(client, "csv", "America/New_York").data.decode()
    header, *rows = list(csv.reader(io.StringIO(text)))
    offsets = [r[header.index("UTC offset")] for r in rows]
    # New York moved its clocks on 8 March and 1 November: every row is in summer time.
    assert offsets == ["UTC-04:00"] * len(MOMENTS)


def test_ndjson_stays_ecs_in_utc(client: FlaskClient) -> None:
    lines = _get(client, "ndjson", "Europe/Berlin").data.decode().splitlines()
    stamps = [json.loads(line)["@timestamp"] for line in lines]
    assert [datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps] == [
        datetime.fromisoformat(i.replace("Z", "+00:00")) for i, _w, _o in MOMENTS
    ]
    assert all(s.endswith("Z") for s in stamps)


def test_the_page_shows_each_rows_offset_and_relative_time_in_its_tooltip(
    client: FlaskClient,
) -> None:
    """Across both DST changes each row's tooltip has its own offset and "… ago";
    the header names the zone and its offset now."""
    import re

    html = client.get(f"/a/{ACCOUNT}/actions?{PERIOD}&tz=Europe/Berlin").get_data(as_text=True)
    tips = re.findall(r'<time datetime="([^"]+)" title="([^"]+)"', html)
    assert [datetime.fromisoformat(t[0].replace("Z", "+00:00")) for t in tips] == [
        datetime.fromisoformat(m[0].replace("Z", "+00:00")) for m in MOMENTS
    ]
    for (_iso, title), (_instant, wall, offset) in zip(tips, MOMENTS, strict=True):
        assert re.fullmatch(re.escape(f"{wall} {offset} · ") + r"\d+ \w+ ago", title), title
    now = datetime.now(UTC).astimezone(ZoneInfo("Europe/Berlin")).utcoffset()
    label = "UTC+01:00" if now and now.seconds == 3600 else "UTC+02:00"
    assert f'data-testid="tz-offset">{label}<' in html
    assert f"times in Europe/Berlin ({label})" in html
