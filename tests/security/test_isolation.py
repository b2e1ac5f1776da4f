"""Tenant isolation, fuzzed: an admin of tenant-a never sees a row of tenant-b.

Hypothesis throws every UI route at the app with parameters drawn from
tenant-b's own values (users, projects, tokens, IPs, facet values), page
cursors taken from tenant-b's pages, ``account=tenant-b``-style arguments,
path tricks and junk. Whatever the answer (200, 302, 400, 403, 404), the
result rows, facet values and XLSX rows hold no tenant-b data.
(Fixed cases live in tests/webapp/test_authz.py; this file generalises them.)
"""

from __future__ import annotations

import io
import re
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from .conftest import make_app, signed_in
from .tenants import B_NET, MARKER

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PARAMS = [
    "product",
    "group",
    "action",
    "user",
    "target",
    "impersonator",
    "history",
    "project",
    "token",
    "result",
    "ip",
    "browser",
    "os",
    "device",
    "q",
    "c",
    "period",
    "from",
    "to",
    "tz",
    "size",
    "account",
    "organization.id",
    "org",
    "tenant",
    "a",
]


@pytest.fixture(scope="module")
def b_values(
    tenants_store: Any, security_users: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[str]]:
    """Values an attacker could learn or guess about tenant-b, including its page cursors."""
    docs = tenants_store.docs_by_account["tenant-b"]
    values: dict[str, list[str]] = {"cursor": []}
    for field in (
        "user.name",
        "user.email",
        "user.id",
        "user.target.name",
        "audit.project.id",
        "audit.token.id",
        "source.ip",
        "audit.impersonator.name",
        "event.id",
        "audit.comments",
        "user_agent.name",
    ):
        values[field] = sorted({str(d[field]) for d in docs if d.get(field)})
    # Cursors from tenant-b's own pages, as its admin sees them.
    import useraudit

    # Under pytest's temporary directories: a mkdtemp spool was left in /tmp by every run.
    useraudit.configure(spool_dir=tmp_path_factory.mktemp("sec-ui-spool"), durability="batch")
    client = signed_in(make_app(tenants_store, security_users), "bea")
    url = "/a/tenant-b/actions?period=30d&size=25"
    for _ in range(3):
        html = client.get(url).get_data(as_text=True)
        found = re.search(r'data-testid="next" href="([^"]+)"', html)
        if not found:
            break
        url = found.group(1).replace("&amp;", "&")
        values["cursor"] += re.findall(r"[?&]c=([^&]+)", url)
    assert values["cursor"], "tenant-b has several pages"
    return values


def a_ids(store: Any) -> set[str]:
    return {d["event.id"] for d in store.docs_by_account["tenant-a"]}


def assert_no_b_in_page(html: str, allowed: set[str], label: str) -> None:
    """Rows, facet values and totals hold tenant-a data only (echoed filters aside)."""
    rows = set(re.findall(r'<tr data-event="([^"]*)"', html))
    assert rows <= allowed, (label, rows - allowed)
    tbody = re.search(r"<tbody>(.*?)</tbody>", html, re.S)
    if tbody:
        body = re.sub(r'(href|title)="[^"]*"', "", tbody.group(1))
        assert MARKER not in body and B_NET not in body, label
    aside = re.search(r'<aside class="facets".*?</aside>', html, re.S)
    if aside:
        shown = re.findall(r'title="([^"]*)"|<span class="facet-v">([^<]*)<', aside.group(0))
        for value in (v for pair in shown for v in pair if v):
            assert MARKER not in value and B_NET not in value, (label, value)


def assert_no_b_in_xlsx(data: bytes, label: str) -> None:
    wb = load_workbook(io.BytesIO(data), read_only=True)
    for name in wb.sheetnames:
        if name == "Filters":
            continue  # echoes the request's own filters
        for row in wb[name].iter_rows(values_only=True):
            for cell in row:
                if isinstance(cell, str):
                    assert MARKER not in cell and B_NET not in cell, (label, cell)


# Half the examples on tenant-a's own page and export (where a leak would show),
# half on routes that must refuse.
ROUTES = st.one_of(
    st.sampled_from(["/a/tenant-a/actions", "/a/tenant-a/actions.xlsx"]),
    st.sampled_from(
        [
            "/a/tenant-b/actions",
            "/a/tenant-b/actions.xlsx",
            "/a/TENANT-B/actions",
            "/a/tenant-a%2F..%2Ftenant-b/actions",
            "/a/tenant-a/../tenant-b/actions",
            "/a/tenant-b%00/actions",
            "/a/tenant-b /actions",
            "/a/tenant-a,tenant-b/actions",
            "/a/*/actions",
            "/accounts",
            "/",
        ]
    ),
)


@st.composite
def params(draw: Any, b: dict[str, list[str]]) -> list[tuple[str, str]]:
    pool = [v for vs in b.values() for v in vs] + [
        "tenant-b",
        "*",
        "",
        MARKER,
        f"{MARKER}*",
        f'"{MARKER}"',
        f"{MARKER}-user0,{MARKER}-user1",
        "203.0.113.0/24",
        "0.0.0.0/0",
        "::/0",
        "30d",
        "custom",
        "common:Users",
    ]
    value = st.one_of(st.sampled_from(pool), st.text(max_size=40), st.sampled_from(b["cursor"]))
    pairs = draw(st.lists(st.tuples(st.sampled_from(PARAMS), value), max_size=8))
    if draw(st.booleans()):
        pairs.append(("period", "30d"))
    return pairs


def test_fuzzed_routes_and_params_never_show_tenant_b(
    tenants_store: Any, security_users: Any, b_values: dict[str, list[str]], ui_spool: Any
) -> None:
    """Random routes × parameters from tenant-b's data: zero tenant-b rows in HTML or XLSX."""
    client = signed_in(make_app(tenants_store, security_users), "ann")
    allowed = a_ids(tenants_store)
    seen: dict[int, int] = {}

    @FUZZ
    @given(route=ROUTES, pairs=params(b_values))
    def check(route: str, pairs: list[tuple[str, str]]) -> None:
        qs = urlencode(pairs, encoding="utf-8", errors="surrogatepass")
        response = client.get(f"{route}?{qs}")
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        label = f"{route}?{qs}"
        assert response.status_code in (200, 302, 400, 403, 404), label
        if "tenant-a/" not in route or "tenant-b" in route:
            assert response.status_code in (302, 403, 404), label
        if response.status_code != 200:
            assert MARKER.encode() not in re.sub(rb"(?s)<form.*?</form>", b"", response.data) or (
                MARKER in qs
            ), label
            return
        if route.endswith(".xlsx"):
            assert_no_b_in_xlsx(response.data, label)
        else:
            assert_no_b_in_page(response.get_data(as_text=True), allowed, label)

    check()
    print(f"\nisolation fuzz answers by status: {dict(sorted(seen.items()))}")
    assert seen.get(200, 0) > 15, seen  # the fuzzing reached real result pages


def test_b_cursor_and_facet_values_on_a_pages(
    tenants_store: Any, security_users: Any, b_values: dict[str, list[str]], ui_spool: Any
) -> None:
    """Every tenant-b cursor and facet value, used on tenant-a's page and
    export, shows no tenant-b row."""
    client = signed_in(make_app(tenants_store, security_users), "ann")
    allowed = a_ids(tenants_store)
    for cursor in b_values["cursor"]:
        html = client.get(f"/a/tenant-a/actions?period=30d&c={cursor}").get_data(as_text=True)
        assert_no_b_in_page(html, allowed, cursor)
    for param, field in (
        ("user", "user.name"),
        ("project", "audit.project.id"),
        ("token", "audit.token.id"),
        ("target", "user.target.name"),
        ("history", "user.email"),
        ("ip", "source.ip"),
    ):
        value = b_values[field][0]
        html = client.get(f"/a/tenant-a/actions?period=30d&{param}={quote(value)}").get_data(
            as_text=True
        )
        assert 'data-testid="empty"' in html, (param, value)
        assert_no_b_in_page(html, allowed, param)
        export = client.get(f"/a/tenant-a/actions.xlsx?period=30d&{param}={quote(value)}")
        assert export.status_code == 200
        assert_no_b_in_xlsx(export.data, param)
    # The same search from tenant-b's own admin finds them: the values are real.
    other = signed_in(make_app(tenants_store, security_users), "bea")
    value = b_values["user.name"][0]
    assert "data-event" in other.get(f"/a/tenant-b/actions?period=30d&user={value}").get_data(
        as_text=True
    )


# Values for the other route parameters: none names anything that exists.
ROUTE_PARAMS = {
    "<alert_id>": "no-such-alert",
    "<event_id>": "no-such-event",
    "<path:rest>": "no-such-route",
    "<code>": "ru",
    "<token_id>": "no-such-token",
}


def test_every_route_refuses_anonymous_and_non_admins(
    tenants_store: Any, security_users: Any, ui_spool: Any
) -> None:
    """Each rule in the app's URL map, for anonymous visitors and a VIEWER:
    sign-in or 403, never data."""
    app = make_app(tenants_store, security_users)
    rules = [
        r for r in app.url_map.iter_rules() if r.endpoint != "static" and "static" not in r.rule
    ]
    assert len(rules) >= 6
    anonymous = app.test_client()
    viewer = signed_in(app, "vic")
    # The API description holds no data; the language switch (also on the
    # sign-in page) only saves a choice and goes back.
    open_to_all = {"/login", "/api/v1/openapi.json", "/language/ru"}
    for rule in rules:
        path = rule.rule.replace("<account>", "tenant-a")
        for param, value in ROUTE_PARAMS.items():
            path = path.replace(param, value)
        assert "<" not in path, f"new route parameter to cover: {rule.rule}"
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            response = anonymous.open(path, method=method)
            if path in open_to_all:
                assert response.status_code in (200, 303, 400), (path, method)
                assert b"data-event" not in response.data
                continue
            # The API's catch-all answers every unknown address with a JSON 404.
            refusals = (404,) if rule.endpoint == "useraudit_api.unknown" else ()
            assert response.status_code in (302, 400, 401, 403, *refusals), (
                path,
                method,
                response.status_code,
            )
            if response.status_code == 302:
                location = response.headers["Location"]
                assert "/login" in location or location == "/accounts", (path, location)
            assert b"data-event" not in response.data and b"PK\x03\x04" not in response.data[:4]
            if "<account>" in rule.rule:
                response = viewer.open(path, method=method)
                assert response.status_code in (400, 403), (path, method, response.status_code)
                assert b"data-event" not in response.data


def test_every_post_route_refuses_a_missing_or_foreign_csrf_token(
    tenants_store: Any, security_users: Any, ui_spool: Any
) -> None:
    """Every route accepting POST answers 400 without a CSRF token, or with another session's."""
    from .conftest import csrf_token

    app = make_app(tenants_store, security_users)
    client = signed_in(app, "ann")
    foreign = csrf_token(app.test_client())
    posts = [r for r in app.url_map.iter_rules() if "POST" in (r.methods or set())]
    assert posts
    for rule in posts:
        path = rule.rule.replace("<account>", "tenant-a")
        for param, value in (
            ("<event_id>", "x"),
            ("<path:rest>", "x"),
            ("<alert_id>", "x"),
            ("<token_id>", "x"),
        ):
            path = path.replace(param, value)
        for data in ({}, {"csrf_token": foreign}, {"csrf_token": "x" * 90}):
            response = client.post(path, data={**data, "username": "ann", "password": "x"})
            assert response.status_code == 400, (path, data, response.status_code)
    assert client.get("/a/tenant-a/actions").status_code == 200  # still signed in


API_ROUTES = st.one_of(
    st.sampled_from(["/api/v1/events", "/api/v1/facets"]),
    st.builds(lambda i: f"/api/v1/events/{quote(i, safe='')}", st.text(max_size=40)),
)


def test_fuzzed_api_routes_params_and_cursors_never_show_tenant_b(
    tenants_store: Any, security_users: Any, b_values: dict[str, list[str]], ui_spool: Any, tmp_path
) -> None:
    """The API with tenant-a's token: any route, parameter, tenant-b cursor or id → no b data."""
    from useraudit.webapp.api_tokens import TokenStore

    tokens = TokenStore(tmp_path / "tokens.db")
    person = {"id": "ann", "name": "ann"}
    _, a_token = tokens.create("tenant-a", "fuzz", ("events:read",), created_by=person)
    _, b_token = tokens.create("tenant-b", "b", ("events:read",), created_by=person)
    app = make_app(tenants_store, security_users, USERAUDIT_API_TOKENS=str(tmp_path / "tokens.db"),
                   USERAUDIT_API_RATE="100000 per minute")  # fmt: skip
    client = app.test_client()
    # tenant-b's own API cursors, as its integrator sees them
    b_cursors: list[str] = []
    page = client.get(
        "/api/v1/events?period=30d&size=25", headers={"Authorization": f"Bearer {b_token}"}
    ).json
    while page.get("next_cursor") and len(b_cursors) < 3:
        b_cursors.append(page["next_cursor"])
        page = client.get(
            "/api/v1/events",
            query_string={"period": "30d", "size": 25, "cursor": page["next_cursor"]},
            headers={"Authorization": f"Bearer {b_token}"},
        ).json
    assert b_cursors, "tenant-b has several API pages"
    b_ids = b_values["event.id"]
    allowed = a_ids(tenants_store)
    routes = st.one_of(API_ROUTES, st.sampled_from([f"/api/v1/events/{i}" for i in b_ids[:20]]))
    headers = {"Authorization": f"Bearer {a_token}"}

    @FUZZ
    @given(route=routes, pairs=params(b_values), cursor=st.sampled_from([None, *b_cursors]))
    def check(route: str, pairs: list[tuple[str, str]], cursor: str | None) -> None:
        if cursor:
            pairs = [*pairs, ("cursor", cursor)]
        qs = urlencode(pairs, encoding="utf-8", errors="surrogatepass")
        response = client.get(f"{route}?{qs}", headers=headers)
        label = f"{route}?{qs}"
        assert response.status_code in (200, 400, 404), (label, response.status_code)
        assert response.is_json, label
        body = response.json
        if response.status_code != 200:
            assert body["error"]["code"] in ("invalid_query", "not_found"), label
            return
        events = body.get("events") or ([body["event"]] if "event" in body else [])
        for event in events:
            assert event["organization.id"] == "tenant-a", label
            assert event["event.id"] in allowed, label
        for values in (body.get("facets") or {}).values():
            for facet in values:
                assert MARKER not in str(facet["value"]) and B_NET not in str(facet["value"]), label

    check()
    # and any token that is not tenant-a's own gets nothing at all
    for fake in ("uat_", f"{a_token}x", a_token.replace("_", "-"), "Bearer", b_token[:-1]):
        response = client.get("/api/v1/events", headers={"Authorization": f"Bearer {fake}"})
        assert response.status_code == 401 and response.json["error"]["code"] == "unauthorized"


def test_another_accounts_admin_can_neither_see_nor_revoke_a_token(
    tenants_store: Any, security_users: Any, ui_spool: Any, tmp_path
) -> None:
    """tenant-b's admin: tenant-a's token is on no page of theirs, its revocation answers
    403 (tenant-a's address) or 404 (their own), and the token still opens the API."""
    from .conftest import csrf_token

    db = str(tmp_path / "tokens.db")
    app = make_app(tenants_store, security_users, USERAUDIT_API_TOKENS=db)
    ann, bea = signed_in(app, "ann"), signed_in(app, "bea")
    page = ann.get("/a/tenant-a/api-tokens").get_data(as_text=True)
    made = ann.post(
        "/a/tenant-a/api-tokens",
        data={"name": "a-siem", "scope": "events:read", "days": "30",
              "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page).group(1),
              "form_id": re.search(r'name="form_id" value="([^"]+)"', page).group(1)},
    )  # fmt: skip
    secret = re.search(r'id="token-secret"[^>]*value="(uat_[^"]+)"', made.get_data(as_text=True))
    assert secret, made.status_code
    a_id = secret.group(1).split("_")[1]
    own = bea.get("/a/tenant-b/api-tokens").get_data(as_text=True)
    assert a_id not in own and "a-siem" not in own
    bea_csrf = csrf_token(bea, "/a/tenant-b/api-tokens")
    for method, path, status in [
        ("GET", "/a/tenant-a/api-tokens", 403),
        ("GET", f"/a/tenant-a/api-tokens/{a_id}/revoke", 403),
        ("POST", f"/a/tenant-a/api-tokens/{a_id}/revoke", 403),
        ("GET", f"/a/tenant-b/api-tokens/{a_id}/revoke", 404),
        ("POST", f"/a/tenant-b/api-tokens/{a_id}/revoke", 404),
    ]:
        response = bea.open(path, method=method, data={"csrf_token": bea_csrf})
        assert response.status_code == status, (method, path, response.status_code)
        body = response.get_data(as_text=True).replace(path, "")  # the language links echo it
        assert a_id not in body and "a-siem" not in body
    api = app.test_client().get(
        "/api/v1/events", headers={"Authorization": f"Bearer {secret.group(1)}"}
    )
    assert api.status_code == 200 and api.get_json()["account"] == "tenant-a"
