"""What tests/webapp does not already show: spoofed X-Forwarded-For, cheap
refusals, every formula prefix.

Sign-in throttling, cookie flags, session renewal, CSRF on sign-in/out and
security headers are in tests/webapp/test_auth.py (see docs/security.md).
"""

from __future__ import annotations

import io
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from openpyxl import load_workbook

from .conftest import PASSWORD, csrf_token, login, make_app, signed_in


def _events(spool: Any) -> list[dict[str, Any]]:
    import json

    from useraudit.spool import iter_all

    spool.flush()
    return [json.loads(p) for p in iter_all(spool.spool.directory)]


def test_spoofed_forwarded_for_is_ignored_by_the_ui(
    tenants_store: Any, security_users: Any, ui_spool: Any
) -> None:
    """With no trusted proxy, X-Forwarded-For neither names the client in audit
    events nor resets throttling."""
    app = make_app(tenants_store, security_users)
    client = app.test_client()
    codes = [
        login(
            client,
            "ann",
            "wrong",
            headers={"X-Forwarded-For": f"6.6.6.{i}"},
            environ_base={"REMOTE_ADDR": "192.0.2.10"},
        ).status_code
        for i in range(6)
    ]
    assert codes == [401] * 5 + [429]  # a fresh spoofed address each time does not help
    events = [e for e in _events(ui_spool) if e["event.action"] == "user.signed_in"]
    assert events and {e["source.address"] for e in events} == {"192.0.2.10"}


def test_forwarded_for_counts_only_through_the_trusted_proxy(
    tenants_store: Any, security_users: Any, ui_spool: Any
) -> None:
    """With one trusted proxy the rightmost entry is the client; entries left of
    it are the client's own lies."""
    app = make_app(tenants_store, security_users, USERAUDIT_TRUSTED_PROXIES=1)
    client = app.test_client()
    response = login(
        client,
        "ann",
        headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.77"},
        environ_base={"REMOTE_ADDR": "10.0.0.1"},
    )
    assert response.status_code == 302
    (event,) = [e for e in _events(ui_spool) if e["event.action"] == "user.signed_in"]
    assert event["source.address"] == "198.51.100.77"


HOSTILE_QUERIES = [
    pytest.param("/.*/", 400, id="regex"),
    pytest.param("/ab[cd]/", 200, id="regex-without-star-is-plain-text"),
    pytest.param("*admin", 400, id="leading-wildcard"),
    pytest.param("ad*min", 400, id="inner-wildcard"),
    pytest.param("a*", 400, id="one-letter-prefix"),
    pytest.param(" ".join(f"w{i}*" for i in range(21)), 400, id="21-prefix-clauses"),
    pytest.param(" | ".join(f"w{i}" for i in range(200)), 400, id="200-or-clauses"),
    pytest.param("(" * 7 + "x" + ")" * 7, 400, id="7-levels-deep"),
    pytest.param("(" * 500, 400, id="500-open-parens"),
    pytest.param("x" * 513, 400, id="513-chars"),
    pytest.param("a~2 b^3 c:d", 200, id="fuzzy-boost-field-are-plain-text"),
    pytest.param('"unclosed', 400, id="unclosed-phrase"),
    pytest.param("-only -exclusions", 400, id="only-exclusions"),
]


def test_hostile_search_is_refused_cheaply_or_searched_as_text(
    tenants_store: Any, security_users: Any, ui_spool: Any
) -> None:
    """Regex, wildcards and huge clause lists get a friendly 400 (or
    plain-text search) within 1.5 s."""
    client = signed_in(make_app(tenants_store, security_users), "ann")
    client.get("/a/tenant-a/actions?period=24h")  # warm the app up
    for param in HOSTILE_QUERIES:
        text, status = param.values
        started = time.monotonic()
        response = client.get(f"/a/tenant-a/actions?period=30d&q={quote(text)}")
        elapsed = time.monotonic() - started
        assert response.status_code == status, (param.id, response.status_code)
        if status == 400:
            assert 'data-testid="query-error"' in response.get_data(as_text=True), param.id
            assert elapsed < 1.5, (param.id, elapsed)
        export = client.get(f"/a/tenant-a/actions.xlsx?period=30d&q={quote(text)}")
        assert export.status_code == status, param.id


PREFIXES = {
    "equals": "=1+1",
    "plus": "+1+2",
    "minus": "-2+3",
    "at": "@SUM(1,1)",
    "tab": "\t=1+1",
    "cr": "\r=1+1",
    "lf": "\n=1+1",
    "nul": "\x00=1+1",
    "dde": "=cmd|' /C calc'!A0",
}


def test_formula_prefixes_in_every_exported_column_are_inert(
    tenants_store: Any, security_users: Any, ui_spool: Any
) -> None:
    """Each formula starter, in each text column of a real export, reads back as
    plain text, never a formula."""
    from useraudit.indexer.enrich import Enricher

    now = datetime.now(UTC) - timedelta(minutes=3)
    enrich = Enricher()
    docs = []
    for i, (name, payload) in enumerate(PREFIXES.items()):
        ts = now - timedelta(seconds=i)
        docs.append(
            enrich(
                {
                    "@timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "event.id": f"{int(ts.timestamp() * 1000):012x}{uuid.uuid4().hex[:20]}",
                    "event.action": payload,
                    "organization.id": "formulas",
                    "user.full_name": payload,
                    "user.target.name": payload,
                    "audit.impersonator.name": payload,
                    "audit.project.id": f"fx-{name}",
                    "audit.project.name": payload,
                    "audit.token.id": payload,
                    "audit.comments": payload,
                    "source.address": payload,
                    "event.outcome": payload,
                }
            )
        )
    assert all(r.delivered for r in tenants_store.write(docs))
    tenants_store.refresh()
    security_users.grant("ann", "formulas", "USER_ADMIN")
    try:
        client = signed_in(make_app(tenants_store, security_users), "ann")
        response = client.get("/a/formulas/actions.xlsx?period=24h")
        assert response.status_code == 200
        ws = load_workbook(io.BytesIO(response.data))["User actions"]
        rows = list(ws.iter_rows(min_row=2))
        assert len(rows) == len(PREFIXES)
        checked = 0
        for row in rows:
            for cell in row:
                assert cell.data_type != "f", (cell.coordinate, cell.value)
                if isinstance(cell.value, str) and cell.value:
                    assert cell.value[0] not in "=+-@\t\r\n\x00", (cell.coordinate, cell.value)
                    checked += 1
        assert checked >= len(PREFIXES) * 6
    finally:
        security_users.revoke("ann", "formulas", "USER_ADMIN")


def test_session_cookie_secure_flag_follows_configuration(
    tenants_store: Any, security_users: Any, ui_spool: Any
) -> None:
    """Secure by default (no config), HttpOnly and SameSite=Lax always."""
    from useraudit.webapp.app import create_app

    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "k",
            "USERAUDIT_STORE": tenants_store,
            "USERAUDIT_USERS": security_users,
        }
    )
    client = app.test_client()
    page = client.get("/login", base_url="https://localhost").get_data(as_text=True)
    import re

    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    response = client.post(
        "/login",
        base_url="https://localhost",
        data={"username": "ann", "password": PASSWORD, "csrf_token": token},
    )
    cookie = next(
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("useraudit_session=")
    )
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert csrf_token  # shared helper stays importable for other suites
