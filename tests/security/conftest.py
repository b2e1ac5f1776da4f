"""Fixtures of the security suite: admin users and a signed-in test client.

The app factory, sign-in helper and password are the admin UI tests' own
(``tests/webapp/conftest.py``); only the user database differs, because the
accounts here are the suite's own.
"""

from __future__ import annotations

from typing import Any

import pytest
from webapp.conftest import PASSWORD, csrf_token, login, make_app  # noqa: F401 - re-exported


@pytest.fixture(scope="session")
def security_users(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``ann`` is USER_ADMIN of ``tenant-a`` only; ``bea`` of ``tenant-b``; ``cid`` of
    ``corpus``; ``vic`` has a VIEWER role on ``tenant-a``."""
    from useraudit.webapp.users import UserStore

    users = UserStore(tmp_path_factory.mktemp("security-users") / "webusers.db")
    for name, account, role in (
        ("ann", "tenant-a", "USER_ADMIN"),
        ("bea", "tenant-b", "USER_ADMIN"),
        ("cid", "corpus", "USER_ADMIN"),
        ("vic", "tenant-a", "VIEWER"),
    ):
        users.add(name, PASSWORD, email=f"{name}@example.com", full_name=name.title())
        users.grant(name, account, role)
    return users


def signed_in(app: Any, username: str) -> Any:
    client = app.test_client()
    response = login(client, username)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client


@pytest.fixture
def ui_spool(tmp_path: Any) -> Any:
    """Point the process-wide recorder (the UI's own sign-in/export events) at a fresh spool."""
    import useraudit

    return useraudit.configure(spool_dir=tmp_path / "ui-spool", durability="batch")


@pytest.fixture(scope="session")
def tenants_store(opensearch_url: str) -> Any:
    """A real OpenSearch index with 60 events of tenant-a and 60 of tenant-b (see tenants.py)."""
    import uuid

    from useraudit.store.opensearch import OpenSearchStore

    from .tenants import seed

    store = OpenSearchStore(opensearch_url, prefix=f"uat-sec-{uuid.uuid4().hex[:8]}")
    store.install()
    try:
        store.docs_by_account = seed(store)  # type: ignore[attr-defined]
        yield store
    finally:
        store.uninstall()
        store.close()


@pytest.fixture(scope="module", params=["opensearch", "sqlite"])
def any_store(request: Any, opensearch_url: str, tmp_path_factory: Any) -> Any:
    """Both stores, each seeded with tenants.py's events: the real OpenSearch node and SQLite."""
    from support.stores import fresh_store

    from .tenants import seed

    folder = tmp_path_factory.mktemp("any")
    with fresh_store(request.param, opensearch_url, folder, "uat-any") as store:
        seed(store)
        yield store
