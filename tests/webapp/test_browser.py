"""The admin UI in a real browser (Debian chromium via Playwright) against a real server.

The app runs in werkzeug's threaded server on 127.0.0.1 and reads the real
OpenSearch node seeded from the whole catalog. Set
``USERAUDIT_SCREENSHOTS=docs/screenshots`` to refresh the documentation's
screenshots while the tests run.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from openpyxl import load_workbook

from useraudit.store import Query

from .conftest import FORMULAS, PASSWORD, make_app

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

if not Path(CHROMIUM).exists():  # pragma: no cover - environment problem, fail loudly
    pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)


class Server:
    def __init__(self, app: Any) -> None:
        from werkzeug.serving import make_server

        self.httpd = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.thread.join(5)


@pytest.fixture(scope="module")
def server(
    seeded_store: Any, users_db: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The admin UI on a real HTTP server bound to 127.0.0.1."""
    import useraudit

    useraudit.configure(spool_dir=tmp_path_factory.mktemp("browser-spool"), durability="sync")
    srv = Server(make_app(seeded_store, users_db, TESTING=False))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 1600, "height": 1000}, accept_downloads=True, timezone_id="UTC"
    )
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.dialogs = dialogs  # type: ignore[attr-defined]
    yield pg
    context.close()


SHOTS = os.environ.get("USERAUDIT_SCREENSHOTS")


def shot(page: Any, name: str, tmp_path: Path, full: bool = False) -> None:
    target = Path(SHOTS) if SHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / f"{name}.png"), full_page=full)


def sign_in(page: Any, server: Server, user: str, tmp_path: Path | None = None) -> None:
    page.goto(server.url + "/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    if tmp_path is not None:
        shot(page, "sign-in", tmp_path)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def ids(page: Any) -> list[str]:
    return page.eval_on_selector_all("tr[data-event]", "els => els.map(e => e.dataset.event)")


def column(page: Any, key: str) -> list[str]:
    return page.eval_on_selector_all(f"td.col-{key}", "els => els.map(e => e.innerText.trim())")


def args(page: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def test_sign_in_pick_account_and_see_results_with_facets(
    page: Any, server: Server, tmp_path: Path
) -> None:
    """An admin of two accounts signs in, picks one and sees the newest actions with facets."""
    sign_in(page, server, "bob", tmp_path)
    assert page.url.endswith("/accounts")
    assert (
        page.locator("[data-testid=account-list] a").all_inner_texts() == ["acme\n›", "globex\n›"]
        or page.locator("[data-testid=account-list] a").count() == 2
    )
    shot(page, "account-picker", tmp_path)
    page.click("text=acme")
    page.wait_for_selector("[data-testid=results]")
    assert "/a/acme/actions" in page.url
    headers = page.locator("table.grid th").all_inner_texts()
    assert headers == [
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
    for facet in ("action", "user", "result", "project", "browser", "os"):
        assert page.locator(f"[data-facet={facet}] li").count() > 0, facet
    page.goto(page.url + "?period=30d")
    shot(page, "results", tmp_path)


def test_filter_by_product_action_period_and_result(
    page: Any, server: Server, tmp_path: Path
) -> None:
    """Choosing product, an action group, a period and a result narrows the
    table once Apply is pressed (a select never submits on its own), all kept in the URL."""
    sign_in(page, server, "alice")
    page.wait_for_selector("[data-testid=filters]")
    before = page.url
    page.select_option("[data-testid=period]", "30d")
    page.select_option("[data-testid=product]", "common")
    page.wait_for_timeout(300)
    assert page.url == before  # no submit-on-change
    page.click("[data-testid=action-picker] summary")
    page.check("input[name=group][value='common:Users']")
    shot(page, "action-picker", tmp_path)
    page.click("[data-testid=more-filters]")
    page.check("[data-testid=result-failure]")
    with page.expect_navigation():
        page.click("[data-testid=apply]")
    q = args(page)
    assert (
        q["product"] == ["common"] and q["group"] == ["common:Users"] and q["result"] == ["failure"]
    )
    assert q["period"] == ["30d"]
    actions = column(page, "action")
    assert actions and all(a.startswith("User ") or a == "New user added" for a in actions)
    assert set(column(page, "result")) == {"Failure"}
    assert page.locator("[data-testid=chips] .chip").count() == 3


def test_full_text_search_highlights(page: Any, server: Server, tmp_path: Path) -> None:
    """Typing in the search box and pressing Enter shows only matches, highlighted."""
    sign_in(page, server, "alice")
    page.fill("[data-testid=search]", "Reviewers")
    with page.expect_navigation():
        page.press("[data-testid=search]", "Enter")
    marks = page.locator("td.col-comments mark")
    assert marks.count() >= len(ids(page)) > 0
    assert set(m.lower() for m in marks.all_inner_texts()) == {"reviewers"}
    shot(page, "search-highlight", tmp_path)


def test_facet_click_filters(page: Any, server: Server) -> None:
    """Clicking a facet value filters by it; clicking it again removes the filter."""
    sign_in(page, server, "alice")
    page.goto(server.url + "/a/acme/actions?period=30d")
    link = page.locator("[data-facet=browser] a").first
    browser_name = link.locator(".facet-v").inner_text()
    with page.expect_navigation():
        link.click()
    assert args(page)["browser"] == [browser_name]
    assert all(browser_name in v for v in column(page, "ip_device"))
    with page.expect_navigation():
        page.locator("[data-facet=browser] a.active").first.click()
    assert "browser" not in args(page)


def test_user_history_from_a_row(page: Any, server: Server) -> None:
    """Clicking a user in the table shows that user's history: every row names them."""
    sign_in(page, server, "alice")
    page.goto(server.url + "/a/acme/actions?period=30d")
    user = page.locator("[data-testid=history-link]").first
    name = user.locator(".who").inner_text()
    with page.expect_navigation():
        user.click()
    assert "history" in args(page)
    rows = page.eval_on_selector_all("tr[data-event]", "els => els.map(e => e.innerText)")
    assert rows and all(name in r for r in rows)


def test_pagination_next_and_previous(page: Any, server: Server) -> None:
    """Next and Previous walk disjoint pages via the cursor stack in the URL."""
    sign_in(page, server, "alice")
    page.goto(server.url + "/a/acme/actions?period=30d&size=25")
    first = ids(page)
    with page.expect_navigation():
        page.click("[data-testid=next]")
    second = ids(page)
    with page.expect_navigation():
        page.click("[data-testid=next]")
    third = ids(page)
    assert len(args(page)["c"]) == 2
    assert not set(first) & set(second) and not set(second) & set(third)
    with page.expect_navigation():
        page.click("[data-testid=prev]")
    assert ids(page) == second
    page.reload()
    assert ids(page) == second  # the state is in the URL


def _export_col(label: str) -> int:
    from useraudit.webapp.export_columns import EXPORT_COLUMNS

    return [c.label for c in EXPORT_COLUMNS].index(label)


def test_export_download_matches_the_query(
    page: Any, server: Server, seeded_store: Any, tmp_path: Path
) -> None:
    """Export to XLSX downloads every row of the current filters, as openpyxl reads them back."""
    sign_in(page, server, "alice")
    page.goto(server.url + "/a/acme/actions?period=30d&product=jaicp&result=success&tz=Asia/Tokyo")
    with page.expect_download() as info:
        page.click("[data-testid=export]")
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    ws = load_workbook(path)["User actions"]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    start = datetime.now(UTC) - timedelta(days=30)
    expected = list(
        seeded_store.iterate(
            Query(account="acme", products=("jaicp",), outcomes=("success",), start=start)
        )
    )
    assert len(rows) == len(expected) > 50
    assert [r[0] for r in rows] == [d["message"] for d in expected]
    assert {r[_export_col("Result")] for r in rows} == {"Success"}


def test_comment_payloads_render_as_text_and_no_dialog_fires(page: Any, server: Server) -> None:
    """<script> and <img onerror> in a comment show as text; no script runs, also in highlights."""
    sign_in(page, server, "alice")
    for url in (
        "/a/acme/actions?period=24h&project=xss-proj",
        "/a/acme/actions?period=24h&q=xsscanary",
    ):
        page.goto(server.url + url)
        page.wait_for_timeout(300)
        text = page.locator("td.col-comments").first.inner_text()
        assert '<script>alert("xss1")</script>' in text and "onerror=alert" in text
        assert page.locator("td.col-comments img, td.col-comments script").count() == 0
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_exported_formula_payloads_are_inert(page: Any, server: Server, tmp_path: Path) -> None:
    """Formula payloads download as quoted text cells, never as formulas."""
    sign_in(page, server, "alice")
    page.goto(server.url + "/a/acme/actions?period=24h&project=formula-proj")
    with page.expect_download() as info:
        page.click("[data-testid=export]")
    path = tmp_path / "f.xlsx"
    info.value.save_as(path)
    (row,) = list(load_workbook(path)["User actions"].iter_rows(min_row=2))
    assert all(c.data_type != "f" for c in row)
    assert row[_export_col("Comments")].value == "'" + FORMULAS["audit.comments"]


def test_empty_and_error_states(page: Any, server: Server, tmp_path: Path) -> None:
    """No matches shows the empty state; malformed input shows a friendly message, never a 500."""
    sign_in(page, server, "alice")
    page.goto(server.url + "/a/acme/actions?q=zzzznomatch&period=24h")
    assert page.locator("[data-testid=empty]").is_visible()
    shot(page, "empty-state", tmp_path)
    response = page.goto(server.url + "/a/acme/actions?ip=10.0.0.300&period=7d")
    assert response.status == 400
    assert re.search("not an IP address", page.locator("[data-testid=query-error]").inner_text())
    shot(page, "error-state", tmp_path)
    response = page.goto(server.url + "/a/globex/actions")
    assert response.status == 403
    assert page.locator("[data-testid=error-page]").is_visible()
    shot(page, "forbidden", tmp_path)


def test_store_down_state(browser: Any, users_db: Any, tmp_path: Path) -> None:
    """With OpenSearch unreachable the page shows the designed unavailable state."""
    from useraudit.store.opensearch import OpenSearchStore

    srv = Server(
        make_app(
            OpenSearchStore("http://127.0.0.1:1", prefix="nowhere", timeout=2),
            users_db,
            TESTING=False,
        )
    )
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, srv, "alice")
        assert page.locator("[data-testid=store-error]").is_visible()
        shot(page, "store-unavailable", tmp_path)
    finally:
        context.close()
        srv.stop()


def test_search_understands_word_forms_and_explains_its_syntax(
    page: Any, server: Server, tmp_path: Path
) -> None:
    """'reviewer OR operator' finds and marks "Reviewers" and "Operators"; the syntax help
    opens from the keyboard and explains OR and -."""
    sign_in(page, server, "alice")
    page.goto(server.url + "/a/acme/actions?period=30d")
    page.focus("[data-testid=search-help] summary")
    page.keyboard.press("Enter")
    panel = page.locator("[data-testid=search-help] .search-help-panel")
    assert panel.is_visible()
    text = panel.inner_text()
    assert "OR" in text and "-test" in text and "Reviewers" in text
    shot(page, "search-help", tmp_path)
    page.keyboard.press("Enter")  # the summary still has focus: closes again
    assert not panel.is_visible()
    page.fill("[data-testid=search]", "reviewer OR operator")
    with page.expect_navigation():
        page.press("[data-testid=search]", "Enter")
    marks = {m.lower() for m in page.locator("td.col-comments mark").all_inner_texts()}
    assert marks and marks <= {"reviewers", "operators"}
    assert len(ids(page)) > 0


def test_csv_export_button_downloads_the_pages_rows(
    page: Any, server: Server, tmp_path: Path
) -> None:
    """The CSV button downloads a UTF-8 CSV (with BOM, for Excel) of exactly the page's rows."""
    import csv as csv_module
    import re as re_module

    sign_in(page, server, "alice")
    page.goto(server.url + "/a/acme/actions?period=30d&result=failure&tz=Asia/Tokyo")
    total = int(re_module.sub(r"\D", "", page.locator("[data-testid=total] strong").inner_text()))
    with page.expect_download() as info:
        page.click("[data-testid=export-csv]")
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    assert path.suffix == ".csv" and path.read_bytes().startswith(b"\xef\xbb\xbf")
    with open(path, encoding="utf-8-sig", newline="") as fh:
        header, *rows = list(csv_module.reader(fh))
    assert len(rows) == total > 0
    assert {r[header.index("Result")] for r in rows} == {"Failure"}
    assert all(r[header.index("Date and time (Asia/Tokyo)")].endswith("+09:00") for r in rows)
    assert {r[header.index("UTC offset")] for r in rows} == {"UTC+09:00"}
