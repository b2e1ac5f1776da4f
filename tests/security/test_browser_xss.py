"""XSS payloads in every displayed field, rendered by chromium: no dialog,
no script, no injected element.

The page's CSP (script-src 'self') would stop inline script even if escaping
failed, so "no dialog" alone proves little: the test also asserts that no
element the payloads would create exists in the DOM (no ``img[src=x]``, no
``on*`` attribute, no inline ``<script>``, no ``<svg>`` from data) and that
the payload text is shown as text. Reuses the browser harness of
tests/webapp/test_browser.py (Debian chromium, werkzeug server on 127.0.0.1).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from webapp.test_browser import ARGS, CHROMIUM, Server

from .conftest import PASSWORD, make_app

IMG = '"><img src=x onerror="window.__pwned=1;alert(1)">'
SCRIPT = "<script>window.__pwned=2;alert(2)</script>"
SVG = "'><svg/onload=window.__pwned=3>"
ALL = f"xsscanary {IMG}{SCRIPT}{SVG}"


def xss_docs() -> list[dict[str, Any]]:
    from useraudit.indexer.enrich import Enricher

    now = datetime.now(UTC) - timedelta(minutes=2)
    enrich = Enricher()
    docs = []
    for i, action in enumerate(("custom_role.renamed", f"x{IMG}", "token.created")):
        ts = now - timedelta(minutes=i)
        docs.append(
            enrich(
                {
                    "@timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "event.id": f"{int(ts.timestamp() * 1000):012x}{uuid.uuid4().hex[:20]}",
                    "event.action": action,
                    "event.outcome": "success",
                    "organization.id": "corpus",
                    "user.id": f"id{SCRIPT}",
                    "user.name": f"name{IMG}",
                    "user.email": f"a{SVG}@x.example",
                    "user.full_name": f"Full {SCRIPT}{IMG}",
                    "user.target.name": f"target{IMG}",
                    "user.target.email": f"t{SCRIPT}@x.example",
                    "audit.impersonator.name": f"imp{SVG}",
                    "audit.impersonator.full_name": f"Imp {IMG}",
                    "audit.project.id": f"proj{SVG}",
                    "audit.project.name": f"Project {IMG}",
                    "audit.token.id": f"tok{SCRIPT}",
                    "audit.comments": ALL,
                    "audit.params": {"k": ALL},
                    "source.address": f"not-an-ip{IMG}",
                    "user_agent.original": f"Mozilla/5.0 {SCRIPT}",
                }
            )
        )
    return docs


@pytest.fixture(scope="module")
def server(tenants_store: Any, security_users: Any, tmp_path_factory: Any) -> Iterator[Server]:
    import useraudit

    assert all(r.delivered for r in tenants_store.write(xss_docs()))
    tenants_store.refresh()
    useraudit.configure(spool_dir=tmp_path_factory.mktemp("xss-spool"), durability="batch")
    srv = Server(make_app(tenants_store, security_users, TESTING=False))
    yield srv
    srv.stop()


INJECTED = """() => ({
  pwned: window.__pwned === undefined ? null : window.__pwned,
  img: document.querySelectorAll('img[src="x"]').length,
  handlers: [...document.querySelectorAll('*')]
    .filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
  inlineScripts: [...document.querySelectorAll('script')].filter(s => !s.src).length,
  svg: document.querySelectorAll('svg[onload]').length,
})"""


def test_payloads_in_every_field_stay_text(server: Server) -> None:
    """Rows, facets, chips, highlights and error messages show the
    payloads as text and run nothing."""
    from playwright.sync_api import sync_playwright

    pages = [
        "/a/corpus/actions?period=30d",
        "/a/corpus/actions?period=30d&q=xsscanary",
        "/a/corpus/actions?period=30d&q=" + quote('xsscanary "img src"'),
        "/a/corpus/actions?period=30d&user="
        + quote(f"name{IMG}")
        + "&project="
        + quote(SVG)
        + "&group="
        + quote(f"common:{SCRIPT}"),
        "/a/corpus/actions?period=30d&ip=" + quote(IMG),
        "/a/corpus/actions?period=30d&tz=" + quote(SCRIPT),
        "/a/corpus/actions?period=30d&q=" + quote(f'"{IMG}'),
        "/a/corpus/actions?period=custom&from=" + quote(SVG),
        "/login?next=" + quote(f"/{IMG}"),
    ]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(20_000)
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(server.url + "/login")
            page.fill("input[name=username]", "cid")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state()
            for url in pages:
                response = page.goto(server.url + url)
                assert response is not None and response.status in (200, 400), (
                    url,
                    response and response.status,
                )
                page.wait_for_timeout(150)  # let any onerror/onload fire
                state = page.evaluate(INJECTED)
                assert state == {
                    "pwned": None,
                    "img": 0,
                    "handlers": 0,
                    "inlineScripts": 0,
                    "svg": 0,
                }, (url, state)
            page.goto(server.url + "/a/corpus/actions?period=30d")
            text = page.locator("table.grid").inner_text()
            for shown in (SCRIPT, "onerror=", "window.__pwned=3"):
                assert shown in text, shown
            facets = page.locator("[data-testid=facets]").inner_text()
            assert "name" + IMG[:10] in facets
            assert dialogs == []
            context.close()
        finally:
            browser.close()
