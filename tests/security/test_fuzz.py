"""Hypothesis fuzzing of record(), the WSGI/ASGI middleware and the UI's query parsing.

The property everywhere: no uncaught exception, no swallowed internal error
(the autouse fixture in tests/conftest.py fails any test whose record()
swallowed one), no 500. Examples are bounded (max_examples 200) so the
suite stays fast. tests/middleware/test_inputs.py already fuzzes header
*text* and the client-IP rule; here headers are arbitrary *bytes*, methods
and paths arbitrary, and record()'s arguments arbitrary objects.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from middleware.test_asgi import http_scope, run
from middleware.test_wsgi import make_environ
from werkzeug.datastructures import MultiDict

from useraudit.indexer.enrich import _UNSAFE, Enricher
from useraudit.middleware import _failsafe
from useraudit.middleware.asgi import AuditMiddleware as ASGIMiddleware
from useraudit.middleware.context import current
from useraudit.middleware.recorder import Recorder
from useraudit.middleware.wsgi import AuditMiddleware
from useraudit.spool import iter_all
from useraudit.store.query import (
    Query,
    QueryError,
    decode_cursor,
    parse_text,
    to_fts5,
    to_simple_query_string,
)
from useraudit.webapp.filters import MULTI, Filters

from .conftest import make_app, signed_in

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Every code point, lone surrogates included (what undecodable bytes become).
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=200)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    ANY_TEXT,
    st.binary(max_size=50),
)
PARAMS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.tuples(inner, inner),
        st.dictionaries(
            st.one_of(ANY_TEXT, st.integers(), st.tuples(st.integers())), inner, max_size=5
        ),
    ),
    max_leaves=40,
)
PERSON = st.one_of(
    st.none(),
    ANY_TEXT,
    st.integers(),
    st.dictionaries(
        st.sampled_from(["id", "name", "email", "full_name", "x"]), SCALARS, max_size=5
    ),
)
TIMESTAMP = st.one_of(
    st.none(),
    st.datetimes(timezones=st.timezones()),
    st.datetimes(),
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(1, 1, 3), timezones=st.timezones()
    ),
    ANY_TEXT,
    st.integers(),
    st.floats(),
)


@pytest.fixture
def rec(spool_dir: Path) -> Any:
    r = Recorder(spool_dir, durability="batch")
    yield r
    r.close()


def _assert_clean(doc: dict[str, Any]) -> None:
    text = json.dumps(doc, ensure_ascii=False)
    assert not _UNSAFE.search(text.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))


def test_record_never_raises_and_every_event_enriches_clean(rec: Recorder, spool_dir: Path) -> None:
    """Arbitrary action, text, params, people, timestamps: an id back,
    and a clean stored document."""
    ids: list[str] = []

    @FUZZ
    @given(
        action=ANY_TEXT,
        comments=st.one_of(st.none(), ANY_TEXT),
        params=PARAMS,
        user=PERSON,
        target=PERSON,
        impersonator=PERSON,
        project=st.one_of(st.none(), ANY_TEXT, st.integers()),
        reason=st.one_of(st.none(), ANY_TEXT),
        outcome=st.one_of(st.none(), ANY_TEXT),
        timestamp=TIMESTAMP,
    )
    def check(**kw: Any) -> None:
        action = kw.pop("action")
        event_id = rec.record(action, target_user=kw.pop("target"), account="fuzz", **kw)
        assert event_id is not None, "record() refused the event"
        ids.append(event_id)

    check()
    rec.flush()
    enrich = Enricher()
    spooled = [json.loads(p) for p in iter_all(spool_dir)]
    assert [e["event.id"] for e in spooled] == ids
    for raw in spooled:
        _assert_clean(enrich(raw))


HEADER_BYTES = st.binary(max_size=300)


def test_wsgi_middleware_with_arbitrary_header_bytes_paths_and_methods(rec: Recorder) -> None:
    """Any bytes in any header, any path and method: the app's own status
    and body, no internal error."""
    before = _failsafe.stats.internal_errors

    @FUZZ
    @given(
        headers=st.dictionaries(
            st.sampled_from(
                [
                    "HTTP_USER_AGENT",
                    "HTTP_X_FORWARDED_FOR",
                    "HTTP_X_REQUEST_ID",
                    "HTTP_COOKIE",
                    "HTTP_AUTHORIZATION",
                    "REMOTE_ADDR",
                    "SCRIPT_NAME",
                    "QUERY_STRING",
                ]
            ),
            HEADER_BYTES,
        ),
        path=HEADER_BYTES,
        method=st.one_of(st.sampled_from(["GET", "POST", "DELETE"]), ANY_TEXT),
        status=st.sampled_from(
            [
                "200 OK",
                "204 No Content",
                "302 Found",
                "404 Not Found",
                "500 Internal Server Error",
                "999 Odd",
            ]
        ),
        trusted=st.integers(0, 3),
    )
    def check(
        headers: dict[str, bytes], path: bytes, method: str, status: str, trusted: int
    ) -> None:
        environ = make_environ(
            PATH_INFO=path.decode("latin-1"),
            REQUEST_METHOD=method.encode("utf-8", "surrogatepass").decode("latin-1"),
            **{k: v.decode("latin-1") for k, v in headers.items()},
        )
        seen: list[Any] = []

        def app(env: dict, start_response: Any) -> list[bytes]:
            seen.append(current.get())
            rec.record("user.profile_updated", comments=env.get("HTTP_USER_AGENT"))
            start_response(status, [("Content-Type", "text/plain")])
            return [b"host body"]

        calls: list[tuple] = []
        result = AuditMiddleware(app, recorder=rec, trusted_proxies=trusted)(
            environ, lambda *a: calls.append(a) or (lambda data: None)
        )
        assert b"".join(result) == b"host body"
        assert calls[0][0] == status and seen[0] is not None

    check()
    assert _failsafe.stats.internal_errors == before
    assert rec.stats.errors == 0


def test_asgi_middleware_with_arbitrary_header_bytes_paths_and_methods(rec: Recorder) -> None:
    """ASGI: arbitrary header names and values (bytes), paths and methods
    leave the response untouched."""

    @FUZZ
    @given(
        headers=st.lists(
            st.tuples(
                st.one_of(
                    st.sampled_from([b"user-agent", b"x-forwarded-for", b"x-request-id"]),
                    st.binary(max_size=20),
                ),
                HEADER_BYTES,
            ),
            max_size=6,
        ),
        path=ANY_TEXT,
        method=ANY_TEXT,
        status=st.sampled_from([200, 204, 404, 500, 999]),
        client=st.one_of(st.none(), st.tuples(ANY_TEXT, st.integers(0, 70000))),
    )
    def check(headers: list, path: str, method: str, status: int, client: Any) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            rec.record("user.profile_updated", user="u")
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b"host body"})

        sent = run(
            ASGIMiddleware(app, recorder=rec, trusted_proxies=1),
            http_scope(headers=headers, path=path, method=method, client=client),
        )
        assert sent[0]["status"] == status and sent[-1]["body"] == b"host body"

    check()
    assert rec.stats.errors == 0


URL_NAMES = [*MULTI, "group", "period", "from", "to", "tz", "q", "c", "size", "account", "x"]
URL_VALUES = st.one_of(
    ANY_TEXT,
    st.sampled_from(
        [
            "30d",
            "custom",
            "24h",
            "2026-01-31T23:59",
            "Europe/Berlin",
            "25",
            "100",
            "10.0.0.0/8",
            "common:Users",
            "success",
            "WzEsImEiXQ",
            "a*",
            '"x',
            "(x",
        ]
    ),
)


@FUZZ
@given(pairs=st.lists(st.tuples(st.sampled_from(URL_NAMES), URL_VALUES), max_size=12))
@example(pairs=[("product", "\ud800")])  # found by this test: a lone surrogate broke qs()
def test_filters_parse_only_ever_raises_query_error(pairs: list[tuple[str, str]]) -> None:
    """URL arguments → Filters → Query, and back to a URL: a result or
    a QueryError, nothing else."""
    try:
        f = Filters.parse(MultiDict(pairs))
        query = f.query("acct", now=datetime.now(UTC))
    except QueryError as exc:
        assert str(exc)
        return
    assert isinstance(query, Query) and query.account == "acct"
    f.qs(keep_cursors=True)
    f.describe()
    again = Filters.parse(MultiDict(f.args(keep_cursors=True)))
    assert again.values == f.values and again.text == f.text


@FUZZ
@given(text=st.one_of(ANY_TEXT, st.text('ab *|()"-+~/\\', max_size=60)))
def test_full_text_parser_only_ever_raises_query_error(text: str) -> None:
    """The search box syntax: a tree both backends render, or a QueryError; never anything else."""
    try:
        node = parse_text(text)
    except QueryError as exc:
        assert str(exc)
        return
    if node is not None:
        assert to_simple_query_string(node)
        try:
            assert to_fts5(node)
        except QueryError:
            pass


@FUZZ
@given(
    cursor=st.one_of(
        ANY_TEXT,
        st.binary(max_size=80).map(lambda b: __import__("base64").urlsafe_b64encode(b).decode()),
    )
)
def test_cursor_decoding_only_ever_raises_query_error(cursor: str) -> None:
    """Crafted page cursors decode to (int, short id) or a QueryError."""
    try:
        ts, event_id = decode_cursor(cursor)
    except QueryError:
        return
    assert isinstance(ts, int) and isinstance(event_id, str) and len(event_id) <= 64


def test_ui_never_answers_500_to_arbitrary_arguments(
    tenants_store: Any, security_users: Any, ui_spool: Any
) -> None:
    """Random URL arguments on the page and the export, against the real
    OpenSearch node: 200 or 400."""
    client = signed_in(make_app(tenants_store, security_users), "ann")

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        pairs=st.lists(st.tuples(st.sampled_from(URL_NAMES), URL_VALUES), max_size=8),
        export=st.booleans(),
    )
    def check(pairs: list[tuple[str, str]], export: bool) -> None:
        qs = urlencode(pairs, encoding="utf-8", errors="surrogatepass")
        route = "/a/tenant-a/actions.xlsx" if export else "/a/tenant-a/actions"
        response = client.get(f"{route}?{qs}")
        assert response.status_code in (200, 400), (qs, response.status_code)
        response.close()

    check()
