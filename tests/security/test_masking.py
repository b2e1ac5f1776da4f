"""Secrets never reach the store: the corpus through record(), the real indexer,
both stores, the User actions page and the XLSX export.

The corpus (``secrets_corpus.py``) holds over 100 realistic secret-bearing
inputs: form fields and settings spelled every way host apps spell them,
nested params, header maps and pairs, ``useraudit.diff()`` results, URLs
with credentials in comments and reasons, quoted values with spaces, and
token shapes pasted into text.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from support.stores import fresh_store

from useraudit.indexer.shipper import Indexer
from useraudit.middleware.masking import MASK, Masker, is_secret_key_name
from useraudit.middleware.recorder import Recorder, new_event_id

from .conftest import make_app, signed_in
from .secrets_corpus import SECRET_KEYS, cases

ACCOUNT = "corpus"  # cid is its USER_ADMIN (tests/security/conftest.py)


def test_the_corpus_is_large_and_every_case_holds_a_secret() -> None:
    all_cases = cases()
    assert len(all_cases) >= 100
    assert sum(1 for c in all_cases if c.secrets) >= 100
    assert len({c.id for c in all_cases}) == len(all_cases)


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.id)
def test_masker_hides_every_secret_of_the_corpus(case: Any) -> None:
    """The masker alone, case by case (the stored checks below repeat it end to end)."""
    masker = Masker()
    out = json.dumps(
        [
            masker.params(case.params) if case.params is not None else None,
            masker.text(case.comments or ""),
            masker.text(case.reason or ""),
        ],
        ensure_ascii=False,
    )
    for secret in case.secrets:
        assert secret not in out, out
    for kept in case.keep:
        assert kept in out, out
    if case.secrets:
        assert MASK in out


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_keys_match_by_what_they_contain_in_any_case_and_spelling(key: str) -> None:
    assert is_secret_key_name(key)


@pytest.mark.parametrize(
    "key",
    [
        "token_id",
        "audit.token.id",
        "tokenId",
        "token_ids",
        "session_count",
        "sessions_count",
        "password_changed_at",
        "passwordExpiresAt",
        "api_key_name",
        "token_type",
        "secret_version",
        "name",
        "footprint",
        "pinned",
        "design",
        "author",
        "compass",
        "keyboard",
    ],
)
def test_identifiers_and_innocent_words_are_not_secret_keys(key: str) -> None:
    assert not is_secret_key_name(key)


@pytest.mark.parametrize("key", ["session_id", "sessionId", "JSESSIONID", "cookie_id"])
def test_a_session_id_is_the_credential_itself(key: str) -> None:
    assert is_secret_key_name(key)


def test_booleans_about_secrets_are_kept() -> None:
    assert Masker().params({"has_password": True, "password": "x", "otp": None}) == {
        "has_password": True,
        "password": MASK,
        "otp": None,
    }


@pytest.fixture(params=["opensearch", "sqlite"])
def corpus_store(request: Any, opensearch_url: str, tmp_path: Path) -> Iterator[Any]:
    with fresh_store(request.param, opensearch_url, tmp_path, "uat-mask") as store:
        yield store


def _cells(xlsx: bytes) -> str:
    book = load_workbook(io.BytesIO(xlsx), read_only=True)
    return "\n".join(
        str(cell)
        for sheet in book.worksheets
        for row in sheet.iter_rows(values_only=True)
        for cell in row
        if cell is not None
    )


def _pages(client: Any, first: str) -> Iterator[str]:
    url: str | None = first
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.status_code
        page = response.get_data(as_text=True)
        yield page
        found = re.search(r'rel="next" data-testid="next" href="([^"]+)"', page)
        url = found.group(1).replace("&amp;", "&") if found else None


def test_no_secret_of_the_corpus_is_stored_shown_or_exported(
    corpus_store: Any, security_users: Any, ui_spool: Any, tmp_path: Path
) -> None:
    """Every case recorded, shipped by the real indexer into the store, read back,
    shown on the User actions page and exported: no secret anywhere, every
    identifier kept."""
    all_cases = cases()
    spool = tmp_path / "spool"
    rec = Recorder(spool, durability="sync")
    ids = {}
    for case in all_cases:
        ids[case.id] = eid = new_event_id()
        rec.record(
            "environment_variable.updated",
            account=ACCOUNT,
            user={"id": "u-host", "name": "host"},
            event_id=eid,
            **case.record_kwargs(),
        )
    rec.close()
    assert rec.stats.errors == 0
    with Indexer(spool, corpus_store) as ix:
        ix.drain()
    corpus_store.refresh()
    docs = corpus_store.get(list(ids.values()))
    assert len(docs) == len(all_cases)

    app = make_app(corpus_store, security_users)
    client = signed_in(app, "cid")
    shown = "\n".join(_pages(client, f"/a/{ACCOUNT}/actions?period=24h&size=100"))
    export = client.get(f"/a/{ACCOUNT}/actions.xlsx?period=24h")
    assert export.status_code == 200
    exported = _cells(export.get_data())

    for case in all_cases:
        stored = json.dumps(docs[ids[case.id]], ensure_ascii=False)
        for secret in case.secrets:
            assert secret not in stored, (case.id, "store")
            assert secret not in shown, (case.id, "page")
            assert secret not in exported, (case.id, "export")
        for kept in case.keep:
            assert kept in stored, (case.id, kept)
    assert MASK in shown and MASK in exported


def test_the_request_path_is_masked_too(tmp_path: Path) -> None:
    """A path parameter or matrix parameter carrying a credential is masked
    in url.path, like any other text."""
    from useraudit.middleware import context
    from useraudit.spool import iter_all

    token = context.current.set(
        context.RequestContext(
            path="/app;jsessionid=Sx900-path-q7Zp/reset/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0",
        )
    )
    rec = Recorder(tmp_path / "spool", durability="sync", account_id="acme")
    try:
        assert rec.record("user.signed_in", user="u1") is not None
    finally:
        context.current.reset(token)
        rec.close()
    (raw,) = list(iter_all(tmp_path / "spool"))
    built = json.loads(raw)
    assert "Sx900" not in built["url.path"] and "eyJhbGci" not in built["url.path"]
    assert built["url.path"].startswith("/app;jsessionid=[MASKED]")
