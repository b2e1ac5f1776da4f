"""The API tokens page: an account's USER_ADMIN creates, uses and revokes a token, on both stores.

The token is created through the page's form (CSRF token and all), used on
``/api/v1`` against a real store of each backend, and revoked with the
confirmation step; the audit trail and the logs are checked for the actions
and for the absence of the secret.
"""

from __future__ import annotations

import html as html_lib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from support import CSRF_RE

from .conftest import login, make_app


@pytest.fixture(params=["sqlite", "opensearch"])
def event_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The seeded OpenSearch index, or a SQLite store holding a few events of acme and globex."""
    if request.param == "opensearch":
        yield request.getfixturevalue("seeded_store")
        return
    from useraudit.indexer.enrich import Enricher
    from useraudit.store.sqlite import SQLiteStore

    store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    store.install()
    enrich = Enricher()
    docs = [
        enrich(
            {
                "event.id": f"tok-{account}-{i}",
                "@timestamp": f"2026-12-0{1 + i}T10:00:00.000Z",
                "event.action": "user.signed_in",
                "event.outcome": "success",
                "organization.id": account,
                "user.id": f"u-{account}-{i}",
                "user.name": f"{account}-person-{i}",
            }
        )
        for account in ("acme", "globex")
        for i in range(3)
    ]
    assert all(r.delivered for r in store.write(docs))
    store.refresh()
    yield store
    store.close()


@pytest.fixture
def tokens_db(tmp_path: Path) -> Path:
    return tmp_path / "api_tokens.db"


def admin_client(store: Any, users_db: Any, tokens_db: Path, user: str = "alice", **config: Any):
    app = make_app(store, users_db, USERAUDIT_API_TOKENS=str(tokens_db), **config)
    client = app.test_client()
    assert login(client, user).status_code == 302
    return client


def page(client: FlaskClient, account: str = "acme") -> str:
    response = client.get(f"/a/{account}/api-tokens")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


FORM_ID_RE = re.compile(r'name="form_id" value="([^"]+)"')


def create(client: FlaskClient, account: str = "acme", **fields: Any) -> Any:
    html = page(client, account)
    csrf, form_id = CSRF_RE.search(html), FORM_ID_RE.search(html)
    assert csrf and form_id
    data = {"name": "SIEM pull", "scope": ["events:read"], "days": "30", **fields}
    data |= {"csrf_token": csrf.group(1), "form_id": form_id.group(1)}
    return client.post(f"/a/{account}/api-tokens", data=data)


def test_sending_the_create_form_again_creates_nothing(
    seeded_store: Any, users_db: Any, audit_spool: Any, tokens_db: Path
) -> None:
    """A reload of the page that showed the secret sends the same form again: it is
    refused with 409, shows no secret, and the account still has one token."""
    from useraudit.webapp.api_tokens import TokenStore

    alice = admin_client(seeded_store, users_db, tokens_db)
    html = page(alice)
    csrf, form_id = CSRF_RE.search(html), FORM_ID_RE.search(html)
    assert csrf and form_id
    data = {"name": "SIEM pull", "scope": ["events:read"], "days": "30"}
    data |= {"csrf_token": csrf.group(1), "form_id": form_id.group(1)}
    first = alice.post("/a/acme/api-tokens", data=data)
    assert first.status_code == 200 and secret_of(first.get_data(as_text=True))
    again = alice.post("/a/acme/api-tokens", data=data)
    assert again.status_code == 409
    assert "already sent" in again.get_data(as_text=True)
    assert "uat_" not in again.get_data(
        as_text=True
    ) and 'data-testid="new-token"' not in again.get_data(as_text=True)
    assert len(TokenStore(tokens_db).list("acme")) == 1
    without_id = alice.post("/a/acme/api-tokens", data={**data, "form_id": ""})
    assert without_id.status_code == 409
    assert len(TokenStore(tokens_db).list("acme")) == 1


def secret_of(html: str) -> str:
    found = re.search(r'id="token-secret"[^>]*value="(uat_[^"]+)"', html)
    assert found, "the new token's secret is on the page"
    return html_lib.unescape(found.group(1))


def revoke(client: FlaskClient, token_id: str, account: str = "acme") -> Any:
    confirm = client.get(f"/a/{account}/api-tokens/{token_id}/revoke")
    assert confirm.status_code == 200
    text = confirm.get_data(as_text=True)
    assert 'data-testid="confirm-revoke"' in text
    csrf = CSRF_RE.search(text)
    assert csrf
    return client.post(
        f"/a/{account}/api-tokens/{token_id}/revoke", data={"csrf_token": csrf.group(1)}
    )


def test_create_use_revoke_then_401(
    event_store: Any, users_db: Any, audit_spool: Any, tokens_db: Path, caplog: Any
) -> None:
    """Created on the page, the token reads acme's events on /api/v1; the list shows its
    use; once revoked through the confirmation it answers 401; the secret appears once."""
    caplog.set_level(logging.DEBUG)
    client = admin_client(event_store, users_db, tokens_db)
    assert 'data-testid="no-tokens"' in page(client)
    made = create(client, name="SIEM pull", scope=["events:read", "alerts:read"], days="90")
    assert made.status_code == 200
    html = made.get_data(as_text=True)
    secret = secret_of(html)
    assert 'data-testid="copy-token"' in html and "will not be shown again" in html
    token_id = secret.split("_")[1]
    assert made.headers["Cache-Control"] == "no-store"

    api = client.get(
        "/api/v1/events?period=custom&from=2020-01-01T00:00",
        headers={"Authorization": f"Bearer {secret}"},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert api.status_code == 200, api.get_data(as_text=True)
    body = api.get_json()
    assert body["account"] == "acme" and body["total"] > 0
    assert {e["organization.id"] for e in body["events"]} == {"acme"}

    listed = page(client)
    assert secret not in listed and secret.split("_", 2)[2] not in listed  # shown once only
    row = listed[listed.index(f'data-token="{token_id}"') :]
    row = row[: row.index("</tr>")]
    assert 'data-state="active"' in row and "SIEM pull" in row
    assert "<code>events:read</code> <code>alerts:read</code>" in row
    assert "by alice" in row and "from 198.51.100.7" in row
    assert row.count(" UTC") == 3  # created, expires, last used

    gone = revoke(client, token_id)
    assert gone.status_code == 302 and gone.headers["Location"].endswith("/a/acme/api-tokens")
    again = client.get("/api/v1/events", headers={"Authorization": f"Bearer {secret}"})
    assert again.status_code == 401 and again.get_json()["error"]["code"] == "unauthorized"
    listed = page(client)
    assert 'data-state="revoked"' in listed and f'data-testid="revoke-{token_id}"' not in listed
    assert "revoked: it no longer opens the API" in listed
    # A revoked token's confirmation step just goes back to the list.
    assert client.get(f"/a/acme/api-tokens/{token_id}/revoke").status_code == 302

    events = [e for e in audit_spool() if e.get("audit.token.id") == token_id]
    assert [e["event.action"] for e in events] == [
        "audit_api_token.created",
        "audit_api_token.used_from_new_address",
        "audit_api_token.revoked",
    ]
    assert {e["organization.id"] for e in events} == {"acme"}
    assert events[0]["user.name"] == "alice" and events[2]["user.name"] == "alice"
    assert events[0]["audit.params"]["scopes"] == "events:read alerts:read"
    recorded = repr(audit_spool())
    assert secret not in recorded and secret.split("_", 2)[2] not in recorded
    assert secret.split("_", 2)[2] not in caplog.text
    assert secret.split("_", 2)[2].encode() not in tokens_db.read_bytes()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"name": "  "}, "Give the token a name", id="blank-name"),
        pytest.param({"name": "x" * 129}, "longer than 128", id="long-name"),
        pytest.param({"scope": []}, "at least one scope", id="no-scope"),
        pytest.param({"scope": ["events:write"]}, "at least one scope", id="unknown-scope"),
        pytest.param({"days": ""}, "when the token expires", id="never-expires"),
        pytest.param({"days": "3650"}, "when the token expires", id="ten-years"),
        pytest.param({"days": "-30"}, "when the token expires", id="negative"),
    ],
)
def test_bad_forms_are_refused_and_create_nothing(
    seeded_store: Any, users_db: Any, audit_spool: Any, tokens_db: Path, fields: dict, message: str
) -> None:
    """Each bad field gets a 400 naming it, the form keeps its values, no token is made."""
    client = admin_client(seeded_store, users_db, tokens_db)
    response = create(client, **fields)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'data-testid="token-errors"' in html and message in html
    assert 'id="token-secret"' not in html
    from useraudit.webapp.api_tokens import TokenStore

    assert TokenStore(tokens_db).list("acme") == []
    assert not [e for e in audit_spool() if e["event.action"].startswith("audit_api_token.")]


def test_creation_is_rate_limited(
    seeded_store: Any, users_db: Any, audit_spool: Any, tokens_db: Path
) -> None:
    """Past USERAUDIT_TOKEN_CREATE_LIMIT an admin's next creation is a 429 and makes nothing."""
    client = admin_client(
        seeded_store, users_db, tokens_db, USERAUDIT_TOKEN_CREATE_LIMIT="2 per hour"
    )
    assert [create(client, name=f"t{i}").status_code for i in range(2)] == [200, 200]
    refused = create(client, name="third")
    assert refused.status_code == 429
    from useraudit.webapp.api_tokens import TokenStore

    assert [t.name for t in TokenStore(tokens_db).list("acme")] == ["t0", "t1"]


def test_only_the_accounts_user_admin(
    seeded_store: Any, users_db: Any, audit_spool: Any, tokens_db: Path
) -> None:
    """A VIEWER of acme gets 403 on every token route; anonymous visitors go to sign in."""
    alice = admin_client(seeded_store, users_db, tokens_db)
    token_id = secret_of(create(alice).get_data(as_text=True)).split("_")[1]
    carol = admin_client(seeded_store, users_db, tokens_db, user="carol")
    csrf = CSRF_RE.search(carol.get("/accounts").get_data(as_text=True))
    assert csrf
    for method, path in [
        ("GET", "/a/acme/api-tokens"),
        ("POST", "/a/acme/api-tokens"),
        ("GET", f"/a/acme/api-tokens/{token_id}/revoke"),
        ("POST", f"/a/acme/api-tokens/{token_id}/revoke"),
    ]:
        data = {"csrf_token": csrf.group(1), "name": "x", "scope": "events:read", "days": "30"}
        response = carol.open(path, method=method, data=data if method == "POST" else None)
        assert response.status_code == 403, (method, path, response.status_code)
    anonymous = make_app(seeded_store, users_db, USERAUDIT_API_TOKENS=str(tokens_db)).test_client()
    assert "/login" in anonymous.get("/a/acme/api-tokens").headers["Location"]
    from useraudit.webapp.api_tokens import TokenStore

    assert [t.active for t in TokenStore(tokens_db).list("acme")] == [True]


def test_reachable_from_the_header_of_every_account_page(
    seeded_store: Any, users_db: Any, audit_spool: Any, tokens_db: Path
) -> None:
    """User actions, Security and the token page itself link to the account's token page."""
    client = admin_client(seeded_store, users_db, tokens_db)
    for path in ("/a/acme/actions", "/a/acme/security", "/a/acme/api-tokens"):
        html = client.get(path).get_data(as_text=True)
        header = html[html.index("<header") : html.index("</header>")]
        assert 'href="/a/acme/api-tokens"' in header or 'aria-current="page">API tokens' in header


def test_page_in_russian(
    seeded_store: Any, users_db: Any, audit_spool: Any, tokens_db: Path
) -> None:
    """With Russian chosen, the page, the new-token notice and the confirmation are Russian."""
    client = admin_client(seeded_store, users_db, tokens_db)
    client.get("/language/ru")  # remembered for alice: put back below
    try:
        made = create(client).get_data(as_text=True)
        assert '<html lang="ru">' in made
        assert "API-токены" in made and "Создать токен" in made and "Копировать" in made
        assert "больше не будет показан" in made
        token_id = secret_of(made).split("_")[1]
        confirm = client.get(f"/a/acme/api-tokens/{token_id}/revoke").get_data(as_text=True)
        assert "Отозвать токен" in confirm and "Отмена" in confirm
    finally:
        client.get("/language/en")
