"""The ASGI middleware in-process: pass-through of other scopes, context, errors, fail-closed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from useraudit.middleware.asgi import AuditMiddleware
from useraudit.middleware.context import current
from useraudit.middleware.recorder import Recorder
from useraudit.middleware.rules import Rule, Rules

from .conftest import spool_events


@pytest.fixture
def rec(spool_dir: Path) -> Recorder:
    r = Recorder(spool_dir, durability="sync")
    yield r
    r.close()


def events(rec: Recorder) -> list[dict]:
    rec.flush()
    return spool_events(rec.spool.directory)


def http_scope(**kw: Any) -> dict[str, Any]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "path": "/",
        "root_path": "",
        "client": ("192.0.2.9", 4000),
        "headers": [(b"user-agent", b"ua/2")],
    }
    scope.update(kw)
    return scope


def run(app: Any, scope: dict[str, Any]) -> list[dict]:
    sent: list[dict] = []

    async def receive() -> dict:
        raise AssertionError("the middleware read the request body")

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def simple_app(rec: Recorder, status: int = 200, chunks: int = 1) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        rec.record("user.profile_updated")
        await send({"type": "http.response.start", "status": status, "headers": []})
        for i in range(chunks):
            await send({"type": "http.response.body", "body": b"x", "more_body": i < chunks - 1})

    return app


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan", "webtransport-unknown"])
def test_other_scopes_pass_through_untouched(rec: Recorder, scope_type: str) -> None:
    """websocket, lifespan and unknown scopes reach the app with the same scope, receive, send."""
    seen: list[tuple] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send, current.get()))

    async def receive() -> dict:
        return {}

    async def send(message: dict) -> None:
        pass

    scope = {"type": scope_type}
    asyncio.run(AuditMiddleware(app, recorder=rec)(scope, receive, send))
    assert seen == [(scope, receive, send, None)]
    assert scope == {"type": scope_type}


def test_context_bound_and_response_untouched(rec: Recorder) -> None:
    """Events get the peer, device and path; messages reach the server as the app sent them."""
    app = simple_app(rec, chunks=3)
    sent = run(AuditMiddleware(app, recorder=rec), http_scope(path="/profile", method="POST"))
    assert [m["type"] for m in sent] == ["http.response.start"] + ["http.response.body"] * 3
    (ev,) = events(rec)
    assert (ev["source.address"], ev["user_agent.original"], ev["url.path"]) == (
        "192.0.2.9",
        "ua/2",
        "/profile",
    )


def test_rule_event_is_spooled_before_the_last_body_message(rec: Recorder) -> None:
    """A client holding the whole response implies the rule event is already on disk."""
    on_disk_at_last_chunk: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    mw = AuditMiddleware(
        app, recorder=rec, rules=Rules([Rule("GET", "/p/{project}/export", "bot_project.exported")])
    )

    async def send(message: dict) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            on_disk_at_last_chunk.append(len(events(rec)))

    async def receive() -> dict:
        return {}

    asyncio.run(mw(http_scope(path="/p/p-3/export"), receive, send))
    assert on_disk_at_last_chunk == [1]
    assert events(rec)[0]["audit.project.id"] == "p-3"


class HostError(Exception):
    pass


def test_exceptions_reraised_unchanged_with_failure_event(rec: Recorder) -> None:
    """The app's exception object propagates as is; the rule records failure."""
    boom = HostError("x")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise boom

    mw = AuditMiddleware(app, recorder=rec, rules=Rules([Rule("*", "/", "task.created")]))
    with pytest.raises(HostError) as info:
        run(mw, http_scope())
    assert info.value is boom
    assert [e["event.outcome"] for e in events(rec)] == ["failure"]


def test_late_user_from_scope_reaches_held_events(rec: Recorder) -> None:
    """A user set on the scope by in-app auth (Starlette's scope['user']) fills held events."""

    class User:
        is_authenticated = True
        id = "u-9"
        username = "zed"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        rec.record("session_log.downloaded")
        scope["user"] = User()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    run(AuditMiddleware(app, recorder=rec), http_scope())
    (ev,) = events(rec)
    assert (ev["user.id"], ev["user.name"]) == ("u-9", "zed")


def test_installed_twice_captures_once(rec: Recorder) -> None:
    """Nested copies of the middleware record the rule event once."""
    rules = Rules([Rule("GET", "/", "client_report.downloaded")])
    app = AuditMiddleware(
        AuditMiddleware(simple_app(rec), recorder=rec, rules=rules), recorder=rec, rules=rules
    )
    run(app, http_scope())
    assert sorted(e["event.action"] for e in events(rec)) == [
        "client_report.downloaded",
        "user.profile_updated",
    ]


def test_fail_closed_sends_503_instead_of_the_app_response(
    spool_dir: Path, internal_errors: list[Exception]
) -> None:
    """A held event the spool refuses at http.response.start turns the response into 503."""
    rec = Recorder(
        spool_dir, durability="sync", fail_closed=True, max_spool_bytes=10, full_policy="reject"
    )

    async def app(scope: Any, receive: Any, send: Any) -> None:
        rec.record("message_log.downloaded")
        scope["user"] = type("U", (), {"is_authenticated": True, "id": "1"})()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"secret report"})

    try:
        sent = run(AuditMiddleware(app, recorder=rec), http_scope())
    finally:
        rec.close()
    assert sent[0]["status"] == 503 and b"secret" not in b"".join(m.get("body", b"") for m in sent)
    internal_errors.clear()


def test_callback_errors_are_contained(rec: Recorder, internal_errors: list[Exception]) -> None:
    """A get_user that raises costs the user field, not the response."""

    def bad(scope: Any) -> Any:
        raise KeyError("session store")

    sent = run(AuditMiddleware(simple_app(rec), recorder=rec, get_user=bad), http_scope())
    assert sent[0]["status"] == 200 and len(events(rec)) == 1
    assert internal_errors and isinstance(internal_errors[0], KeyError)
    internal_errors.clear()


def test_our_own_setup_bug_serves_the_request_uncaptured(
    rec: Recorder, internal_errors: list[Exception]
) -> None:
    """If building the context fails, the app still answers (uncaptured) and the bug is counted."""
    mw = AuditMiddleware(simple_app(rec), recorder=rec)

    class BrokenWatch:  # the first thing asked on every request
        @property
        def skip(self) -> int:
            raise ZeroDivisionError("our bug")

    mw.capture.proxy_watch = BrokenWatch()  # type: ignore[assignment]
    sent = run(mw, http_scope())
    assert sent[0]["status"] == 200
    assert [type(e) for e in internal_errors] == [ZeroDivisionError]
    internal_errors.clear()
