"""A damaged or locked SQLite file behind the UI: the designed "unavailable" page, no traceback.

The operator's log names the file and what to do; the browser gets neither
the path nor the exception.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from useraudit.store.sqlite import SQLiteStore

from .conftest import login, make_app


@pytest.fixture(params=["damaged", "locked"])
def broken_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[SQLiteStore, str]]:
    """A SQLite store whose file is garbage, or locked by another process; and what the log says."""
    path = tmp_path / "audit.db"
    if request.param == "damaged":
        path.write_bytes(b"\x00not a database" * 1000)
        yield SQLiteStore(f"sqlite:///{path}"), "is damaged or not a useraudit database"
        return
    setup = SQLiteStore(f"sqlite:///{path}")
    setup.install()
    setup.close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")  # as a maintenance job holding the file would
    try:
        yield SQLiteStore(f"sqlite:///{path}", busy_timeout_ms=200), "is locked by another process"
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_broken_sqlite_store_gives_the_designed_page(
    broken_store: tuple[SQLiteStore, str],
    users_db: Any,
    audit_spool: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The actions page and the export answer 503 with the "unavailable" state; the log, not
    the page, names the file and what is wrong with it."""
    store, logged = broken_store
    client = make_app(store, users_db).test_client()
    assert login(client, "alice").status_code == 302
    with caplog.at_level(logging.WARNING):
        page = client.get("/a/acme/actions?period=30d")
        export = client.get("/a/acme/actions.xlsx?period=30d")
    for response in (page, export):
        body = response.get_data(as_text=True)
        assert response.status_code == 503, body[:500]
        assert response.mimetype == "text/html"
        assert "Traceback" not in body and str(store.path) not in body
    assert 'data-testid="store-error"' in page.get_data(as_text=True)
    assert "Try again" in export.get_data(as_text=True)
    named = [r.getMessage() for r in caplog.records if str(store.path) in r.getMessage()]
    assert named and all(logged in message for message in named), caplog.text
    store.close()


class RefusingStore(SQLiteStore):
    """A real SQLite store that refuses every search as a store refuses a query it cannot
    run (OpenSearch answering 400, FTS5 rejecting a MATCH). Stand-in for that refusal:
    no filter the parser accepts makes either real store refuse it today."""

    def search(self, request: Any) -> Any:
        from useraudit.store import QueryError

        raise QueryError("the audit log cannot run this search: %(reason)s", reason="too complex")


def test_a_search_the_store_refuses_is_shown_as_an_input_error_with_export_disabled(
    tmp_path: Path, users_db: Any, audit_spool: Any
) -> None:
    """The page renders its head while the store searches; a refusal that arrives after
    that still gives one page, 400, the reason, and no export button linking to a file."""
    import re

    store = RefusingStore(f"sqlite:///{tmp_path / 'audit.db'}")
    store.install()
    client = make_app(store, users_db).test_client()
    assert login(client, "alice").status_code == 302
    response = client.get("/a/acme/actions?period=30d&q=reviewer")
    html = response.get_data(as_text=True)
    assert response.status_code == 400, html[:500]
    assert html.count("<html") == 1 and html.count('class="filters"') == 1
    assert 'data-testid="query-error"' in html and "too complex" in html
    assert 'data-testid="results"' not in html
    buttons = re.findall(r'<a [^>]*data-testid="export[^"]*"[^>]*>', html)
    assert len(buttons) == 3
    assert all('aria-disabled="true"' in b and "href=" not in b for b in buttons)
    assert 'value="reviewer"' in html  # the input is kept
    store.close()
