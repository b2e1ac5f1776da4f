"""Log forging: line breaks, invisible and direction-changing characters.

A comment, project id, token id, reason, param or user name holding CR, LF,
NEL, LS/PS, zero-width or bidi controls can make an audit row read as two
rows, hide text, or show a name that is not the one stored. The policy
(docs/security.md, ``useraudit.indexer.enrich``): one-line fields get
U+FFFD for each; free text (comments, params values) keeps LF and tab,
turns the other line breaks into LF and replaces the invisible/bidi
characters except the zero-width (non-)joiners scripts need. Every repair
flags the event ``sanitized``.

Through a real host (Flask + the WSGI middleware), the real indexer, both
stores, the User actions page, the XLSX export and the JSON API; and an unauthenticated
failed sign-in's user name through the admin UI itself.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from openpyxl import load_workbook
from support.stores import fresh_store

from useraudit.indexer.shipper import Indexer
from useraudit.middleware.recorder import Recorder
from useraudit.middleware.wsgi import AuditMiddleware

from .conftest import csrf_token, make_app, signed_in

ACCOUNT = "corpus"
FORGING = {
    "CR": "\r",
    "LF": "\n",
    "CRLF": "\r\n",
    "NEL": "\x85",
    "LS": "\u2028",
    "PS": "\u2029",
    "ZWSP": "\u200b",
    "ZWNJ": "\u200c",
    "ZWJ": "\u200d",
    "LRM": "\u200e",
    "RLO": "\u202e",
    "LRI": "\u2066",
    "WJ": "\u2060",
    "BOM": "\ufeff",
    "ALM": "\u061c",
}
NEVER_IN_ONE_LINE = set("".join(FORGING.values()))
NEVER_IN_TEXT = NEVER_IN_ONE_LINE - {"\n", "\u200c", "\u200d"}
FAKE = "2026-01-01T00:00:00Z user.signed_in admin success"


def _forged(tag: str, char: str) -> str:
    return f"{tag}-start{char}{FAKE}{char}end"


@pytest.fixture(params=["opensearch", "sqlite"])
def store(request: Any, opensearch_url: str, tmp_path: Path) -> Iterator[Any]:
    with fresh_store(request.param, opensearch_url, tmp_path, "uat-forge") as s:
        yield s


def _host(rec: Recorder) -> Flask:
    app = Flask("forging-host")

    @app.post("/act/<tag>")
    def act(tag: str) -> Any:
        char = FORGING[tag]
        rec.record(
            "bot_project.settings_updated",
            account=ACCOUNT,
            user={"id": f"u-{tag}", "name": _forged(tag, char)},
            project=_forged(tag, char),
            token_id=_forged(tag, char),
            reason=_forged(tag, char),
            comments=_forged(tag, char),
            params={"note": _forged(tag, char), _forged(tag, char): "key"},
        )
        return "ok"

    app.wsgi_app = AuditMiddleware(app.wsgi_app, recorder=rec)  # type: ignore[method-assign]
    return app


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_forging_characters_never_reach_a_stored_row_the_page_or_the_export(
    store: Any, security_users: Any, ui_spool: Any, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    rec = Recorder(spool, durability="sync")
    client = _host(rec).test_client()
    for tag in FORGING:
        assert client.post(f"/act/{tag}").status_code == 200
    rec.close()
    with Indexer(spool, store) as ix:
        ix.drain()
    store.refresh()
    from useraudit.store.query import Query, SearchRequest

    docs = store.search(SearchRequest(Query(account=ACCOUNT), size=100, highlight=False)).hits
    assert len(docs) == len(FORGING)
    for doc in docs:
        assert "sanitized" in doc.get("audit.flags", []), doc["user.id"]
        for name, value in doc.items():
            free = name in ("audit.comments", "audit.params")
            for text in _strings(value):
                bad = (NEVER_IN_TEXT if free else NEVER_IN_ONE_LINE) & set(text)
                assert not bad, (doc["user.id"], name, text)
        # Nothing of what was sent is lost: only the forging characters changed.
        assert "end" in doc["audit.comments"] and "start" in doc["user.name"]
    lf = next(d for d in docs if d["user.id"] == "u-LF")
    assert lf["audit.comments"] == _forged("LF", "\n")  # a comment keeps its lines
    crlf = next(d for d in docs if d["user.id"] == "u-CRLF")
    assert crlf["audit.comments"] == _forged("CRLF", "\n")
    assert crlf["user.name"] == _forged("CRLF", "\ufffd\ufffd")

    from useraudit.webapp.api_tokens import TokenStore

    tokens = tmp_path / "tokens.db"
    app = make_app(store, security_users, USERAUDIT_API_TOKENS=str(tokens))
    admin = signed_in(app, "cid")
    html = admin.get(f"/a/{ACCOUNT}/actions?period=24h&size=100").get_data(as_text=True)
    assert set(html) & NEVER_IN_TEXT == set()  # comments may keep ZWNJ/ZWJ
    xlsx = admin.get(f"/a/{ACCOUNT}/actions.xlsx?period=24h").get_data()
    book = load_workbook(io.BytesIO(xlsx), read_only=True)
    cells = [
        str(c) for s in book.worksheets for row in s.iter_rows(values_only=True) for c in row if c
    ]
    assert not (set("".join(cells)) & NEVER_IN_TEXT)

    # The JSON API answers the stored, repaired values; JSON escapes nothing
    # of U+2028/2029 or the bidi controls, so the decoded text is checked.
    _, secret = TokenStore(tokens).create(
        ACCOUNT, "siem", ("events:read",), created_by={"id": "u-cid", "name": "cid"}
    )
    response = app.test_client().get(
        "/api/v1/events?period=24h&size=100", headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    events = response.json["events"]
    assert {e["user.id"] for e in events} == {f"u-{tag}" for tag in FORGING}
    for event in events:
        assert "sanitized" in event.get("audit.flags", [])
        for name, value in event.items():
            free = name in ("audit.comments", "audit.params")
            for text in _strings(value):
                assert not (NEVER_IN_TEXT if free else NEVER_IN_ONE_LINE) & set(text), (name, text)


def test_an_unauthenticated_failed_sign_in_cannot_forge_a_user_name(
    store: Any, security_users: Any, tmp_path: Path
) -> None:
    """The user name typed at sign-in is recorded for the failure; its CR/LF,
    NEL and bidi characters are stored as U+FFFD and the event flagged."""
    import useraudit

    spool = tmp_path / "ui-spool"
    recorder = useraudit.configure(spool_dir=spool, durability="sync")
    app = make_app(store, security_users, USERAUDIT_SELF_ACCOUNT=ACCOUNT)
    client = app.test_client()
    typed = "nobody\r\n" + FAKE + "\x85\u202eevil"
    response = client.post(
        "/login",
        data={"username": typed, "password": "wrong-password", "csrf_token": csrf_token(client)},
    )
    assert response.status_code == 401
    recorder.close()
    with Indexer(spool, store) as ix:
        ix.drain()
    store.refresh()
    from useraudit.store.query import Query, SearchRequest

    docs = store.search(SearchRequest(Query(account=ACCOUNT), size=10, highlight=False)).hits
    (doc,) = [d for d in docs if d["event.action"] == "user.signed_in"]
    assert doc["event.outcome"] == "failure"
    assert "sanitized" in doc["audit.flags"]
    assert not set(json.loads(json.dumps(doc["user.name"]))) & NEVER_IN_ONE_LINE
    assert doc["user.name"].startswith("nobody\ufffd\ufffd2026")
