"""The JSON API on the real seeded OpenSearch index: tokens, scopes, isolation, errors."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from useraudit.cli import main as cli
from useraudit.store.query import Query

from .conftest import make_app

ALICE = {"id": "u-alice", "name": "alice", "email": "alice@example.com"}


@pytest.fixture
def api(seeded_store: Any, users_db: Any, audit_spool: Any, tmp_path: Path):
    from useraudit.webapp.api_tokens import TokenStore

    path = tmp_path / "tokens.db"
    app = make_app(seeded_store, users_db, USERAUDIT_API_TOKENS=str(path))
    return app.test_client(), TokenStore(path), audit_spool


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def check_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json and response.json["error"]["code"] == code
    assert response.json["error"]["message"]


def test_without_a_valid_token_every_route_says_401_in_json(api) -> None:
    client, _, _ = api
    for path in ("/api/v1/events", "/api/v1/facets", "/api/v1/events/x"):
        check_error(client.get(path), 401, "unauthorized")
        check_error(client.get(path, headers=bearer("uat_nope_nope")), 401, "unauthorized")
        check_error(client.get(path, headers={"Authorization": "Basic Zm9vOmJhcg=="}), 401,
                    "unauthorized")  # fmt: skip


def test_events_are_the_tokens_account_only_with_the_pages_filters(api, seeded_store) -> None:
    client: FlaskClient
    client, tokens, _ = api
    _, secret = tokens.create("acme", "siem", ("events:read",), created_by=ALICE)
    # an account parameter is not a filter: the token decides
    got = client.get("/api/v1/events?period=30d&account=globex&size=100", headers=bearer(secret))
    assert got.status_code == 200
    body = got.json
    assert body["account"] == "acme" and len(body["events"]) == 100
    assert {e["organization.id"] for e in body["events"]} == {"acme"}
    since = datetime.now(UTC) - timedelta(days=30)
    assert body["total"] == seeded_store.count(Query(account="acme", start=since))
    failures = client.get("/api/v1/events?period=30d&result=failure", headers=bearer(secret)).json
    assert failures["total"] > 0
    assert {e["event.outcome"] for e in failures["events"]} == {"failure"}
    # the other account's canary never shows, whatever the query
    for q in ("globexsecret", "globexsecret OR *", '"globexsecret"'):
        r = client.get("/api/v1/events", query_string={"period": "30d", "q": q},
                       headers=bearer(secret))  # fmt: skip
        assert r.status_code in (200, 400)
        if r.status_code == 200:
            assert all("globexsecret" not in json.dumps(e) for e in r.json["events"])


def test_cursors_walk_every_page_once(api) -> None:
    client, tokens, _ = api
    _, secret = tokens.create("acme", "pager", ("events:read",), created_by=ALICE)
    first = client.get("/api/v1/events?period=30d&result=failure&size=25", headers=bearer(secret))
    total, seen, cursor = first.json["total"], [], None
    page = first.json
    while True:
        seen += [e["event.id"] for e in page["events"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
        page = client.get("/api/v1/events", query_string={"period": "30d", "result": "failure",
                          "size": 25, "cursor": cursor}, headers=bearer(secret)).json  # fmt: skip
    assert len(seen) == len(set(seen)) == total
    check_error(client.get("/api/v1/events?cursor=AAAA", headers=bearer(secret)), 400,
                "invalid_query")  # fmt: skip
    check_error(client.get("/api/v1/events?size=7", headers=bearer(secret)), 400, "invalid_query")
    check_error(client.get("/api/v1/events?ip=nope", headers=bearer(secret)), 400, "invalid_query")


def test_one_event_by_id_only_in_its_account(api, seeded_store) -> None:
    client, tokens, _ = api
    _, secret = tokens.create("acme", "one", ("events:read",), created_by=ALICE)
    page = seeded_store.search(
        __import__("useraudit.store.query", fromlist=["SearchRequest"]).SearchRequest(
            Query(account="globex"), size=1
        )
    )
    globex_id = page.hits[0]["event.id"]
    acme_id = client.get("/api/v1/events?size=25", headers=bearer(secret)).json["events"][0]
    mine = client.get(f"/api/v1/events/{acme_id['event.id']}", headers=bearer(secret))
    assert mine.status_code == 200 and mine.json["event"]["event.id"] == acme_id["event.id"]
    check_error(client.get(f"/api/v1/events/{globex_id}", headers=bearer(secret)), 404, "not_found")


def test_facets(api) -> None:
    client, tokens, _ = api
    _, secret = tokens.create("acme", "facets", ("events:read",), created_by=ALICE)
    body = client.get("/api/v1/facets?period=30d", headers=bearer(secret)).json
    assert body["total"] > 0 and body["facets"]["result"]
    assert sum(f["count"] for f in body["facets"]["result"]) == body["total"]


def test_scopes_expiry_and_revocation(api) -> None:
    client, tokens, _ = api
    alerts_only, secret = tokens.create("acme", "alerts", ("alerts:read",), created_by=ALICE)
    check_error(client.get("/api/v1/events", headers=bearer(secret)), 403, "insufficient_scope")
    token, secret = tokens.create("acme", "short", ("events:read",), created_by=ALICE)
    assert client.get("/api/v1/events", headers=bearer(secret)).status_code == 200
    with sqlite3.connect(tokens.path) as db:
        db.execute("UPDATE api_tokens SET expires_at = ? WHERE id = ?", (time.time() - 1, token.id))
    check_error(client.get("/api/v1/events", headers=bearer(secret)), 401, "unauthorized")
    token, secret = tokens.create("acme", "revoked", ("events:read",), created_by=ALICE)
    assert tokens.revoke(token.id, by=ALICE)
    check_error(client.get("/api/v1/events", headers=bearer(secret)), 401, "unauthorized")
    # a wrong secret for a real id is refused too
    check_error(client.get("/api/v1/events", headers=bearer(f"uat_{alerts_only.id}_x")), 401,
                "unauthorized")  # fmt: skip


def test_rate_limited_per_token(seeded_store, users_db, audit_spool, tmp_path) -> None:
    from useraudit.webapp.api_tokens import TokenStore

    app = make_app(seeded_store, users_db, USERAUDIT_API_TOKENS=str(tmp_path / "t.db"),
                   USERAUDIT_API_RATE="3 per minute")  # fmt: skip
    tokens = TokenStore(tmp_path / "t.db")
    _, one = tokens.create("acme", "a", ("events:read",), created_by=ALICE)
    _, other = tokens.create("acme", "b", ("events:read",), created_by=ALICE)
    client = app.test_client()
    assert [client.get("/api/v1/events", headers=bearer(one)).status_code for _ in range(3)] == [
        200, 200, 200
    ]  # fmt: skip
    check_error(client.get("/api/v1/events", headers=bearer(one)), 429, "rate_limited")
    assert client.get("/api/v1/events", headers=bearer(other)).status_code == 200


def test_tokens_are_stored_hashed_and_audited(api) -> None:
    client, tokens, read_audit = api
    token, secret = tokens.create("acme", "audited", ("events:read",), created_by=ALICE)
    raw = Path(tokens.path).read_bytes()
    assert secret.encode() not in raw and secret.split("_", 2)[2].encode() not in raw
    for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
        r = client.get(
            "/api/v1/events", headers=bearer(secret), environ_base={"REMOTE_ADDR": address}
        )
        assert r.status_code == 200
    assert tokens.get(token.id).last_used_ip == "10.0.0.2"
    assert tokens.get(token.id).last_used_at is not None
    tokens.revoke(token.id, by=ALICE)
    events = [e for e in read_audit() if e.get("audit.token.id") == token.id]
    actions = [e["event.action"] for e in events]
    assert actions == ["audit_api_token.created", "audit_api_token.used_from_new_address",
                       "audit_api_token.used_from_new_address",
                       "audit_api_token.revoked"]  # fmt: skip
    assert {e["organization.id"] for e in events} == {"acme"}
    assert [e["audit.params"]["address"] for e in events[1:3]] == ["10.0.0.1", "10.0.0.2"]


def test_cli_creates_lists_and_revokes_for_a_user_admin(
    tmp_path, users_db, audit_spool, monkeypatch
):
    monkeypatch.setenv("USERAUDIT_WEBUSERS", str(users_db.path))
    db = str(tmp_path / "cli-tokens.db")
    runner = CliRunner()
    refused = runner.invoke(cli, ["api-tokens", "create", "acme", "--by", "dave", "--name", "x",
                                  "--scope", "events:read", "--tokens-db", db])  # fmt: skip
    assert refused.exit_code == 1 and "not USER_ADMIN" in refused.output
    create = ["api-tokens", "create", "acme", "--by", "alice", "--name", "siem"]
    made = runner.invoke(
        cli, [*create, "--scope", "events:read", "--days", "30", "--tokens-db", db]
    )
    assert made.exit_code == 0, made.output
    created = json.loads(made.output)
    assert created["token"].startswith("uat_") and created["scopes"] == ["events:read"]
    listed = runner.invoke(cli, ["api-tokens", "list", "acme", "--tokens-db", db])
    row = json.loads(listed.output)
    assert "token" not in row and row["active"] is True and row["created_by"] == "alice"
    gone = runner.invoke(cli, ["api-tokens", "revoke", "acme", created["id"], "--by", "alice",
                               "--tokens-db", db])  # fmt: skip
    assert gone.exit_code == 0
    listed = runner.invoke(cli, ["api-tokens", "list", "acme", "--tokens-db", db])
    assert json.loads(listed.output)["active"] is False


def test_alerts_need_their_scope_and_stay_in_the_account(api, seeded_store) -> None:
    from useraudit.store.alerts import Alert, alert_id, detection_store

    client, tokens, _ = api
    alerts = detection_store(seeded_store)
    alerts.install()
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    made = {}
    for account in ("acme", "globex"):
        ident = alert_id(account, "api_test", f"subject-{account}-{time.time_ns()}", 600)
        made[account] = ident
        alerts.upsert([Alert(ident, account, "api_test", "high", f"s-{account}", "API test",
                             now, now, ["e1"])])  # fmt: skip
    alerts.refresh()
    _, events_only = tokens.create("acme", "events", ("events:read",), created_by=ALICE)
    check_error(client.get("/api/v1/alerts", headers=bearer(events_only)), 403,
                "insufficient_scope")  # fmt: skip
    _, secret = tokens.create("acme", "alerts", ("alerts:read",), created_by=ALICE)
    listed = client.get("/api/v1/alerts?status=open", headers=bearer(secret))
    assert listed.status_code == 200
    ids = {a["id"] for a in listed.json["alerts"]}
    assert made["acme"] in ids and made["globex"] not in ids
    assert {a["account"] for a in listed.json["alerts"]} == {"acme"}
    one = client.get(f"/api/v1/alerts/{made['acme']}", headers=bearer(secret))
    assert one.status_code == 200 and one.json["alert"]["rule"] == "api_test"
    check_error(client.get(f"/api/v1/alerts/{made['globex']}", headers=bearer(secret)), 404,
                "not_found")  # fmt: skip
    check_error(client.get("/api/v1/alerts?status=bogus", headers=bearer(secret)), 400,
                "invalid_query")  # fmt: skip
