"""Each quickstart, run from its page alone under its real server (gunicorn or uvicorn), shows
sign-in success, failure, sign-out and a settings change under its account: in the store and
on the admin UI's User actions page, for SQLite and for the real OpenSearch node."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import CSRF_RE

from tests.docs.runner import ROOT, start_page
from useraudit.store import open_store
from useraudit.store.query import Query

QUICKSTARTS = {
    "flask": ROOT / "docs" / "quickstart-flask.md",
    "django": ROOT / "docs" / "quickstart-django.md",
    "fastapi": ROOT / "docs" / "quickstart-fastapi.md",
}
# What every quickstart's traffic must leave behind, oldest first.
EXPECTED = [
    ("user.signed_in", "failure"),
    ("user.signed_in", "success"),
    ("bot_project.settings_updated", "success"),
    ("user.signed_out", "success"),
]
LABELS = ["User signed in", "Bot project settings updated", "User signed out"]


@pytest.fixture(params=["sqlite", "opensearch"])
def store_env(request: pytest.FixtureRequest) -> Any:
    """Nothing (the quickstart's default SQLite store) or USERAUDIT_STORE on the real node."""
    if request.param == "sqlite":
        yield {}
        return
    url = f"{request.getfixturevalue('opensearch_url')}?prefix=uat-qs-{uuid.uuid4().hex[:8]}"
    yield {"USERAUDIT_STORE": url}
    store = open_store(url)
    store.uninstall()  # type: ignore[attr-defined]
    store.close()


def _events(store_url: str) -> list[dict]:
    store = open_store(store_url)
    try:
        store.refresh()
        return sorted(store.iterate(Query("acme")), key=lambda d: d["@timestamp"])
    finally:
        store.close()


@pytest.mark.parametrize("framework", sorted(QUICKSTARTS))
def test_quickstart_end_to_end(framework: str, store_env: dict[str, str], tmp_path: Path) -> None:
    """The page's blocks as written (app, indexer, traffic, UI, doctor), then the four events
    under account acme in the store and on the User actions page."""
    page = QUICKSTARTS[framework]
    with start_page(page, tmp_path / framework, env=store_env) as run:
        run.run_all()
        # The page exports USERAUDIT_HOME="$PWD/.useraudit"; its default store lives there.
        default_store = f"sqlite:///{run.workdir / '.useraudit' / 'audit.db'}"
        store_url = store_env.get("USERAUDIT_STORE") or default_store
        deadline = time.monotonic() + 60
        while True:
            docs = _events(store_url)
            got = [(d["event.action"], d["event.outcome"]) for d in docs]
            if got == EXPECTED or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert got == EXPECTED, run.background_logs()
        failure = docs[0]
        assert failure["user.name"] == "alice" and failure.get("event.reason")
        assert all(d["organization.id"] == "acme" for d in docs)
        assert all(d.get("user.name") == "alice" for d in docs)
        assert "theme" in docs[2]["audit.comments"] and "dark" in docs[2]["audit.comments"]

        ui = f"http://127.0.0.1:{run.port(8080)}"
        with httpx.Client(base_url=ui, timeout=30, follow_redirects=True) as client:
            token = CSRF_RE.search(client.get("/login").text)
            assert token, "no sign-in form"
            signed_in = client.post(
                "/login",
                data={
                    "username": "admin",
                    "password": "correct horse battery staple",
                    "csrf_token": token.group(1),
                },
            )
            assert signed_in.status_code == 200, signed_in.text[:500]
            page_html = client.get("/a/acme/actions?period=24h").text
        for label in LABELS:
            assert label in page_html, label
        assert "alice" in page_html and 'data-testid="unassigned-notice"' not in page_html
