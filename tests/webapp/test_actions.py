"""The User actions page: columns, filters, facets, full text, paging, states."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import SEED_PAGE

from useraudit.catalog import CATALOG

from .conftest import make_app

LABEL_PRODUCT = {a.label: a.product for a in CATALOG.actions()}
ROW = re.compile(r'<tr data-event="([^"]+)">(.*?)</tr>', re.S)
CELL = re.compile(r'<td class="col-([a-z_]+)"[^>]*>(.*?)</td>', re.S)
TAG = re.compile(r"<[^>]+>")


def rows(html: str) -> list[dict[str, str]]:
    """The results table as dicts of column key → visible text."""
    out = []
    for event_id, body in ROW.findall(html):
        cells = {key: unescape(TAG.sub("", value)).strip() for key, value in CELL.findall(body)}
        cells["_id"] = event_id
        out.append(cells)
    return out


@pytest.fixture
def alice(as_user: Any) -> Any:
    return as_user("alice")


def _seed_columns() -> list[str]:
    text = SEED_PAGE.read_text()
    block = text.split("Action information", 1)[1].split("List of logged actions", 1)[0]
    return [
        line[2:].split(":", 1)[0].strip() for line in block.splitlines() if line.startswith("- ")
    ]


def test_columns_are_the_seed_columns_word_for_word(alice: Any) -> None:
    """The table header is exactly the product page's Action information list, in order."""
    expected = _seed_columns()
    html = alice.get("/a/acme/actions?period=30d").get_data(as_text=True)
    header = re.search(r"<thead>(.*?)</thead>", html, re.S).group(1)  # type: ignore[union-attr]
    assert [
        unescape(TAG.sub("", h)).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", header)
    ] == expected
    assert expected == [
        "Action",
        "Date and time",
        "User",
        "Token ID",
        "Modified user",
        "Project",
        "Comments",
        "IP and device",
        "Result",
        "Impersonator",
    ]


def test_rows_are_newest_first_and_show_human_labels(alice: Any) -> None:
    """Rows come newest first, with catalog labels rather than action codes."""
    table = rows(alice.get("/a/acme/actions?period=30d&size=100").get_data(as_text=True))
    assert len(table) == 100
    times = [r["timestamp"] for r in table]
    assert times == sorted(times, reverse=True)
    labels = {a.label for a in CATALOG.actions()}
    assert all(r["action"] in labels for r in table)
    assert all(r["result"] in ("Success", "Failure", "Unknown") for r in table)


@pytest.mark.parametrize(
    ("query", "check"),
    [
        pytest.param(
            "product=jaicp", lambda r: LABEL_PRODUCT[r["action"]] == "jaicp", id="product"
        ),
        pytest.param(
            "group=common:Custom+role", lambda r: r["action"].startswith("Custom role"), id="group"
        ),
        pytest.param(
            "action=user.signed_in&action=user.signed_out",
            lambda r: r["action"] in ("User signed in", "User signed out"),
            id="two-actions",
        ),
        pytest.param("result=failure", lambda r: r["result"] == "Failure", id="result"),
        pytest.param(
            "ip=203.0.113.0/24", lambda r: r["ip_device"].startswith("203.0.113."), id="cidr"
        ),
        pytest.param("browser=Firefox", lambda r: "Firefox" in r["ip_device"], id="browser"),
        pytest.param("project=bank-bot", lambda r: "bank-bot" in r["project"], id="project"),
    ],
)
def test_filters_narrow_the_rows(alice: Any, query: str, check: Any) -> None:
    """Each filter in the URL narrows the table to rows that satisfy it."""
    table = rows(alice.get(f"/a/acme/actions?period=30d&size=100&{query}").get_data(as_text=True))
    assert table, f"{query} matched nothing"
    assert all(check(r) for r in table), [r for r in table if not check(r)][:3]


def test_user_history_covers_actor_target_and_impersonator(alice: Any) -> None:
    """history= shows actions the user did, had done to them, or did on someone's behalf."""
    who = "anna.ivanova@example.com"
    table = rows(
        alice.get(f"/a/acme/actions?period=30d&size=100&history={who}").get_data(as_text=True)
    )
    assert table
    roles = {
        ("user" if "Anna Ivanova" in r["user"] else "")
        + ("target" if "Anna Ivanova" in r["target"] else "")
        + ("impersonator" if "Anna Ivanova" in r["impersonator"] else "")
        for r in table
    }
    assert "" not in roles and len(roles) >= 2


def test_period_presets_and_custom_range_in_the_chosen_time_zone(
    alice: Any, seeded_store: Any
) -> None:
    """Presets bound the rows by age; a custom range is read in the page's time zone."""
    now = datetime.now(UTC)
    for period, delta in (("24h", timedelta(hours=24)), ("7d", timedelta(days=7))):
        table = rows(alice.get(f"/a/acme/actions?period={period}&size=100").get_data(as_text=True))
        assert table
        oldest = min(datetime.fromisoformat(r["timestamp"]).replace(tzinfo=UTC) for r in table)
        assert oldest >= now - delta - timedelta(minutes=1)
    tz = ZoneInfo("Asia/Tokyo")
    start = (now - timedelta(days=3)).astimezone(tz).replace(second=0, microsecond=0)
    end = start + timedelta(hours=12)
    url = (
        f"/a/acme/actions?period=custom&tz=Asia/Tokyo&size=100"
        f"&from={start:%Y-%m-%dT%H:%M}&to={end:%Y-%m-%dT%H:%M}"
    )
    table = rows(alice.get(url).get_data(as_text=True))
    assert table
    for r in table:
        local = datetime.fromisoformat(r["timestamp"]).replace(tzinfo=tz)
        assert start <= local <= end + timedelta(minutes=1)


def test_times_are_shown_in_the_chosen_time_zone(alice: Any) -> None:
    """The same event shows UTC+9 wall-clock time when the page's zone is Asia/Tokyo."""
    utc = rows(alice.get("/a/acme/actions?period=30d&size=25").get_data(as_text=True))[0]
    tokyo = {
        r["_id"]: r
        for r in rows(
            alice.get("/a/acme/actions?period=30d&size=25&tz=Asia/Tokyo").get_data(as_text=True)
        )
    }[utc["_id"]]
    delta = datetime.fromisoformat(tokyo["timestamp"]) - datetime.fromisoformat(utc["timestamp"])
    assert delta == timedelta(hours=9)


def test_full_text_search_highlights_matches(alice: Any) -> None:
    """Searching comments returns only matching rows with the matches wrapped in <mark>."""
    html = alice.get("/a/acme/actions?period=30d&q=Reviewers&size=100").get_data(as_text=True)
    table = rows(html)
    assert table and all("reviewers" in r["comments"].lower() for r in table)
    assert html.count("<mark>Reviewers</mark>") >= len(table)


def test_comment_markup_is_rendered_as_text(alice: Any) -> None:
    """A comment holding <script> and <img onerror> is escaped, also inside highlights."""
    for url in (
        "/a/acme/actions?period=24h&project=xss-proj",
        "/a/acme/actions?period=24h&q=xsscanary",
    ):
        html = alice.get(url).get_data(as_text=True)
        assert "xsscanary" in html
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(" in html


def test_facets_count_and_link_to_filters(alice: Any) -> None:
    """Facets list values with counts; each links to the page filtered by that value."""
    html = alice.get("/a/acme/actions?period=30d").get_data(as_text=True)
    for facet in ("action", "user", "result", "project", "browser", "os"):
        assert f'data-facet="{facet}"' in html, facet
    link = re.search(
        r'<a href="([^"]+)" class="" data-testid="facet-result"[^>]*>\s*'
        r'<span class="facet-v">Failure</span><span class="count">([\d,]+)</span>',
        html,
    )
    assert link, "no Failure facet"
    href, count = unescape(link.group(1)), int(link.group(2).replace(",", ""))
    assert "result=failure" in href
    filtered = alice.get(href).get_data(as_text=True)
    total = int(
        re.search(r'data-testid="total"><strong>([\d,]+)</strong>', filtered)
        .group(1)  # type: ignore[union-attr]
        .replace(",", "")
    )
    assert total == count
    assert all(r["result"] == "Failure" for r in rows(filtered))


def test_cursor_pages_are_disjoint_and_previous_returns(alice: Any) -> None:
    """Next pages never repeat rows; Previous goes back to the same
    rows; all state is in the URL."""
    first_html = alice.get("/a/acme/actions?period=30d&size=25").get_data(as_text=True)
    first = [r["_id"] for r in rows(first_html)]
    seen = set(first)
    html = first_html
    for _ in range(3):
        nxt = unescape(re.search(r'rel="next" data-testid="next" href="([^"]+)"', html).group(1))  # type: ignore[union-attr]
        html = alice.get(nxt).get_data(as_text=True)
        ids = [r["_id"] for r in rows(html)]
        assert len(ids) == 25 and not seen & set(ids)
        seen |= set(ids)
    assert "76–100 of" in html  # the pager says which rows these are
    prev = unescape(re.search(r'rel="prev" data-testid="prev" href="([^"]+)"', html).group(1))  # type: ignore[union-attr]
    back = alice.get(prev).get_data(as_text=True)
    assert "51–75 of" in back and prev.count("c=") == 2


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("ip=not-an-ip", id="bad-ip"),
        pytest.param("ip=10.0.0.0/33", id="bad-cidr"),
        pytest.param("period=forever", id="bad-period"),
        pytest.param("tz=Mars/Olympus", id="bad-tz"),
        pytest.param("q=" + "x" * 600, id="text-too-long"),
        pytest.param("q=%22unclosed", id="unbalanced-quote"),
        pytest.param("q=(((((", id="parentheses"),
        pytest.param("size=100000", id="bad-size"),
        pytest.param("size=abc", id="size-not-a-number"),
        pytest.param("period=custom&from=yesterday", id="bad-date"),
        pytest.param(
            "period=custom&from=2026-02-01T00:00&to=2026-01-01T00:00", id="end-before-start"
        ),
        pytest.param("&".join(f"user=u{i}" for i in range(101)), id="too-many-values"),
        pytest.param("group=nocolon", id="bad-group"),
        pytest.param("c=%00%01", id="binary-cursor"),
    ],
)
def test_malformed_input_gets_a_friendly_message(alice: Any, query: str) -> None:
    """Malformed filters answer 400 with an explanation on the page, never a 500."""
    response = alice.get(f"/a/acme/actions?{query}")
    html = response.get_data(as_text=True)
    assert response.status_code in (200, 400), html[:300]
    if response.status_code == 400:
        assert 'data-testid="query-error"' in html and "Traceback" not in html


def test_odd_but_valid_text_is_searched_not_rejected(alice: Any) -> None:
    """Operators and special characters in search text never produce a 500."""
    for text in ["a AND", "*", "~~~", "\\", "OR OR", "'; DROP TABLE", "<b>", "Reviewers -Editors"]:
        response = alice.get("/a/acme/actions", query_string={"q": text, "period": "30d"})
        assert response.status_code in (200, 400), text


def test_empty_state(alice: Any) -> None:
    """No matches shows the designed empty state with a way to clear the filters."""
    html = alice.get("/a/acme/actions?q=zzzznomatchzzzz").get_data(as_text=True)
    assert (
        'data-testid="empty"' in html and "No actions match" in html and "clear the filters" in html
    )


def test_store_unavailable_shows_the_error_state(users_db: Any, audit_spool: Any) -> None:
    """When OpenSearch cannot be reached the page answers 503 with a retry, not a 500."""
    from useraudit.store.opensearch import OpenSearchStore

    from .conftest import login

    dead = OpenSearchStore("http://127.0.0.1:1", prefix="nowhere", timeout=2)
    client = make_app(dead, users_db).test_client()
    login(client, "alice")
    response = client.get("/a/acme/actions?q=Reviewers")
    assert response.status_code == 503
    html = response.get_data(as_text=True)
    assert 'data-testid="store-error"' in html and "Try again" in html
    assert client.get("/a/acme/actions.xlsx").status_code == 503


def test_filters_round_trip_through_the_url(alice: Any) -> None:
    """The form shows every filter from the URL, so reloading or sharing keeps the view."""
    url = (
        "/a/acme/actions?product=common&action=user.signed_in&user=anna.ivanova&user=boris.li&result=failure"
        "&ip=10.0.0.0/8&q=password&period=custom&from=2026-01-01T00:00&tz=Europe/Berlin&size=25"
    )
    html = alice.get(url).get_data(as_text=True)
    assert 'value="anna.ivanova"' in html and 'value="boris.li"' in html
    assert '<option value="common" selected>' in html
    assert 'value="user.signed_in" checked' in html
    assert 'value="failure" checked' in html
    assert 'value="password"' in html and 'value="2026-01-01T00:00"' in html
    assert 'name="tz" value="Europe/Berlin"' in html


def test_mountable_in_a_host_app(seeded_store: Any, users_db: Any, audit_spool: Any) -> None:
    """Mounted under /audit in a host app, the UI works and the host's own routes are untouched."""
    from flask import Flask

    from useraudit.webapp.app import mount

    from .conftest import CSRF_RE, PASSWORD

    host = Flask("host")
    host.config.update(SECRET_KEY="host-secret", SESSION_COOKIE_SECURE=False)

    @host.post("/api/ping")
    def ping() -> str:
        return "pong"

    mount(host, "/audit", {"USERAUDIT_STORE": seeded_store, "USERAUDIT_USERS": users_db})
    client = host.test_client()
    assert client.post("/api/ping").data == b"pong"  # no CSRF imposed on the host
    token = CSRF_RE.search(client.get("/audit/login").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    assert (
        client.post("/audit/login", data={"username": "alice", "password": PASSWORD}).status_code
        == 400
    )
    response = client.post(
        "/audit/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token}
    )
    assert response.headers["Location"] == "/audit/accounts"
    page = client.get("/audit/a/acme/actions?period=30d").get_data(as_text=True)
    assert rows(page) and "/audit/static/app.css" in page
    with client.get("/audit/static/app.css") as css:
        assert css.status_code == 200 and b".topbar" in css.data
    assert client.get("/audit/a/globex/actions").status_code == 403


@given(st.text())
def test_fast_escape_says_what_markupsafe_says(value: str) -> None:
    """The rows and facets are escaped by actions._e: same output as Jinja's autoescape."""
    from markupsafe import escape

    from useraudit.webapp.actions import _e

    assert _e(value) == str(escape(value))
    assert _e(42) == "42"
