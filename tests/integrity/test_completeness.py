"""The completeness mark: measured from the spool, published per spool, shown in the UI."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook

from useraudit.indexer.completeness import CompletenessStage, spool_mark
from useraudit.indexer.enrich import Enricher
from useraudit.indexer.shipper import Indexer
from useraudit.middleware.recorder import Recorder
from useraudit.store.base import Store
from useraudit.store.completeness import complete_up_to, publish


def record(spool: Path, n: int) -> list[float]:
    rec = Recorder(spool, durability="sync")
    times = []
    for i in range(n):
        times.append(time.time())
        rec.record("user.signed_in", account="acme", user={"id": f"u{i}"})
        time.sleep(0.01)
    rec.close()
    return times


def test_the_mark_is_the_oldest_unshipped_event(spool_dir: Path) -> None:
    assert spool_mark(spool_dir, 1000.0) == 999.0  # nothing waits: now minus the allowance
    times = record(spool_dir, 3)
    # A minute later, the first of them still holds the mark back.
    mark = spool_mark(spool_dir, time.time() + 60)
    assert times[0] - 0.01 <= mark <= times[0] + 0.01


def test_the_indexer_publishes_and_the_oldest_spool_wins(
    store: Store, spool_dir: Path, tmp_path: Path, enricher: Enricher
) -> None:
    other = tmp_path / "other-spool"
    waiting = record(other, 2)  # a host whose indexer is not running
    time.sleep(1.5)
    record(spool_dir, 4)
    with Indexer(
        spool_dir, store, enricher=enricher, stages=[CompletenessStage(store, spool_dir, every=0)]
    ) as ix:
        ix.drain()
    after = time.time()
    mark = complete_up_to(store)
    assert mark is not None
    assert after - 5 <= mark.timestamp() <= after  # caught up: almost now
    # The other spool's mark, once published, holds the store's mark back.
    publish(store, other, spool_mark(other, after), after)
    held = complete_up_to(store)  # published to the second, rounded down
    assert held is not None and waiting[0] - 1 <= held.timestamp() <= waiting[0]


def signed_in_as_alice(app: Flask) -> FlaskClient:
    """A client of ``app`` with alice signed in."""
    from support import CSRF_RE

    client = app.test_client()
    token = CSRF_RE.search(client.get("/login").get_data(as_text=True))
    assert token
    answer = client.post(
        "/login",
        data={
            "username": "alice",
            "password": "correct horse battery staple",
            "csrf_token": token.group(1),
        },
    )
    assert answer.status_code == 302
    return client


@pytest.fixture
def ui(store: Store, spool_dir: Path, enricher: Enricher, tmp_path: Path) -> FlaskClient:
    """The admin UI on ``store``, alice signed in as an admin of acme."""

    from useraudit.webapp.app import create_app
    from useraudit.webapp.users import UserStore

    record(spool_dir, 2)
    with Indexer(spool_dir, store, enricher=enricher) as ix:
        ix.drain()
    store.refresh()
    users = UserStore(tmp_path / "webusers.db")
    users.add("alice", "correct horse battery staple")
    users.grant("alice", "acme", "USER_ADMIN")
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SESSION_COOKIE_SECURE": False,
            "USERAUDIT_STORE": store,
            "USERAUDIT_USERS": users,
        }
    )
    return signed_in_as_alice(app)


def test_the_page_shows_the_mark_and_a_banner_when_indexing_lags(
    store: Store, ui: FlaskClient, spool_dir: Path
) -> None:
    now = time.time()
    publish(store, spool_dir, now - 2, now)
    page = ui.get("/a/acme/actions").get_data(as_text=True)
    shown = datetime.fromtimestamp(now - 2, UTC).replace(microsecond=0)
    assert f"complete up to {shown:%H:%M:%S}" in page
    assert 'data-testid="indexing-lag"' not in page
    publish(store, spool_dir, now - 3600, now)
    page = ui.get("/a/acme/actions").get_data(as_text=True)
    assert 'data-testid="indexing-lag"' in page
    old = datetime.fromtimestamp(now - 3600, UTC).replace(microsecond=0)
    assert f"Indexing is behind: actions after {old:%Y-%m-%d %H:%M:%S}" in page
    xlsx = ui.get("/a/acme/actions.xlsx")
    about = dict(load_workbook(io.BytesIO(xlsx.data))["Filters"].iter_rows(values_only=True))
    assert about["Complete up to"] == old.replace(tzinfo=None)  # an Excel time, in UTC here
    assert (datetime.now(UTC) - old) > timedelta(minutes=59)


def test_the_api_carries_the_mark(
    store: Store, spool_dir: Path, enricher: Enricher, tmp_path: Path
) -> None:
    from useraudit.webapp.api_tokens import TokenStore
    from useraudit.webapp.app import create_app
    from useraudit.webapp.users import UserStore

    record(spool_dir, 1)
    with Indexer(spool_dir, store, enricher=enricher) as ix:
        ix.drain()
    store.refresh()
    tokens = TokenStore(tmp_path / "tokens.db")
    _, secret = tokens.create("acme", "siem", ("events:read",), created_by={"id": "u-alice"})
    client = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "USERAUDIT_STORE": store,
            "USERAUDIT_USERS": UserStore(tmp_path / "webusers.db"),
            "USERAUDIT_API_TOKENS": str(tmp_path / "tokens.db"),
        }
    ).test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    before = client.get("/api/v1/events", headers=headers).get_json()
    assert before["complete_up_to"] is None and before["total"] == 1
    now = time.time()
    publish(store, spool_dir, now - 30, now)
    after = client.get("/api/v1/events", headers=headers).get_json()
    expected = datetime.fromtimestamp(now - 30, UTC).replace(microsecond=0)
    assert datetime.fromisoformat(after["complete_up_to"]) == expected


def record_for(spool: Path, account: str, n: int) -> list[float]:
    rec = Recorder(spool, durability="sync")
    times = []
    for i in range(n):
        times.append(time.time())
        rec.record("user.signed_in", account=account, user={"id": f"u{i}"})
        time.sleep(0.01)
    rec.close()
    return times


def test_each_account_has_its_own_mark(
    store: Store, spool_dir: Path, tmp_path: Path, enricher: Enricher
) -> None:
    """acme's events wait in a spool whose indexer is behind; globex's are all shipped."""
    from useraudit.webapp.api_tokens import TokenStore
    from useraudit.webapp.app import create_app
    from useraudit.webapp.users import UserStore

    behind = tmp_path / "behind-spool"
    waiting = record_for(behind, "acme", 2)
    time.sleep(1.5)
    record_for(spool_dir, "globex", 3)
    record_for(spool_dir, "acme", 1)
    shipping = CompletenessStage(store, spool_dir, every=0)
    with Indexer(spool_dir, store, enricher=enricher, stages=[shipping]) as ix:
        ix.drain()
    # The indexer of the other spool publishes between batches, its backlog unshipped.
    slow = CompletenessStage(store, behind, every=0)
    slow.flush()
    now = time.time()

    acme, globex = complete_up_to(store, "acme"), complete_up_to(store, "globex")
    assert acme is not None and waiting[0] - 1 <= acme.timestamp() <= waiting[0]
    assert globex is not None and now - 5 <= globex.timestamp() <= now  # not held back by acme
    assert complete_up_to(store) == acme  # the store's mark: the oldest of all
    assert complete_up_to(store, "initech") == globex  # no events waiting anywhere

    users = UserStore(tmp_path / "webusers.db")
    users.add("alice", "correct horse battery staple")
    for account in ("acme", "globex"):
        users.grant("alice", account, "USER_ADMIN")
    tokens = TokenStore(tmp_path / "tokens.db")
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SESSION_COOKIE_SECURE": False,
            "USERAUDIT_STORE": store,
            "USERAUDIT_USERS": users,
            "USERAUDIT_API_TOKENS": str(tmp_path / "tokens.db"),
            "USERAUDIT_METRICS": True,
            "USERAUDIT_COMPLETENESS_LAG": 5,
        }
    )
    ui = signed_in_as_alice(app)
    time.sleep(max(0.0, waiting[0] + 6 - time.time()))  # acme's backlog is older than the lag
    for account, lags in (("acme", True), ("globex", False)):
        shipping.flush()  # both indexers publish again, as they do every few seconds
        slow.flush()
        mark = complete_up_to(store, account)
        assert mark is not None
        page = ui.get(f"/a/{account}/actions").get_data(as_text=True)
        assert f"complete up to {mark:%H:%M:%S}" in page
        assert ('data-testid="indexing-lag"' in page) is lags, account
        xlsx = ui.get(f"/a/{account}/actions.xlsx")
        about = dict(load_workbook(io.BytesIO(xlsx.data))["Filters"].iter_rows(values_only=True))
        assert about["Complete up to"] == mark.replace(tzinfo=None)
        _, secret = tokens.create(account, "siem", ("events:read",), created_by={"id": "u-alice"})
        api = ui.get("/api/v1/events", headers={"Authorization": f"Bearer {secret}"}).get_json()
        assert datetime.fromisoformat(api["complete_up_to"]) == mark
    acme, globex = complete_up_to(store, "acme"), complete_up_to(store, "globex")
    assert acme is not None and globex is not None
    metrics = ui.get("/metrics").get_data(as_text=True)
    gauges = {
        row.split('"')[1]: float(row.rsplit(" ", 1)[1])
        for row in metrics.splitlines()
        if row.startswith("useraudit_account_complete_up_to_seconds{")
    }
    assert gauges == {"acme": acme.timestamp(), "globex": globex.timestamp()}
