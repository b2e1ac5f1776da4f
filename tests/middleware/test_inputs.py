"""Client IPs, rules, and hostile or broken input to the middleware."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from useraudit.indexer.enrich import Enricher
from useraudit.middleware._common import clean_ip, client_ip, header_text
from useraudit.middleware.asgi import AuditMiddleware as ASGIMiddleware
from useraudit.middleware.recorder import Recorder
from useraudit.middleware.rules import Rule, Rules, parse_statuses
from useraudit.middleware.wsgi import AuditMiddleware

from .conftest import spool_events
from .test_asgi import http_scope, run
from .test_wsgi import Server, make_environ


@pytest.mark.parametrize(
    "peer, xff, trusted, expected",
    [
        pytest.param("10.0.0.1", None, 0, "10.0.0.1", id="no-header"),
        pytest.param("10.0.0.1", "6.6.6.6", 0, "10.0.0.1", id="untrusted-header-ignored"),
        pytest.param("10.0.0.1", "6.6.6.6, 1.2.3.4", 1, "1.2.3.4", id="one-proxy-rightmost"),
        pytest.param("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.2", 2, "1.2.3.4", id="two-proxies"),
        pytest.param("10.0.0.1", "1.2.3.4", 2, "10.0.0.1", id="fewer-entries-than-proxies"),
        pytest.param("10.0.0.1", "garbage, !!!", 1, "10.0.0.1", id="garbage-entry"),
        pytest.param("10.0.0.1", "", 1, "10.0.0.1", id="empty-header"),
        pytest.param("10.0.0.1", ",,,", 1, "10.0.0.1", id="only-commas"),
        pytest.param("10.0.0.1", "1.2.3.4:5678", 1, "1.2.3.4", id="ipv4-with-port"),
        pytest.param("10.0.0.1", "[2001:db8::1]:443", 1, "2001:db8::1", id="ipv6-bracketed-port"),
        pytest.param("10.0.0.1", "2001:db8::1", 1, "2001:db8::1", id="ipv6"),
        pytest.param("10.0.0.1", "fe80::1%eth0", 1, "fe80::1%eth0", id="ipv6-zone-id-kept"),
        pytest.param("10.0.0.1", '"[::1]"', 1, "::1", id="quoted"),
        pytest.param("fe80::2%25lo", None, 0, "fe80::2%25lo", id="peer-zone-id"),
        pytest.param(None, "1.2.3.4", 0, None, id="no-peer"),
        pytest.param("10.0.0.1", "x" * 20000 + ", 1.2.3.4", 1, "1.2.3.4", id="huge-header"),
    ],
)
def test_client_ip(peer: str | None, xff: str | None, trusted: int, expected: str | None) -> None:
    """X-Forwarded-For counts only through the configured number of trusted proxies."""
    assert client_ip(peer, xff, trusted) == expected


def test_clean_ip_rejects_non_ips() -> None:
    """Anything that is not an address after stripping port and brackets is refused."""
    for bad in ("", "unknown", "1.2.3", "[::1", "999.1.1.1", "a" * 500, "1.2.3.4\x00"):
        assert clean_ip(bad) is None


@pytest.mark.parametrize(
    "spec, inside, outside",
    [
        pytest.param("2xx,3xx", [200, 302, 399], [199, 400], id="classes"),
        pytest.param("401,403", [401, 403], [400, 402], id="codes"),
        pytest.param("200-204", [200, 204], [205], id="range"),
        pytest.param("", [], [200], id="empty"),
        pytest.param([201], [201], [200], id="iterable"),
    ],
)
def test_status_specs(spec: Any, inside: list[int], outside: list[int]) -> None:
    """Status ranges are codes, Nxx classes and a-b ranges."""
    codes = parse_statuses(spec)
    assert all(c in codes for c in inside) and not any(c in codes for c in outside)


def test_rules_match_method_route_and_fill_arguments() -> None:
    """Route placeholders named like record() arguments fill them; others become params."""
    rules = Rules(
        [
            Rule("DELETE", "/tokens/{token_id}", "token.deleted"),
            Rule("GET", "/projects/{project}/labels/{label}", "project_label.updated"),
            Rule("*", "/files/{rest:path}", "message_log.downloaded"),
        ]
    )
    assert rules.match("DELETE", "/tokens/t-1", 204) == (
        "token.deleted",
        {"outcome": "success", "token_id": "t-1"},
    )
    assert rules.match("GET", "/tokens/t-1", 200) is None
    assert rules.match("get", "/projects/p/labels/l", 404) == (
        "project_label.updated",
        {"outcome": "failure", "reason": "HTTP 404", "project": "p", "params": {"label": "l"}},
    )
    assert rules.match("PUT", "/files/a/b/c", 200)[1]["params"] == {"rest": "a/b/c"}
    assert rules.match("DELETE", "/tokens/t-1", None, ValueError()) == (
        "token.deleted",
        {"outcome": "failure", "reason": "ValueError", "token_id": "t-1"},
    )


def test_non_utf8_header_bytes_are_replaced_not_raised() -> None:
    """Latin-1 strings from WSGI and raw bytes from ASGI are re-read as UTF-8 with replacement."""
    assert header_text("caf\xc3\xa9", 100) == "café"  # WSGI: UTF-8 bytes seen as latin-1
    assert header_text(b"\xff\xfe\xfd", 100) == "\ufffd" * 3
    assert header_text("ok\u20ac", 100) == "ok\u20ac"  # a server that decoded already
    assert header_text(b"x" * 100_000, 4096) == "x" * 4096


@pytest.fixture
def rec(spool_dir: Path) -> Recorder:
    r = Recorder(spool_dir, durability="batch")
    yield r
    r.close()


def app_for(rec: Recorder) -> Any:
    def app(environ: dict, start_response: Any) -> list[bytes]:
        rec.record("user.profile_updated", user="u")
        start_response("200 OK", [])
        return [b"ok"]

    return app


BAD_ENVIRONS = [
    pytest.param({"HTTP_X_FORWARDED_FOR": "garbage;;; DROP TABLE"}, id="garbage-xff"),
    pytest.param({"HTTP_X_FORWARDED_FOR": None}, id="missing-xff"),
    pytest.param(
        {"HTTP_X_FORWARDED_FOR": "fe80::1%eth0, [2001:db8::5%1]:8080"}, id="ipv6-zone-ids"
    ),
    pytest.param({"REMOTE_ADDR": "fe80::1%eth0"}, id="peer-zone-id"),
    pytest.param(
        {"HTTP_USER_AGENT": "A" * 16384, "HTTP_X_FORWARDED_FOR": "1.1.1.1," * 2000},
        id="16kB-headers",
    ),
    pytest.param(
        {"HTTP_USER_AGENT": "\xff\xfe\x00bad", "PATH_INFO": "/\xc3\x28"}, id="non-utf8-bytes"
    ),
    pytest.param({"HTTP_USER_AGENT": None}, id="no-user-agent"),
    pytest.param(
        {"REMOTE_ADDR": None, "REQUEST_METHOD": None, "PATH_INFO": None}, id="bare-environ"
    ),
    pytest.param({"HTTP_X_REQUEST_ID": "\r\n" * 100}, id="crlf-request-id"),
]


@pytest.mark.parametrize("overrides", BAD_ENVIRONS)
def test_hostile_environ_never_reaches_the_host(rec: Recorder, overrides: dict) -> None:
    """The app answers as always; the event is spooled and survives enrichment."""
    mw = AuditMiddleware(app_for(rec), recorder=rec, trusted_proxies=1)
    assert Server().run(mw, **overrides) == b"ok"
    rec.flush()
    (ev,) = spool_events(rec.spool.directory)
    doc = Enricher()(ev)
    if doc.get("source.ip"):
        ipaddress.ip_address(doc["source.ip"])
    assert len(doc.get("user_agent.original", "")) <= 4096


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(
            [(b"x-forwarded-for", b"\xff\xfe"), (b"user-agent", b"\x80\x81")], id="non-utf8"
        ),
        pytest.param(
            [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-for", b"5.6.7.8")], id="repeated-xff"
        ),
        pytest.param([(b"user-agent", b"U" * 16384)], id="16kB-ua"),
        pytest.param([], id="no-headers"),
    ],
)
def test_hostile_scope_never_reaches_the_host(rec: Recorder, headers: list) -> None:
    """ASGI: odd headers leave the response untouched; repeated XFF headers form one list."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        rec.record("user.profile_updated", user="u")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent = run(
        ASGIMiddleware(app, recorder=rec, trusted_proxies=1),
        http_scope(headers=headers, client=None),
    )
    assert sent[0]["status"] == 200
    rec.flush()
    (ev,) = spool_events(rec.spool.directory)
    if headers and headers[0][1] == b"1.2.3.4":
        assert ev["source.address"] == "5.6.7.8"


header_text_st = st.one_of(
    st.none(), st.text(max_size=300), st.text("0123456789abcdef.:,[]% ", max_size=120)
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    peer=header_text_st,
    xff=header_text_st,
    ua=header_text_st,
    rid=header_text_st,
    path=st.text(max_size=100),
    trusted=st.integers(0, 3),
    method=st.sampled_from(["GET", "POST", "", "BREW"]),
)
def test_any_input_gives_the_app_response_and_a_believable_ip(
    rec: Recorder,
    peer: str | None,
    xff: str | None,
    ua: str | None,
    rid: str | None,
    path: str,
    trusted: int,
    method: str,
    internal_errors: list[Exception],
) -> None:
    """For any headers the response is unchanged; the IP is the peer or the trusted XFF entry."""
    environ = make_environ(
        REMOTE_ADDR=peer,
        HTTP_X_FORWARDED_FOR=xff,
        HTTP_USER_AGENT=ua,
        HTTP_X_REQUEST_ID=rid,
        PATH_INFO=path,
        REQUEST_METHOD=method,
    )
    # WSGI strings are latin-1 code points only.
    environ = {
        k: (
            v.encode("utf-8", "replace").decode("latin-1")
            if isinstance(v, str) and k != "wsgi.url_scheme"
            else v
        )
        for k, v in environ.items()
    }
    captured: list[Any] = []

    def app(env: dict, start_response: Any) -> list[bytes]:
        from useraudit.middleware.context import current

        captured.append(current.get())
        start_response("200 OK", [])
        return [b"ok"]

    server = Server()
    result = AuditMiddleware(app, recorder=rec, trusted_proxies=trusted)(
        environ, server.start_response
    )
    assert b"".join(result) == b"ok"
    ctx = captured[0]
    allowed = {environ.get("REMOTE_ADDR") or None}
    if trusted and environ.get("HTTP_X_FORWARDED_FOR"):
        parts = (
            environ["HTTP_X_FORWARDED_FOR"]
            .encode("latin-1")
            .decode("utf-8", "replace")
            .rsplit(",", trusted)
        )
        if len(parts) >= trusted:
            allowed.add(clean_ip(parts[-trusted]))
    assert ctx.client_ip in allowed
    assert len(ctx.request_id) <= 128 and "\n" not in ctx.request_id
    assert not internal_errors
