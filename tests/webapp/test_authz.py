"""Authorization and tenant isolation: only USER_ADMINs of an account see its actions."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest

from useraudit.store import Query
from useraudit.store.query import encode_cursor

ROUTES = [
    "/a/{account}/actions",
    "/a/{account}/actions?q=Reviewers&period=30d",
    "/a/{account}/actions.xlsx",
    "/a/{account}/actions.xlsx?period=30d",
    "/a/{account}/actions.csv?period=30d",
    "/a/{account}/actions.ndjson?period=30d",
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("user", "account"),
    [
        pytest.param("carol", "acme", id="viewer-role-only"),
        pytest.param("alice", "globex", id="admin-of-another-account"),
        pytest.param("dave", "acme", id="admin-of-globex-on-acme"),
        pytest.param("bob", "initech", id="account-nobody-has"),
        pytest.param("bob", "acme%2F..%2Fglobex", id="path-tricks"),
    ],
)
def test_every_route_is_403_without_user_admin_on_the_account(
    as_user: Any, user: str, account: str, route: str
) -> None:
    """Every page and export of an account answers 403 to users without USER_ADMIN on it."""
    client = as_user(user)
    response = client.get(route.format(account=account))
    assert response.status_code in (403, 404)
    assert b"xsscanary" not in response.data and b"globexsecret" not in response.data


@pytest.mark.parametrize("route", ROUTES + ["/accounts", "/"])
def test_every_route_needs_sign_in(client: Any, route: str) -> None:
    """Anonymous visitors are sent to the sign-in page from every route."""
    response = client.get(route.format(account="acme"))
    assert response.status_code == 302
    assert "/login" in response.headers["Location"] or response.headers["Location"] == "/accounts"


def test_admin_of_one_account_goes_straight_to_it(as_user: Any) -> None:
    """An admin of a single account skips the picker."""
    response = as_user("alice").get("/accounts")
    assert response.status_code == 302 and response.headers["Location"] == "/a/acme/actions"


def test_admin_of_several_accounts_picks_first(as_user: Any) -> None:
    """An admin of several accounts is shown the account picker with exactly their accounts."""
    page = as_user("bob").get("/accounts").get_data(as_text=True)
    assert 'href="/a/acme/actions"' in page and 'href="/a/globex/actions"' in page
    assert "Choose an account" in page


def test_user_without_admin_role_sees_no_accounts(as_user: Any) -> None:
    """A user with other roles only gets an explanation, no account links."""
    page = as_user("carol").get("/accounts").get_data(as_text=True)
    assert "No accounts to show" in page and "/a/acme/actions" not in page


def test_search_never_crosses_accounts(as_user: Any, seeded_store: Any) -> None:
    """Text found only in globex is not found from acme, even by an admin of both."""
    client = as_user("bob")
    acme = client.get("/a/acme/actions?q=globexsecret&period=30d").get_data(as_text=True)
    assert 'data-testid="empty"' in acme and "globexsecret</mark>" not in acme
    globex = client.get("/a/globex/actions?q=globexsecret&period=30d").get_data(as_text=True)
    assert "<mark>globexsecret</mark>" in globex


def test_url_arguments_cannot_name_the_account(as_user: Any) -> None:
    """Extra query arguments naming another account are ignored; the route decides."""
    client = as_user("alice")
    page = client.get(
        "/a/acme/actions?account=globex&organization.id=globex&q=globexsecret&period=30d"
    )
    assert page.status_code == 200 and b"globexsecret</mark>" not in page.data


def test_crafted_cursor_from_another_account_stays_in_the_account(
    as_user: Any, seeded_store: Any
) -> None:
    """A cursor built from a globex event's sort values pages through acme only."""
    globex_doc = next(seeded_store.iterate(Query(account="globex", text="globexsecret")))
    from useraudit.webapp.columns import parse_ts

    ts = int(parse_ts(globex_doc["@timestamp"]).timestamp() * 1000)  # type: ignore[union-attr]
    cursor = encode_cursor(ts + 1, globex_doc["event.id"])
    page = (
        as_user("bob").get(f"/a/acme/actions?period=30d&size=100&c={cursor}").get_data(as_text=True)
    )
    assert "globexsecret" not in page and "gina@globex" not in page
    assert 'data-testid="results"' in page


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("not-base64!!", id="garbage"),
        pytest.param(encode_cursor(1, "x" * 65), id="id-too-long"),
        pytest.param("WzEsMiwzXQ", id="wrong-shape"),
        pytest.param("eyJhY2NvdW50IjoiZ2xvYmV4In0", id="json-object-with-account"),
    ],
)
def test_malformed_cursors_get_a_friendly_400(as_user: Any, cursor: str) -> None:
    """Crafted or damaged cursors answer a friendly message, never a 500."""
    response = as_user("alice").get(f"/a/acme/actions?c={cursor}")
    assert response.status_code == 400
    assert "page link is invalid" in response.get_data(as_text=True)


def test_export_is_scoped_to_the_account(as_user: Any, seeded_store: Any) -> None:
    """The XLSX export of acme holds exactly acme's rows for the filters, none of globex's."""
    import io

    from openpyxl import load_workbook

    from useraudit.webapp.export_columns import EXPORT_COLUMNS

    response = as_user("bob").get("/a/acme/actions.xlsx?period=30d&q=renamed")
    assert response.status_code == 200
    ws = load_workbook(io.BytesIO(response.data), read_only=True)["User actions"]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    expected = seeded_store.count(Query(account="acme", text="renamed", start=_days_ago(30)))
    assert len(rows) == expected > 0
    comments = [c.label for c in EXPORT_COLUMNS].index("Comments")
    assert not any("globexsecret" in (r[comments] or "") for r in rows)


def _days_ago(days: int) -> Any:
    from datetime import datetime, timedelta

    return datetime.now(UTC) - timedelta(days=days)
