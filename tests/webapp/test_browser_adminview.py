# ruff: noqa: F811  (the fixtures imported from test_browser are redefined as arguments)
"""The User actions page as an admin uses it: details dialog, keyboard, phone, accessibility.

Real chromium against the real server and OpenSearch node of test_browser.py.
axe-core comes from npm (tests/browser/package-lock.json; ``make test`` runs
``npm ci`` there, and so does the ``axe`` fixture when it is missing) and is
injected into each page; any serious or critical violation fails the test.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .adminview_docs import ACCOUNT, ADMIN
from .conftest import PASSWORD
from .test_browser import Server, browser, server, shot, sign_in  # noqa: F401 - fixtures

BROWSER_TOOLS = Path(__file__).parents[1] / "browser"
AXE_JS = BROWSER_TOOLS / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's script, installed with ``npm ci`` from the committed lock file if missing."""
    if not AXE_JS.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is missing: apt-get install -y npm (axe-core comes from npm)")
        subprocess.run(
            [npm, "ci", "--prefix", str(BROWSER_TOOLS), "--no-audit", "--no-fund"],
            check=True,
            timeout=300,
        )
    return AXE_JS.read_text(encoding="utf-8")


def axe_problems(page: Any, source: str) -> list[str]:
    """Serious and critical axe-core violations on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(source)
    found = page.evaluate(
        """async (tags) => {
            const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
            return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
              .map(v => v.id + ': ' + v.help + ' @ '
                + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
        }""",
        AXE_TAGS,
    )
    return list(found)


def overflowing(page: Any) -> list[str]:
    """Visible elements whose right edge passes the viewport's (or that start left of 0)."""
    return list(
        page.evaluate(
            """() => {
            const w = document.documentElement.clientWidth, out = [];
            for (const el of document.querySelectorAll('body *')) {
              const r = el.getBoundingClientRect();
              if (!r.width || !r.height) continue;
              const st = getComputedStyle(el);
              if (st.visibility === 'hidden' || st.position === 'fixed') continue;
              if (el.closest('dialog:not([open]), .sr-only, .skip-link, datalist')) continue;
              if (r.right > w + 1 || r.left < -1) {
                out.push(el.tagName + '.' + el.className + ' '
                  + Math.round(r.left) + '..' + Math.round(r.right));
              }
            }
            return out.slice(0, 10);
        }"""
        )
    )


@pytest.fixture
def ivan_page(browser: Any, server: Server, initech: Any) -> Iterator[Any]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="UTC")
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, server, ADMIN)
    page.wait_for_selector("[data-testid=results]")
    yield page
    context.close()


def test_a_row_opens_its_details_and_escape_closes_them(
    ivan_page: Any, initech: Any, tmp_path: Path, axe_source: str
) -> None:
    """Enter on a row's link opens the dialog (focus moves into it, its title names it);
    Escape closes it and focus is back on that row's link."""
    page = ivan_page
    failed = initech[0]["event.id"]
    link = page.locator(f"tr[data-event='{failed}'] a.row-open")
    link.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("[data-testid=event-dialog]")
    page.wait_for_selector("[data-testid=event-dialog] [data-testid=event-reason]")
    assert dialog.evaluate("d => d.open")
    assert "wrong password (attempt 3 in a row)" in dialog.inner_text()
    assert page.evaluate("document.activeElement.id") == "event-title"
    labelled = page.evaluate(
        "document.getElementById(document.getElementById('event-dialog')"
        ".getAttribute('aria-labelledby')).innerText"
    )
    assert "User signed in" in labelled
    assert axe_problems(page, axe_source) == []
    shot(page, "details", tmp_path)
    page.keyboard.press("Escape")
    assert not dialog.evaluate("d => d.open")
    assert page.evaluate("document.activeElement.closest('tr').dataset.event") == failed


def test_clicking_anywhere_on_a_row_opens_it_and_the_permalink_stands_alone(
    ivan_page: Any,
    server: Server,
    initech: Any,  # noqa: F811
) -> None:
    """A click on a row's empty cell opens its details; the permalink shows the same details
    on a page of its own, and the close button closes the dialog."""
    page = ivan_page
    change = initech[1]["event.id"]
    page.locator(f"tr[data-event='{change}'] td.col-result").click()
    page.wait_for_selector("[data-testid=event-dialog] [data-testid=event-changes]")
    permalink = page.locator("[data-testid=event-dialog] [data-testid=permalink]").get_attribute(
        "href"
    )
    assert permalink == f"/a/{ACCOUNT}/events/{change}"
    page.click("[data-testid=close-details]")
    assert not page.locator("[data-testid=event-dialog]").evaluate("d => d.open")
    page.goto(server.url + permalink)
    assert page.locator("[data-testid=event-changes] td.after").first.inner_text() == (
        "(changed, hidden)"
    )


def test_skip_link_is_the_first_tab_stop_and_reaches_the_results(ivan_page: Any) -> None:
    """The first Tab shows the skip link; following it puts the next Tab inside the results."""
    page = ivan_page
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.testid") == "skip-link"
    assert page.locator("[data-testid=skip-link]").bounding_box()["y"] >= 0  # type: ignore[index]
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    inside = page.evaluate("!!document.activeElement.closest('#results')")
    assert inside


def test_escape_closes_the_action_picker_and_focus_stays_on_it(ivan_page: Any) -> None:
    """The action picker opens from the keyboard and Escape closes it, focus back on its button."""
    page = ivan_page
    summary = page.locator("[data-testid=action-picker] summary")
    summary.focus()
    page.keyboard.press("Enter")
    assert page.locator("[data-testid=action-picker]").evaluate("d => d.open")
    page.keyboard.press("Tab")  # into the tree
    page.keyboard.press("Escape")
    assert not page.locator("[data-testid=action-picker]").evaluate("d => d.open")
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"


def test_focus_is_visible(ivan_page: Any) -> None:
    """A focused link or button draws an outline (keyboard users see where they are)."""
    page = ivan_page
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    width = page.evaluate("parseFloat(getComputedStyle(document.activeElement).outlineWidth)")
    style = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert width >= 2 and style != "none"


def test_pager_says_which_rows_and_offers_first(
    browser: Any,
    server: Server,
    tmp_path: Path,  # noqa: F811
) -> None:
    """Top and bottom pagers read "51–100 of N"; First returns to the first rows."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="UTC")
    page = context.new_page()
    try:
        sign_in(page, server, "alice")
        page.goto(server.url + "/a/acme/actions?period=30d")
        total = page.locator("[data-testid=total] strong").inner_text()
        with page.expect_navigation():
            page.locator("[data-testid=pager-bottom] [data-testid=next]").click()
        for where in ("top", "bottom"):
            assert page.locator(f"[data-testid=range-{where}]").inner_text() == f"51–100 of {total}"
        shot(page, "desktop", tmp_path)
        with page.expect_navigation():
            page.locator("[data-testid=pager-top] [data-testid=first]").click()
        assert page.locator("[data-testid=range-top]").inner_text() == f"1–50 of {total}"
        # one line per row: every row is as tall as the first
        heights = page.eval_on_selector_all(
            "tr[data-event]", "els => els.map(e => Math.round(e.getBoundingClientRect().height))"
        )
        assert max(heights) - min(heights) <= 1 and max(heights) < 40
        header = page.locator("table.grid th").first
        page.locator(".table-wrap").evaluate("w => w.scrollTop = 600")
        wrap_top = page.locator(".table-wrap").bounding_box()["y"]  # type: ignore[index]
        assert abs(header.bounding_box()["y"] - wrap_top) < 3  # type: ignore[index]  # sticky
    finally:
        context.close()


def test_last_jumps_to_the_oldest_rows_and_previous_walks_back(
    browser: Any,
    server: Server,  # noqa: F811
    seeded_store: Any,
    tmp_path: Path,
) -> None:
    """Last, at the top and at the bottom, shows "N-k+1–N of N" and the oldest rows;
    Previous from there shows the page before; Next returns; First goes home."""
    from datetime import UTC, datetime, timedelta

    from useraudit.store.query import Query

    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="UTC")
    page = context.new_page()
    row_ids = "els => els.map(e => e.dataset.event)"
    try:
        sign_in(page, server, "alice")
        page.goto(server.url + "/a/acme/actions?period=30d")
        total = int(page.locator("[data-testid=total] strong").inner_text().replace(",", ""))
        newest_first = [
            d["event.id"]
            for d in seeded_store.iterate(
                Query("acme", start=datetime.now(UTC) - timedelta(days=30)), fields=("event.id",)
            )
        ]
        assert len(newest_first) == total > 100
        tail = total % 50 or 50
        first_ids = page.eval_on_selector_all("tr[data-event]", row_ids)
        for where in ("top", "bottom"):
            with page.expect_navigation():
                page.locator(f"[data-testid=pager-{where}] [data-testid=last]").click()
            for pager in ("top", "bottom"):
                text = page.locator(f"[data-testid=range-{pager}]").inner_text()
                assert text == f"{total - tail + 1:,}–{total:,} of {total:,}"
            assert page.eval_on_selector_all("tr[data-event]", row_ids) == newest_first[-tail:]
            if where == "bottom":
                shot(page, "last-page", tmp_path)
            # Nothing is older: Next and Last are off, Previous and First are on.
            assert page.locator("[data-testid=next], [data-testid=last]").count() == 0
            with page.expect_navigation():
                page.locator(f"[data-testid=pager-{where}] [data-testid=prev]").click()
            start = total - tail - 50
            assert page.locator("[data-testid=range-top]").inner_text() == (
                f"{start + 1:,}–{total - tail:,} of {total:,}"
            )
            assert (
                page.eval_on_selector_all("tr[data-event]", row_ids)
                == (newest_first[start : total - tail])
            )
            page.reload()  # the position is in the URL
            assert (
                page.eval_on_selector_all("tr[data-event]", row_ids)
                == (newest_first[start : total - tail])
            )
            with page.expect_navigation():
                page.locator(f"[data-testid=pager-{where}] [data-testid=next]").click()
            assert page.eval_on_selector_all("tr[data-event]", row_ids) == newest_first[-tail:]
            with page.expect_navigation():
                page.locator(f"[data-testid=pager-{where}] [data-testid=first]").click()
            assert page.locator("[data-testid=range-top]").inner_text() == f"1–50 of {total:,}"
            assert page.eval_on_selector_all("tr[data-event]", row_ids) == first_ids
    finally:
        context.close()


def test_previous_from_the_end_stops_at_page_one(
    browser: Any,
    server: Server,  # noqa: F811
) -> None:
    """Walking back from Last reaches "1–100" with First and Previous off."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="UTC")
    page = context.new_page()
    try:
        sign_in(page, server, "alice")
        page.goto(server.url + "/a/acme/actions?period=30d&size=100")
        first_ids = page.eval_on_selector_all(
            "tr[data-event]", "els => els.map(e => e.dataset.event)"
        )
        with page.expect_navigation():
            page.locator("[data-testid=pager-top] [data-testid=last]").click()
        for _ in range(50):
            if not page.locator("[data-testid=pager-top] [data-testid=prev]").count():
                break
            with page.expect_navigation():
                page.locator("[data-testid=pager-top] [data-testid=prev]").click()
        assert page.locator("[data-testid=range-top]").inner_text().startswith("1–100 of ")
        assert page.locator("[data-testid=first]").count() == 0
        assert page.eval_on_selector_all(
            "tr[data-event]", "els => els.map(e => e.dataset.event)"
        ) == (first_ids)
    finally:
        context.close()


def test_zone_found_by_typing_a_city(
    browser: Any,
    server: Server,  # noqa: F811
    users_db: Any,
) -> None:
    """Typing "berlin" and Enter shows Berlin time and saves Europe/Berlin for the admin;
    the datalist offers it with its offset. (A fresh admin: the saved zone is theirs.)"""
    import uuid

    name = f"tz{uuid.uuid4().hex[:8]}"
    added = users_db.add(name, PASSWORD, email=f"{name}@example.com", full_name="Zone Tester")
    users_db.grant(name, "acme", "USER_ADMIN")
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="UTC")
    page = context.new_page()
    try:
        sign_in(page, server, name)
        page.goto(server.url + "/a/acme/actions?period=30d&tz=UTC")
        assert page.locator("#tz-list option[value='Europe/Berlin']").count() == 1
        assert page.locator("#tz-list option[value='Etc/GMT+7']").count() == 0
        page.fill("[data-testid=tz]", "berlin")
        with page.expect_navigation():
            page.press("[data-testid=tz]", "Enter")
        assert page.input_value("[data-testid=tz]") == "Europe/Berlin"
        offset = page.locator("[data-testid=tz-offset]").inner_text()
        assert offset in ("UTC+01:00", "UTC+02:00")
        title = page.locator("tr[data-event] time").first.get_attribute("title") or ""
        assert offset in title and title.endswith(" ago")
        # Saved by the page's script as the form went (a request of its own).
        for _ in range(50):
            if users_db.preferences(added.get_id()).get("tz"):
                break
            page.wait_for_timeout(100)
        assert users_db.preferences(added.get_id())["tz"] == "Europe/Berlin"
    finally:
        context.close()


def test_first_visit_takes_the_browsers_zone_and_it_is_remembered_per_user(
    browser: Any,
    server: Server,  # noqa: F811
    users_db: Any,
) -> None:
    """A new admin opens the page in Kolkata: the page switches to Asia/Kolkata and saves it.
    A second browser in São Paulo, same admin: still Kolkata. Another new admin in
    São Paulo gets São Paulo; a browser reporting the old Europe/Kiev gets Europe/Kyiv."""
    import uuid

    def visit(user: str, zone: str) -> str:
        context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id=zone)
        page = context.new_page()
        try:
            sign_in(page, server, user)
            page.goto(server.url + "/a/acme/actions?period=30d")
            page.wait_for_load_state("networkidle")
            page.wait_for_selector("[data-testid=results]")
            return page.input_value("[data-testid=tz]")
        finally:
            context.close()

    users, ids = [], []
    for _ in range(3):
        name = f"tz{uuid.uuid4().hex[:8]}"
        added = users_db.add(name, PASSWORD, email=f"{name}@example.com", full_name="Zone Tester")
        users_db.grant(name, "acme", "USER_ADMIN")
        users.append(name)
        ids.append(added.get_id())
    first, second, third = users
    assert "tz" not in users_db.preferences(ids[0])
    assert visit(first, "Asia/Kolkata") == "Asia/Kolkata"
    assert users_db.preferences(ids[0])["tz"] == "Asia/Kolkata"  # saved for the user
    assert visit(first, "America/Sao_Paulo") == "Asia/Kolkata"  # remembered, not re-guessed
    assert visit(second, "America/Sao_Paulo") == "America/Sao_Paulo"
    assert visit(third, "Europe/Kiev") == "Europe/Kyiv"


@pytest.mark.parametrize("path", ["/a/acme/actions?period=30d", "/a/acme/actions?ip=10.0.0.300"])
def test_phone_nothing_off_screen_filters_behind_one_button_rows_as_cards(
    browser: Any,
    server: Server,
    tmp_path: Path,
    path: str,
    axe_source: str,  # noqa: F811
) -> None:
    """At 390 px no element passes the screen's edge, the filters open from one button,
    and each row is a card."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, timezone_id="UTC", is_mobile=True, has_touch=True
    )
    page = context.new_page()
    try:
        sign_in(page, server, "alice")
        page.goto(server.url + path)
        assert overflowing(page) == []
        assert page.locator("[data-testid=sign-out]").is_visible()
        form = page.locator("[data-testid=filters]")
        assert not form.is_visible()
        page.click("[data-testid=filters-toggle]")
        assert form.is_visible()
        assert overflowing(page) == []
        assert axe_problems(page, axe_source) == []
        page.click("[data-testid=filters-toggle]")
        if "period=30d" in path:
            first = page.locator("tr[data-event]").first
            assert first.evaluate("r => getComputedStyle(r).display") == "block"
            box = first.bounding_box()
            assert box and box["width"] <= 390 and box["y"] < 600  # the results start high up
            shot(page, "phone", tmp_path)
            first.locator("a.row-open").click()
            page.wait_for_selector("[data-testid=event-dialog] [data-testid=event-request]")
            assert overflowing(page) == []
    finally:
        context.close()


STATES = [
    pytest.param("alice", "/a/acme/actions?period=30d", "results", id="results"),
    pytest.param("alice", "/a/acme/actions?q=zzzznomatch&period=24h", "empty", id="empty"),
    pytest.param("alice", "/a/acme/actions?ip=10.0.0.300", "query-error", id="error"),
    pytest.param("alice", "/a/globex/actions", "error-page", id="refused"),
    pytest.param("bob", "/accounts", "account-list", id="accounts"),
    pytest.param(ADMIN, f"/a/{ACCOUNT}/actions", "results", id="initech"),
]


@pytest.mark.parametrize(("user", "path", "testid"), STATES)
def test_axe_finds_no_serious_violation(
    browser: Any,  # noqa: F811
    server: Server,  # noqa: F811
    initech: Any,
    axe_source: str,
    user: str,
    path: str,
    testid: str,
) -> None:
    """axe-core (WCAG 2.2 AA, best practices) reports nothing serious or critical in each state."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="UTC")
    page = context.new_page()
    try:
        page.goto(server.url + "/login")
        assert axe_problems(page, axe_source) == []
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", PASSWORD)
        page.click("[data-testid=login-form] button[type=submit]")
        page.wait_for_load_state()
        page.goto(server.url + path)
        assert page.locator(f"[data-testid={testid}]").count() > 0
        if testid == "results":
            page.click("[data-testid=action-picker] summary")
        assert axe_problems(page, axe_source) == []
    finally:
        context.close()


def test_event_page_passes_axe(
    browser: Any,
    server: Server,
    initech: Any,
    axe_source: str,  # noqa: F811
) -> None:
    """The permalink page of a settings change (before/after table, JSON) is axe-clean."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="UTC")
    page = context.new_page()
    try:
        sign_in(page, server, ADMIN)
        page.goto(f"{server.url}/a/{ACCOUNT}/events/{initech[1]['event.id']}")
        page.click(".event-json summary")
        assert axe_problems(page, axe_source) == []
    finally:
        context.close()


def test_russian_from_the_header_switch(
    browser: Any,
    server: Server,
    initech: Any,
    axe_source: str,
    tmp_path: Path,  # noqa: F811
) -> None:
    """The header's RU link turns the page, its catalog labels and the details into Russian,
    axe-clean; EN brings English back."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="UTC")
    page = context.new_page()
    try:
        sign_in(page, server, ADMIN)
        with page.expect_navigation():
            page.click("[data-testid=lang-ru]")
        assert page.locator("html").get_attribute("lang") == "ru"
        assert page.locator("h1").inner_text() == "Действия пользователей"
        assert "Пользователь вошёл" in page.locator("td.col-action").all_inner_texts()
        assert page.locator("[data-testid=range-top]").inner_text() == "1–3 из 3"
        assert axe_problems(page, axe_source) == []
        shot(page, "russian", tmp_path)
        page.locator("tr[data-event] a.row-open").first.click()
        page.wait_for_selector("[data-testid=event-dialog] [data-testid=event-reason]")
        assert "причина" in page.locator("[data-testid=event-dialog]").inner_text().lower()
        page.keyboard.press("Escape")
        with page.expect_navigation():
            page.click("[data-testid=lang-en]")
        assert page.locator("h1").inner_text() == "User actions"
    finally:
        page.goto(server.url + "/language/en")
        context.close()


def test_phone_in_russian_keeps_the_pager_on_screen(
    browser: Any,
    server: Server,
    initech: Any,  # noqa: F811
) -> None:
    """Russian's longer words (« Первая … Последняя ») fit at 390 px too: the pager's
    buttons wrap instead of running off both edges."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, timezone_id="UTC", is_mobile=True, has_touch=True
    )
    page = context.new_page()
    try:
        sign_in(page, server, ADMIN)
        page.goto(server.url + "/language/ru")
        page.goto(f"{server.url}/a/{ACCOUNT}/actions")
        assert page.locator("html").get_attribute("lang") == "ru"
        assert page.locator("[data-testid=pager-top]").is_visible()
        assert overflowing(page) == []
    finally:
        page.goto(server.url + "/language/en")
        context.close()


def test_activity_chart_adds_up_and_a_bar_narrows_the_period(
    browser: Any,
    server: Server,
    tmp_path: Path,
    axe_source: str,  # noqa: F811
) -> None:
    """The chart's bars add up to the table's total; clicking a bar (from the keyboard) shows
    exactly its events, failures included."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="UTC")
    page = context.new_page()
    try:
        sign_in(page, server, "alice")
        page.goto(server.url + "/a/acme/actions?period=30d&tz=Asia/Kolkata")
        bars = page.locator("[data-testid=chart-bar]")
        totals = [int(t) for t in bars.evaluate_all("bs => bs.map(b => b.dataset.total)")]
        total = int(page.locator("[data-testid=total] strong").inner_text().replace(",", ""))
        assert 28 <= len(totals) <= 32 and sum(totals) == total
        assert axe_problems(page, axe_source) == []
        shot(page, "chart", tmp_path)
        busiest = max(
            range(len(totals)),
            key=lambda i: (int(bars.nth(i).get_attribute("data-failure") or 0), totals[i]),
        )
        bar = bars.nth(busiest)
        failures = int(bar.get_attribute("data-failure") or 0)
        bar.focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        shown = int(page.locator("[data-testid=total] strong").inner_text().replace(",", ""))
        assert shown == totals[busiest]
        assert page.locator("[data-testid=period]").input_value() == "custom"
        assert column_failures(page) == failures or shown > 50
    finally:
        context.close()


def column_failures(page: Any) -> int:
    return sum(1 for t in page.locator("td.col-result").all_inner_texts() if t == "Failure")
