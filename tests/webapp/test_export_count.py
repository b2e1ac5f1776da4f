"""Export always holds exactly what the page counts: a property over random filters, both stores.

For random filter sets (products, groups and actions, results, people by
name, e-mail or full name, browsers, IP ranges, periods preset and custom,
search text with OR and -), on the real OpenSearch node and on SQLite:

* a valid set: the page's total = the CSV's records = the NDJSON's lines
  = the export's ``X-Rows`` (and the XLSX's rows, for a few);
* an invalid set (a reversed period, a bad address, a malformed search):
  the page answers 400, its export buttons are disabled, and the export
  URLs with the same parameters answer 400 too: never the unfiltered
  default period.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from useraudit.store import Query

from .conftest import N_EVENTS, login, make_app

NOW = datetime.now(UTC)
FMT = "%Y-%m-%dT%H:%M"


@pytest.fixture(scope="module")
def sqlite_seeded(tmp_path_factory: pytest.TempPathFactory, seeded_store: Any) -> Iterator[Any]:
    """A SQLite store holding the very documents of ``seeded_store`` (copied from it)."""
    from useraudit.store.sqlite import SQLiteStore

    path: Path = tmp_path_factory.mktemp("sqlite-ui") / f"{uuid.uuid4().hex[:8]}.db"
    store = SQLiteStore(f"sqlite:///{path}")
    store.install()
    docs = [d for account in ("acme", "globex") for d in seeded_store.iterate(Query(account))]
    assert len(docs) >= N_EVENTS
    results = store.write(docs)
    assert all(r.delivered for r in results)
    store.refresh()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=["opensearch", "sqlite"])
def admin(
    request: pytest.FixtureRequest,
    seeded_store: Any,
    sqlite_seeded: Any,
    users_db: Any,
    audit_spool: Any,
) -> Any:
    store = seeded_store if request.param == "opensearch" else sqlite_seeded
    client = make_app(store, users_db).test_client()
    assert login(client, "alice").status_code == 302
    return client


def _minutes_ago(minutes: int) -> str:
    return f"{NOW - timedelta(minutes=minutes):{FMT}}"


PARAMS = st.one_of(
    st.tuples(st.just("product"), st.sampled_from(["common", "jaicp", "nope"])),
    st.tuples(
        st.just("group"),
        st.sampled_from(["common:Custom role", "jaicp:API tokens", "common:Users", "x:y"]),
    ),
    st.tuples(
        st.just("action"),
        st.sampled_from(["user.signed_in", "token.created", "custom_role.renamed", "no.such"]),
    ),
    st.tuples(st.just("result"), st.sampled_from(["success", "failure", "unknown"])),
    st.tuples(
        st.just("user"),
        st.sampled_from(
            ["anna.ivanova", "Anna Ivanova", "BORIS.SMIRNOV@example.com", "u0003", "mallory", "a,b"]
        ),
    ),
    st.tuples(st.just("history"), st.sampled_from(["anna.ivanova", "Chen Li", "u0000"])),
    st.tuples(st.just("browser"), st.sampled_from(["chrome", "Firefox", "MOBILE SAFARI"])),
    st.tuples(st.just("os"), st.sampled_from(["windows", "Mac OS X", "ios"])),
    st.tuples(st.just("device"), st.sampled_from(["iphone", "Other"])),
    st.tuples(st.just("ip"), st.sampled_from(["203.0.113.0/24", "10.1.2.0/24", "nope"])),
    st.tuples(st.just("project"), st.sampled_from(["bank-bot", "hr-faq"])),
    st.tuples(
        st.just("q"),
        st.sampled_from(
            ["Reviewers", "reviewer", "Editors OR Operators", "webhook -staging", '"by Anna"', "(("]
        ),
    ),
)
PERIODS = st.one_of(
    st.sampled_from([[], [("period", "24h")], [("period", "30d")]]),
    st.tuples(st.integers(60, 40 * 24 * 60), st.integers(0, 40 * 24 * 60)).map(
        lambda ab: [
            ("period", "custom"),
            ("from", _minutes_ago(ab[0])),
            ("to", _minutes_ago(ab[1])),  # sometimes before "from": reversed
        ]
    ),
)
FILTER_SETS = st.tuples(st.lists(PARAMS, max_size=4), PERIODS).map(
    lambda t: [*t[0], *t[1], ("tz", "Europe/Berlin")]
)


def page_total(html: str) -> int:
    if 'data-testid="empty"' in html:
        return 0
    match = re.search(r'data-testid="total"[^>]*>(.*?)</span>', html, re.S)
    assert match, "the page shows no total"
    numbers = re.findall(r"\d[\d,\s\u00a0\u202f]*", re.sub(r"<[^>]+>", "", match.group(1)))
    return int(re.sub(r"\D", "", numbers[-1]))


def export_links(html: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for tag in re.findall(r'<a [^>]*data-testid="export[^"]*"[^>]*>', html):
        testid = re.search(r'data-testid="([^"]+)"', tag).group(1)  # type: ignore[union-attr]
        href = re.search(r'href="([^"]+)"', tag)
        out[testid] = unescape(href.group(1)) if href else None
    return out


def check_filter_set(admin: Any, pairs: list[tuple[str, str]], xlsx: bool = False) -> str:
    qs = urlencode(pairs)
    page = admin.get(f"/a/acme/actions?{qs}")
    html = page.get_data(as_text=True)
    links = export_links(html)
    assert set(links) == {"export", "export-csv", "export-ndjson"}, qs
    if page.status_code == 400:
        assert all(href is None for href in links.values()), qs
        for ext in ("xlsx", "csv", "ndjson"):
            assert admin.get(f"/a/acme/actions.{ext}?{qs}").status_code == 400, (ext, qs)
        return "invalid"
    assert page.status_code == 200, qs
    total = page_total(html)
    csv_response = admin.get(links["export-csv"])
    records = list(csv.reader(io.StringIO(csv_response.data.decode("utf-8-sig"), newline="")))
    assert len(records) - 1 == total == int(csv_response.headers["X-Rows"]), qs
    ndjson = admin.get(links["export-ndjson"]).data
    assert ndjson.count(b"\n") == total, qs
    if xlsx:
        wb = load_workbook(io.BytesIO(admin.get(links["export"]).data), read_only=True)
        assert sum(1 for _ in wb["User actions"].iter_rows(min_row=2)) == total, qs
    return "empty" if total == 0 else "rows"


def test_exports_hold_exactly_what_the_page_counts(admin: Any) -> None:
    """Random filter sets: page total = CSV records = NDJSON lines; invalid sets export nothing."""
    seen: dict[str, int] = {}

    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(FILTER_SETS)
    def check(pairs: list[tuple[str, str]]) -> None:
        kind = check_filter_set(admin, pairs)
        seen[kind] = seen.get(kind, 0) + 1

    check()
    # The examples reached every kind of answer.
    assert seen.get("rows", 0) >= 3 and seen.get("invalid", 0) >= 1, seen


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param([("period", "30d"), ("product", "jaicp")], id="product"),
        pytest.param(
            [("period", "30d"), ("group", "common:Custom role"), ("action", "token.created")],
            id="group-or-action",
        ),
        pytest.param([("period", "30d"), ("user", "Anna Ivanova"), ("q", "Reviewers")], id="user"),
    ],
)
def test_xlsx_holds_what_the_page_counts(admin: Any, pairs: list[tuple[str, str]]) -> None:
    """The workbook too: its data rows are the page's total."""
    assert check_filter_set(admin, pairs, xlsx=True) == "rows"


def test_reversed_period_never_exports_the_default_week(admin: Any) -> None:
    """The reported bug: a reversed custom period reset the form and Export then
    exported the unfiltered last 7 days; now nothing is exported."""
    pairs = [
        ("period", "custom"),
        ("from", _minutes_ago(60)),
        ("to", _minutes_ago(3 * 24 * 60)),
        ("result", "failure"),
    ]
    assert check_filter_set(admin, pairs) == "invalid"
