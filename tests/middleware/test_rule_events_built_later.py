"""Rule events of WSGI and ASGI requests: decided when the response ends, built later.

A request that a capture rule covers, captured failing open, gets no
context: the rule waits in the request's binding, the host is asked for the
user, impersonator and account on the request's own thread (WSGI: when the
response starts, while the app runs; ASGI: when the last body message is
due), the raw values the event needs are taken from the request there too,
and the event is built where the spool encodes it. These tests hold that
path to the same fields as a context's, and to the request's own thread for
everything the host decides and everything taken from the request.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from pathlib import Path
from typing import Any

import pytest

from useraudit.middleware import _common
from useraudit.middleware import recorder as recorder_module
from useraudit.middleware.asgi import AuditMiddleware
from useraudit.middleware.context import current
from useraudit.middleware.recorder import Recorder
from useraudit.middleware.rules import Rule, Rules
from useraudit.middleware.wsgi import AuditMiddleware as WSGIAudit

from .conftest import spool_events
from .test_asgi import run

UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"
RULES = Rules(
    [
        Rule("GET", "/reports/{project}", "client_report.downloaded"),
        Rule("DELETE", "/tokens/{token_id}", "token.revoked"),
    ]
)


class User:
    is_authenticated = True
    id = "u-7"
    username = "ada"
    email = "ada@example.com"


def scope(path: str = "/reports/p-1", method: str = "GET", **extra: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "client": ("192.0.2.9", 4000),
        "headers": [(b"user-agent", UA.encode()), (b"x-request-id", b"req-43")],
        "user": User(),
        **extra,
    }


def answering(status: int = 200, then: Any = None) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        if then is not None:
            await then()

    return app


@pytest.fixture
def batch(tmp_path: Path) -> Recorder:
    r = Recorder(tmp_path / "spool", durability="batch", flush_interval=3600, account="acme")
    yield r
    r.close()


@pytest.fixture
def contexts_made(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    made: list[Any] = []
    new = _common.Capture._new

    def counted(self: Any, *args: Any) -> Any:
        ctx = new(self, *args)
        made.append(ctx)
        return ctx

    monkeypatch.setattr(_common.Capture, "_new", counted)
    return made


def test_a_rule_event_makes_no_context_and_carries_every_field(
    batch: Recorder, contexts_made: list[Any]
) -> None:
    run(AuditMiddleware(answering(), recorder=batch, rules=RULES), scope())
    assert contexts_made == []
    batch.flush()  # built and encoded here, as the spool's thread would
    (ev,) = spool_events(batch.spool.directory)
    assert ev["event.action"] == "client_report.downloaded"
    assert ev["event.outcome"] == "success"
    assert ev["audit.project.id"] == "p-1"  # the route's placeholder
    assert ev["organization.id"] == "acme"
    assert (ev["user.id"], ev["user.name"], ev["user.email"]) == ("u-7", "ada", "ada@example.com")
    assert ev["source.address"] == "192.0.2.9"
    assert ev["user_agent.original"] == UA
    assert ev["http.request.id"] == "req-43"
    assert ev["http.request.method"] == "GET"
    assert ev["url.path"] == "/reports/p-1"
    assert ev["http.response.status_code"] == 200
    assert ev["audit.origin.seq"] == 1


def test_the_event_is_the_same_as_one_recorded_through_a_context(batch: Recorder) -> None:
    """The same request, once with a context made by the app and once without."""

    async def asks_for_its_context(scope: Any, receive: Any, send: Any) -> None:
        assert current.get() is not None
        await answering()(scope, receive, send)

    for app in (answering(), asks_for_its_context):
        run(AuditMiddleware(app, recorder=batch, rules=RULES), scope())
    batch.flush()
    without, through = spool_events(batch.spool.directory)
    varying = {"@timestamp", "event.id", "audit.origin.seq"}
    assert {k: v for k, v in without.items() if k not in varying} == {
        k: v for k, v in through.items() if k not in varying
    }


def test_a_failure_status_and_a_raising_app_give_failure_events(batch: Recorder) -> None:
    run(AuditMiddleware(answering(404), recorder=batch, rules=RULES), scope())

    async def raising(scope: Any, receive: Any, send: Any) -> None:
        raise LookupError("no such token")

    with pytest.raises(LookupError):
        run(AuditMiddleware(raising, recorder=batch, rules=RULES), scope("/tokens/t-1", "DELETE"))
    batch.flush()
    not_found, raised = spool_events(batch.spool.directory)
    assert (not_found["event.outcome"], not_found["event.reason"]) == ("failure", "HTTP 404")
    assert (raised["event.action"], raised["event.outcome"]) == ("token.revoked", "failure")
    assert (raised["event.reason"], raised["audit.token.id"]) == ("LookupError", "t-1")


def test_an_app_that_returns_without_a_last_body_message_still_gets_its_event(
    batch: Recorder,
) -> None:
    async def unfinished(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})

    run(AuditMiddleware(unfinished, recorder=batch, rules=RULES), scope("/tokens/t-2", "DELETE"))
    batch.flush()
    (ev,) = spool_events(batch.spool.directory)
    assert (ev["event.action"], ev["http.response.status_code"]) == ("token.revoked", 204)


def test_the_event_is_spooled_before_the_last_body_message_leaves(tmp_path: Path) -> None:
    """In sync durability a client holding the whole response implies the event is on disk."""
    rec = Recorder(tmp_path / "spool", durability="sync", account="acme")
    on_disk_when_sent: list[int] = []

    async def send(message: dict) -> None:
        if message["type"] == "http.response.body":
            on_disk_when_sent.append(len(spool_events(rec.spool.directory)))

    async def receive() -> dict:
        raise AssertionError("the middleware read the request body")

    asyncio.run(AuditMiddleware(answering(), recorder=rec, rules=RULES)(scope(), receive, send))
    rec.close()
    assert on_disk_when_sent == [1]


def test_the_host_is_asked_on_the_requests_own_thread(tmp_path: Path) -> None:
    """get_account callbacks (the middleware's and the recorder's) and get_user see the
    request's context variables, not the spool thread's."""
    tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant", default=None)
    asked_on: list[int] = []

    def recorders_account() -> str | None:
        asked_on.append(threading.get_ident())
        return tenant.get()

    def user_of(scope: Any) -> Any:
        asked_on.append(threading.get_ident())
        return {"id": f"user-of-{tenant.get()}"}

    rec = Recorder(tmp_path / "spool", durability="batch", get_account=recorders_account)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        tenant.set("t-9")
        await answering()(scope, receive, send)

    run(AuditMiddleware(app, recorder=rec, rules=RULES, get_user=user_of), scope())
    flusher = threading.Thread(target=rec.flush)  # built there, as by the spool's own thread
    flusher.start()
    flusher.join()
    rec.close()
    (ev,) = spool_events(rec.spool.directory)
    assert (ev["organization.id"], ev["user.id"]) == ("t-9", "user-of-t-9")
    assert set(asked_on) == {threading.get_ident()}


def test_the_request_is_taken_on_its_own_thread_and_not_kept(batch: Recorder) -> None:
    """What the event says of the request is what the request said while it ran: a
    later change to the scope (a middleware reusing it, say) is not seen, and the
    queued event holds no reference to the scope."""
    request = scope()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await answering()(scope, receive, send)

    run(AuditMiddleware(app, recorder=batch, rules=RULES), request)
    request["client"] = ("198.51.100.1", 1)
    request["headers"] = [(b"user-agent", b"rewritten"), (b"x-request-id", b"other")]
    assert not any(value is request for value in batch.spool._buffer[0])
    batch.flush()
    (ev,) = spool_events(batch.spool.directory)
    assert (ev["source.address"], ev["user_agent.original"], ev["http.request.id"]) == (
        "192.0.2.9",
        UA,
        "req-43",
    )


def test_a_failing_user_callback_costs_the_user_not_the_event(
    batch: Recorder, internal_errors: list[Exception]
) -> None:
    def broken(scope: Any) -> Any:
        raise KeyError("session store down")

    run(AuditMiddleware(answering(), recorder=batch, rules=RULES, get_user=broken), scope())
    batch.flush()
    (ev,) = spool_events(batch.spool.directory)
    assert ev["event.action"] == "client_report.downloaded" and "user.id" not in ev
    assert [type(e) for e in internal_errors] == [KeyError]
    internal_errors.clear()


def test_a_context_made_after_the_event_gets_the_same_request_id(batch: Recorder) -> None:
    """A task the request runs after its response (BackgroundTasks) records with the same id."""

    async def later() -> None:
        batch.record("report.viewed")

    headers_without_id = [(b"user-agent", UA.encode())]
    run(
        AuditMiddleware(answering(then=later), recorder=batch, rules=RULES),
        scope(headers=headers_without_id),
    )
    batch.flush()
    rule_event, later_event = spool_events(batch.spool.directory)
    assert rule_event["event.action"] == "client_report.downloaded"
    assert later_event["event.action"] == "report.viewed"
    assert rule_event["http.request.id"] == later_event["http.request.id"]
    assert later_event["user.id"] == "u-7"


def test_an_event_that_cannot_be_built_is_counted_and_leaves_a_gap(
    batch: Recorder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Built on the spool's thread: a failure there is logged and counted, and its number
    stays unused, so `useraudit verify` shows the loss (docs/integrity.md)."""
    build = Recorder.built
    calls = []

    def fails_once(self: Recorder, queued: Any) -> Any:
        calls.append(queued)
        if len(calls) == 1:
            raise RuntimeError("masker bug")
        return build(self, queued)

    monkeypatch.setattr(recorder_module.Recorder, "built", fails_once)
    app = AuditMiddleware(answering(), recorder=batch, rules=RULES)
    run(app, scope())
    run(app, scope())
    batch.flush()
    (ev,) = spool_events(batch.spool.directory)
    assert ev["audit.origin.seq"] == 2
    assert batch.spool.stats.encode_errors == 1
    assert "could not be encoded" in caplog.text


# -- WSGI --

signed_in: contextvars.ContextVar[str | None] = contextvars.ContextVar("signed_in", default=None)


def wsgi_app(status: str = "200 OK", streamed: bool = False) -> Any:
    """Like Flask: the signed-in user is known only while the app runs."""

    def app(environ: dict, start_response: Any) -> Any:
        token = signed_in.set("u-11")
        try:
            start_response(status, [("Content-Type", "text/plain")])
            if streamed:
                return iter([b"a", b"b"])
            return [b"ok"]
        finally:
            signed_in.reset(token)

    return app


def environ(path: str = "/reports/p-2", method: str = "GET") -> dict[str, Any]:
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "REMOTE_ADDR": "192.0.2.10",
        "HTTP_USER_AGENT": UA,
        "wsgi.url_scheme": "http",
    }


def call_wsgi(app: Any, env: dict[str, Any]) -> bytes:
    body = app(env, lambda status, headers, exc_info=None: None)
    try:
        return b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


@pytest.mark.parametrize("streamed", [False, True], ids=["list body", "streamed body"])
def test_wsgi_rule_event_makes_no_context_and_asks_for_the_user_while_the_app_runs(
    batch: Recorder, contexts_made: list[Any], streamed: bool
) -> None:
    app = WSGIAudit(
        wsgi_app(streamed=streamed),
        recorder=batch,
        rules=RULES,
        get_user=lambda environ: signed_in.get(),
    )
    call_wsgi(app, environ())
    assert contexts_made == []
    batch.flush()
    (ev,) = spool_events(batch.spool.directory)
    assert (ev["event.action"], ev["audit.project.id"]) == ("client_report.downloaded", "p-2")
    assert ev["user.id"] == "u-11"  # asked when the response started, not after
    assert (ev["source.address"], ev["user_agent.original"]) == ("192.0.2.10", UA)
    assert (ev["http.response.status_code"], ev["organization.id"]) == (200, "acme")
    assert len(ev["http.request.id"]) == 32


def test_wsgi_rule_event_does_not_keep_the_environ(batch: Recorder) -> None:
    """Holding the environ until the spool's thread ran kept the server's per-request
    objects alive and made gunicorn collect every ~50 recorded requests."""
    env = environ()
    call_wsgi(WSGIAudit(wsgi_app(), recorder=batch, rules=RULES), env)
    (queued,) = batch.spool._buffer
    assert not any(value is env for value in queued)
    env["HTTP_USER_AGENT"], env["REMOTE_ADDR"] = "rewritten", "198.51.100.1"
    batch.flush()
    (ev,) = spool_events(batch.spool.directory)
    assert (ev["source.address"], ev["user_agent.original"]) == ("192.0.2.10", UA)


def test_wsgi_rule_event_of_a_failing_request(batch: Recorder) -> None:
    call_wsgi(
        WSGIAudit(wsgi_app("403 Forbidden"), recorder=batch, rules=RULES),
        environ("/tokens/t-3", "DELETE"),
    )
    batch.flush()
    (ev,) = spool_events(batch.spool.directory)
    assert (ev["event.action"], ev["event.outcome"]) == ("token.revoked", "failure")
    assert (ev["event.reason"], ev["http.response.status_code"]) == ("HTTP 403", 403)


def test_wsgi_rule_event_of_a_request_that_made_its_context_gets_the_user_of_the_app(
    batch: Recorder,
) -> None:
    """A log line made the context (nothing held): the user is still asked while the app runs."""

    def app(environ: dict, start_response: Any) -> Any:
        token = signed_in.set("u-12")
        try:
            assert current.get() is not None  # as a log line would
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        finally:
            signed_in.reset(token)

    call_wsgi(
        WSGIAudit(app, recorder=batch, rules=RULES, get_user=lambda environ: signed_in.get()),
        environ(),
    )
    batch.flush()
    (ev,) = spool_events(batch.spool.directory)
    assert (ev["event.action"], ev["user.id"]) == ("client_report.downloaded", "u-12")


def test_wsgi_context_made_while_the_body_streams_keeps_the_user_asked_at_the_start(
    batch: Recorder,
) -> None:
    def app(environ: dict, start_response: Any) -> Any:
        token = signed_in.set("u-13")
        try:
            start_response("200 OK", [("Content-Type", "text/plain")])
        finally:
            signed_in.reset(token)

        def body() -> Any:
            yield b"a"
            batch.record("report.page_streamed")  # makes the context now, app long returned
            yield b"b"

        return body()

    call_wsgi(
        WSGIAudit(app, recorder=batch, rules=RULES, get_user=lambda environ: signed_in.get()),
        environ(),
    )
    batch.flush()
    streamed, rule_event = spool_events(batch.spool.directory)
    assert (streamed["event.action"], streamed["user.id"]) == ("report.page_streamed", "u-13")
    assert (rule_event["event.action"], rule_event["user.id"]) == (
        "client_report.downloaded",
        "u-13",
    )
