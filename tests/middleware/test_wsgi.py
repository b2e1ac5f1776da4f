"""The WSGI middleware in-process: context, pass-through, errors, rules, fail-closed."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest

from useraudit.middleware import _common, _failsafe
from useraudit.middleware.context import current
from useraudit.middleware.recorder import Recorder
from useraudit.middleware.rules import Rule, Rules
from useraudit.middleware.wsgi import AuditMiddleware

from .conftest import spool_events


class Server:
    """A tiny PEP 3333 server side: records start_response calls and consumes bodies."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def start_response(self, *args: Any) -> Any:
        self.calls.append(args)
        return lambda data: None

    def run(self, app: Any, **environ: Any) -> bytes:
        result = app(make_environ(**environ), self.start_response)
        try:
            return b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()


class Unreadable(io.RawIOBase):
    def read(self, *a: Any) -> bytes:
        raise AssertionError("the middleware read the request body")

    readline = readlines = read  # type: ignore[assignment]


def make_environ(**kw: Any) -> dict[str, Any]:
    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SCRIPT_NAME": "",
        "REMOTE_ADDR": "192.0.2.1",
        "SERVER_NAME": "t",
        "SERVER_PORT": "80",
        "wsgi.input": Unreadable(),
        "wsgi.url_scheme": "http",
        "HTTP_USER_AGENT": "ua/1",
    }
    env.update(kw)
    return {k: v for k, v in env.items() if v is not None}


@pytest.fixture
def rec(spool_dir: Path) -> Recorder:
    r = Recorder(spool_dir, durability="sync")
    yield r
    r.close()


def events(rec: Recorder) -> list[dict]:
    rec.flush()
    return spool_events(rec.spool.directory)


def recording_app(
    rec: Recorder, action: str = "user.profile_updated", status: str = "200 OK"
) -> Any:
    def app(environ: dict, start_response: Any) -> list[bytes]:
        rec.record(action)
        start_response(status, [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def test_context_is_bound_during_the_request_and_reset_after(rec: Recorder) -> None:
    """record() inside the app gets request id, IP, device, method and path; nothing leaks after."""
    mw = AuditMiddleware(recording_app(rec), recorder=rec)
    assert (
        Server().run(mw, REQUEST_METHOD="POST", PATH_INFO="/profile", HTTP_X_REQUEST_ID="req-1")
        == b"ok"
    )
    (ev,) = events(rec)
    assert ev["http.request.id"] == "req-1"
    assert (ev["source.address"], ev["user_agent.original"]) == ("192.0.2.1", "ua/1")
    assert (ev["http.request.method"], ev["url.path"]) == ("POST", "/profile")
    assert current.get() is None and not _common.capturing()


@pytest.mark.parametrize(
    "header, kept",
    [
        pytest.param("abc-123", True, id="token"),
        pytest.param("x" * 129, False, id="too-long"),
        pytest.param("a b", False, id="space"),
        pytest.param("a\r\nX-Evil: 1", False, id="crlf"),
        pytest.param("", False, id="empty"),
    ],
)
def test_request_id_is_used_only_when_sane(rec: Recorder, header: str, kept: bool) -> None:
    """A client's X-Request-ID is a correlation id only when it is a short safe token."""
    Server().run(AuditMiddleware(recording_app(rec), recorder=rec), HTTP_X_REQUEST_ID=header)
    (ev,) = events(rec)
    assert (ev["http.request.id"] == header) is kept
    assert len(ev["http.request.id"]) <= 128


def test_exc_info_is_forwarded_only_when_the_app_gave_one(rec: Recorder) -> None:
    """start_response gets two arguments normally, three when the app passes exc_info."""

    def app(environ: dict, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        try:
            raise ValueError("late")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"x"]

    server = Server()
    server.run(AuditMiddleware(app, recorder=rec))
    assert [len(c) for c in server.calls] == [2, 3]
    assert server.calls[1][0].startswith("500")


def test_streaming_body_is_passed_through_lazily_and_closed(rec: Recorder) -> None:
    """Chunks leave as the app makes them; the app's close() runs; the rule event comes last."""
    produced: list[int] = []
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Any:
            for i in range(3):
                produced.append(i)
                yield b"%d" % i

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict, start_response: Any) -> Body:
        start_response("200 OK", [])
        return Body()

    rules = Rules([Rule("GET", "/export/{project}", "bot_project.exported")])
    mw = AuditMiddleware(app, recorder=rec, rules=rules)
    result = mw(make_environ(PATH_INFO="/export/p-1"), Server().start_response)
    it = iter(result)
    assert next(it) == b"0" and produced == [0], "the middleware buffered the body"
    assert events(rec) == []
    assert list(it) == [b"1", b"2"]
    result.close()
    assert closed == [True]
    (ev,) = events(rec)
    assert (ev["event.action"], ev["audit.project.id"], ev["event.outcome"]) == (
        "bot_project.exported",
        "p-1",
        "success",
    )


class HostError(Exception):
    pass


def test_host_exceptions_are_reraised_unchanged_and_recorded_as_failures(rec: Recorder) -> None:
    """The very exception object reaches the server; the matching rule records a failure."""
    boom = HostError("db down")

    def app(environ: dict, start_response: Any) -> list[bytes]:
        raise boom

    mw = AuditMiddleware(app, recorder=rec, rules=Rules([Rule("POST", "/tokens", "token.created")]))
    with pytest.raises(HostError) as info:
        Server().run(mw, REQUEST_METHOD="POST", PATH_INFO="/tokens")
    assert info.value is boom
    (ev,) = events(rec)
    assert (ev["event.outcome"], ev["event.reason"]) == ("failure", "HostError")
    assert current.get() is None


def test_exception_in_the_middle_of_a_stream_is_a_failure(rec: Recorder) -> None:
    """A body that dies half-way records failure even though 200 was already sent."""

    def app(environ: dict, start_response: Any) -> Any:
        start_response("200 OK", [])
        yield b"a"
        raise HostError("disk")

    mw = AuditMiddleware(
        app, recorder=rec, rules=Rules([Rule("GET", "/", "session_log.downloaded")])
    )
    with pytest.raises(HostError):
        Server().run(mw)
    (ev,) = events(rec)
    assert ev["event.outcome"] == "failure" and ev["http.response.status_code"] == 200


@pytest.mark.parametrize(
    "status, outcome",
    [
        pytest.param("302 Found", "success", id="redirect-success"),
        pytest.param("401 Unauthorized", "failure", id="401-failure"),
        pytest.param("403 Forbidden", "failure", id="403-failure"),
        pytest.param("500 Internal Server Error", None, id="500-not-covered"),
    ],
)
def test_sign_in_rule_outcomes(rec: Recorder, status: str, outcome: str | None) -> None:
    """POST /login: 2xx/3xx success, 401/403 failure, other statuses record nothing."""

    def app(environ: dict, start_response: Any) -> list[bytes]:
        start_response(status, [])
        return [b""]

    rules = Rules([Rule("POST", "/login", "user.signed_in", success="2xx,3xx", failure="401,403")])
    Server().run(
        AuditMiddleware(app, recorder=rec, rules=rules), REQUEST_METHOD="POST", PATH_INFO="/login"
    )
    got = events(rec)
    assert [e["event.outcome"] for e in got] == ([outcome] if outcome else [])


def test_installed_twice_captures_once(rec: Recorder) -> None:
    """A second copy of the middleware passes the request through."""
    rules = Rules([Rule("GET", "/", "client_report.downloaded")])
    inner = AuditMiddleware(recording_app(rec), recorder=rec, rules=rules)
    outer = AuditMiddleware(inner, recorder=rec, rules=rules)
    Server().run(outer)
    assert sorted(e["event.action"] for e in events(rec)) == [
        "client_report.downloaded",
        "user.profile_updated",
    ]


def test_user_authenticated_inside_the_view_reaches_earlier_events(rec: Recorder) -> None:
    """An event recorded before the view's own auth is held and gets the user at response start."""

    def app(environ: dict, start_response: Any) -> list[bytes]:
        rec.record("message_log.downloaded")  # no user known yet
        assert events(rec) == []  # held, not spooled
        environ["REMOTE_USER"] = "token-user"  # the view authenticated a token
        start_response("200 OK", [])
        return [b"ok"]

    Server().run(AuditMiddleware(app, recorder=rec, get_user=lambda env: env.get("REMOTE_USER")))
    (ev,) = events(rec)
    assert ev["user.id"] == "token-user" and ev["http.response.status_code"] == 200


def test_impersonation_is_on_every_event(rec: Recorder) -> None:
    """Explicit, held and rule events all carry the impersonator in effect."""

    def app(environ: dict, start_response: Any) -> list[bytes]:
        rec.record("custom_role.created", user="bob")
        rec.record("custom_role.updated")
        start_response("200 OK", [])
        return [b"ok"]

    mw = AuditMiddleware(
        app,
        recorder=rec,
        get_user=lambda e: "bob",
        get_impersonator=lambda e: {"id": "a1", "name": "alice"},
        rules=Rules([Rule("GET", "/", "custom_role.renamed")]),
    )
    Server().run(mw)
    got = events(rec)
    assert len(got) == 3
    assert all(e["audit.impersonator.name"] == "alice" and e["user.id"] == "bob" for e in got)


def test_failing_callbacks_never_break_the_host(
    rec: Recorder, internal_errors: list[Exception]
) -> None:
    """get_user/get_account raising: the response is the app's; the errors are counted."""

    def bad(_: Any) -> Any:
        raise RuntimeError("callback bug")

    before = _failsafe.stats.internal_errors
    mw = AuditMiddleware(
        recording_app(rec), recorder=rec, get_user=bad, get_impersonator=bad, get_account=bad
    )
    assert Server().run(mw) == b"ok"
    assert len(events(rec)) == 1
    assert _failsafe.stats.internal_errors - before >= 3
    assert all(isinstance(e, RuntimeError) for e in internal_errors)
    internal_errors.clear()


def test_fail_closed_answers_503_when_a_callback_fails(
    rec: Recorder, internal_errors: list[Exception]
) -> None:
    """fail_closed turns a capture failure into 503 instead of an unaudited success."""

    def bad(_: Any) -> Any:
        raise RuntimeError("directory down")

    server = Server()
    body = server.run(
        AuditMiddleware(recording_app(rec), recorder=rec, get_account=bad, fail_closed=True)
    )
    assert server.calls[0][0].startswith("503") and b"unavailable" in body
    internal_errors.clear()


def test_fail_closed_recorder_that_cannot_spool_answers_503(
    spool_dir: Path, internal_errors: list[Exception]
) -> None:
    """A fail-closed recorder whose spool is full answers 503, not the app's 200."""
    rec = Recorder(
        spool_dir, durability="sync", fail_closed=True, max_spool_bytes=10, full_policy="reject"
    )
    try:

        def app(environ: dict, start_response: Any) -> list[bytes]:
            start_response("200 OK", [("Content-Length", "2")])
            return [b"ok"]

        server = Server()
        mw = AuditMiddleware(app, recorder=rec, rules=Rules([Rule("GET", "/", "token.deleted")]))
        body = server.run(mw)
        assert server.calls[-1][0].startswith("503") and b"unavailable" in body
    finally:
        rec.close()
    assert rec.stats.rejected_full == 1
    internal_errors.clear()


def test_held_event_that_cannot_be_spooled_fails_closed_before_the_response(
    spool_dir: Path,
    internal_errors: list[Exception],
) -> None:
    """A held event is spooled at start_response; if that fails, the client gets 503."""
    rec = Recorder(
        spool_dir, durability="sync", fail_closed=True, max_spool_bytes=10, full_policy="reject"
    )
    closed: list[bool] = []

    class Body(list):
        def close(self) -> None:
            closed.append(True)

    def app(environ: dict, start_response: Any) -> list[bytes]:
        rec.record("message_log.downloaded")  # held: no user yet
        environ["REMOTE_USER"] = "late"
        start_response("200 OK", [("Content-Length", "2")])
        return Body([b"ok"])

    try:
        server = Server()
        body = server.run(
            AuditMiddleware(app, recorder=rec, get_user=lambda e: e.get("REMOTE_USER"))
        )
        assert [c[0][:3] for c in server.calls] == ["503"] and body == b"audit trail unavailable\n"
        assert closed == [True]
    finally:
        rec.close()
    internal_errors.clear()


def test_request_body_is_never_read(rec: Recorder) -> None:
    """A 1 GB upload costs the middleware nothing: wsgi.input is never touched."""
    mw = AuditMiddleware(recording_app(rec), recorder=rec)
    assert Server().run(mw, REQUEST_METHOD="POST", CONTENT_LENGTH=str(1 << 30)) == b"ok"


def test_our_own_setup_bug_serves_the_request_uncaptured(
    rec: Recorder, internal_errors: list[Exception]
) -> None:
    """If building the context fails, the app still answers (uncaptured) and the bug is counted."""
    mw = AuditMiddleware(recording_app(rec), recorder=rec)

    class BrokenWatch:  # the first thing asked on every request
        @property
        def skip(self) -> int:
            raise ZeroDivisionError("our bug")

    mw.capture.proxy_watch = BrokenWatch()  # type: ignore[assignment]
    server = Server()
    assert server.run(mw) == b"ok" and server.calls[0][0] == "200 OK"
    assert [type(e) for e in internal_errors] == [ZeroDivisionError]
    internal_errors.clear()


def test_content_length_body_records_before_its_last_chunk_leaves(rec: Recorder) -> None:
    """With a Content-Length, the rule event is spooled before the server gets the last chunk."""
    seen: list[int] = []

    def app(environ: dict, start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", "6")])
        yield b"abc"
        yield b"def"

    mw = AuditMiddleware(app, recorder=rec, rules=Rules([Rule("GET", "/", "token.updated")]))
    body = mw(make_environ(), Server().start_response)
    for _chunk in body:
        seen.append(len(events(rec)))
    body.close()
    assert seen == [0, 1] and len(events(rec)) == 1


def test_an_event_recorded_mid_stream_is_spooled_before_the_last_chunk_leaves(
    rec: Recorder,
) -> None:
    """No rule and nothing recorded when the body starts: the event is on disk before the rest."""
    seen: list[int] = []

    def app(environ: dict, start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", "6")])
        yield b"abc"
        rec.record("project.exported")
        yield b"def"

    mw = AuditMiddleware(app, recorder=rec)
    body = mw(make_environ(), Server().start_response)
    for _chunk in body:
        seen.append(len(events(rec)))
    body.close()
    assert seen == [0, 1] and events(rec)[0]["event.action"] == "project.exported"


def test_user_is_not_loaded_for_requests_with_nothing_to_record(rec: Recorder) -> None:
    """No held event and no matching rule: get_user is never called (no session/DB lookup)."""
    calls: list[str] = []

    def get_user(environ: dict) -> str:
        calls.append(environ["PATH_INFO"])
        return "u"

    def app(environ: dict, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"static"]

    rules = Rules([Rule("POST", "/tokens", "token.created")])
    mw = AuditMiddleware(app, recorder=rec, get_user=get_user, rules=rules)
    Server().run(mw, PATH_INFO="/static/app.css")
    assert calls == [] and events(rec) == []
    Server().run(mw, REQUEST_METHOD="POST", PATH_INFO="/tokens")
    assert calls == ["/tokens"] and events(rec)[0]["user.id"] == "u"


def test_fail_open_middleware_over_fail_closed_recorder_keeps_the_response(
    spool_dir: Path, internal_errors: list[Exception]
) -> None:
    """fail_closed=False on the middleware wins for its own rule events: the app's 200 goes out."""
    rec = Recorder(
        spool_dir, durability="sync", fail_closed=True, max_spool_bytes=10, full_policy="reject"
    )

    def app(environ: dict, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    try:
        server = Server()
        rules = Rules([Rule("GET", "/", "token.deleted")])
        mw = AuditMiddleware(app, recorder=rec, rules=rules, fail_closed=False)
        assert server.run(mw) == b"ok" and server.calls[-1][0] == "200 OK"
    finally:
        rec.close()
    assert rec.stats.rejected_full == 1
    internal_errors.clear()
