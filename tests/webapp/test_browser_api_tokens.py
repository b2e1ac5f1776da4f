# ruff: noqa: F811  (the fixtures imported from the other browser tests are redefined as arguments)
"""The API tokens page in real chromium: created and revoked with the keyboard, the secret
copied once, axe-clean, nothing off screen at 390 px.

The app runs on a real HTTP server on 127.0.0.1 over the seeded OpenSearch node
(test_browser.py); the token it makes is used on /api/v1 through that server.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import make_app
from .test_browser import Server, browser, shot, sign_in  # noqa: F401 - fixtures
from .test_browser_adminview import axe_problems, axe_source, overflowing  # noqa: F401


@pytest.fixture(scope="module")
def token_server(
    seeded_store: Any, users_db: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The admin UI with its own token database, on a real server bound to 127.0.0.1."""
    import useraudit

    useraudit.configure(spool_dir=tmp_path_factory.mktemp("tokens-spool"), durability="sync")
    tokens = tmp_path_factory.mktemp("tokens") / "api_tokens.db"
    srv = Server(make_app(seeded_store, users_db, TESTING=False, USERAUDIT_API_TOKENS=str(tokens)))
    yield srv
    srv.stop()


def new_page(browser: Any, width: int = 1280, height: int = 900, **kw: Any) -> tuple[Any, Any]:
    context = browser.new_context(
        viewport={"width": width, "height": height},
        timezone_id="UTC",
        permissions=["clipboard-read", "clipboard-write"],
        **kw,
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    return context, page


def api_status(page: Any, server: Server, secret: str) -> int:
    response = page.request.get(
        server.url + "/api/v1/events", headers={"Authorization": f"Bearer {secret}"}
    )
    try:
        return int(response.status)
    finally:
        response.dispose()


def press_on(page: Any, selector: str, key: str = "Enter") -> None:
    page.focus(selector)
    page.keyboard.press(key)


def test_create_copy_once_and_revoke_with_the_keyboard(
    browser: Any, token_server: Server, axe_source: str, tmp_path: Path
) -> None:
    """From User actions' header to a new token, copied with its button, shown once,
    working on the API, then revoked after a confirmation: 401; every state axe-clean."""
    context, page = new_page(browser)
    try:
        sign_in(page, token_server, "alice")
        press_on(page, "[data-testid=api-tokens-tab]")
        page.wait_for_url("**/a/acme/api-tokens")
        assert axe_problems(page, axe_source) == []

        page.focus("[data-testid=token-name]")
        page.keyboard.type("SIEM pull")
        page.keyboard.press("Tab")  # events:read, checked by default
        page.keyboard.press("Tab")
        page.keyboard.press("Space")  # alerts:read too
        page.keyboard.press("Tab")
        page.keyboard.press("ArrowDown")  # 90 → 365 days
        press_on(page, "[data-testid=create-token-submit]")
        page.wait_for_selector("[data-testid=new-token]")
        focused = page.evaluate("document.activeElement.id")
        assert focused == "new-token"  # a screen reader hears the notice first
        secret = page.input_value("[data-testid=token-secret]")
        assert secret.startswith("uat_")
        press_on(page, "[data-testid=copy-token]")
        # expect() polls without eval, which the page's CSP forbids
        expect(page.locator("[data-copy-status]")).to_have_text("Copied", timeout=15_000)
        assert page.evaluate("navigator.clipboard.readText()") == secret
        shot(page, "api-tokens", tmp_path, full=True)
        assert axe_problems(page, axe_source) == []
        token_id = secret.split("_")[1]
        row = page.locator(f"tr[data-token='{token_id}']")
        assert row.get_attribute("data-state") == "active"
        assert "events:read" in row.inner_text() and "alerts:read" in row.inner_text()
        expires = (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%d")
        assert expires in row.inner_text()  # the keyboard picked 365 days
        assert api_status(page, token_server, secret) == 200

        page.goto(token_server.url + "/a/acme/api-tokens")  # shown once: not again
        assert secret not in page.content() and secret.split("_", 2)[2] not in page.content()
        assert page.locator("[data-testid=token-secret]").count() == 0

        press_on(page, f"[data-testid=revoke-{token_id}]")
        page.wait_for_selector("[data-testid=confirm-revoke]")
        assert axe_problems(page, axe_source) == []
        assert api_status(page, token_server, secret) == 200  # asking is not revoking
        press_on(page, "[data-testid=confirm-revoke-submit]")
        page.wait_for_url("**/a/acme/api-tokens")
        assert page.locator(f"tr[data-token='{token_id}']").get_attribute("data-state") == (
            "revoked"
        )
        assert page.locator(f"[data-testid=revoke-{token_id}]").count() == 0
        assert api_status(page, token_server, secret) == 401
        assert axe_problems(page, axe_source) == []
    finally:
        context.close()


def test_phone_390_px_nothing_off_screen(
    browser: Any, token_server: Server, axe_source: str, tmp_path: Path
) -> None:
    """At 390 px the list, the new secret with its button and the confirmation fit the
    screen and stay axe-clean."""
    context, page = new_page(browser, 390, 844, is_mobile=True, has_touch=True)
    try:
        sign_in(page, token_server, "alice")
        page.wait_for_url("**/a/acme/actions")
        tab = page.locator("[data-testid=api-tokens-tab]")  # the header wraps, never hides it
        box = tab.bounding_box()
        assert tab.is_visible() and box and box["x"] + box["width"] <= 390 and box["height"] >= 24
        tab.click()
        page.wait_for_url("**/a/acme/api-tokens")
        page.fill("[data-testid=token-name]", "A phone-made token with a rather long name")
        page.click("[data-testid=create-token-submit]")
        page.wait_for_selector("[data-testid=new-token]")
        assert overflowing(page) == []
        assert axe_problems(page, axe_source) == []
        box = page.locator("[data-testid=copy-token]").bounding_box()
        assert box and box["x"] + box["width"] <= 390
        shot(page, "api-tokens-phone", tmp_path, full=True)
        token_id = page.input_value("[data-testid=token-secret]").split("_")[1]
        page.click(f"[data-testid=revoke-{token_id}]")
        page.wait_for_selector("[data-testid=confirm-revoke]")
        assert overflowing(page) == []
        assert axe_problems(page, axe_source) == []
    finally:
        context.close()
