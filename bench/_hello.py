"""Hello-world WSGI and ASGI apps for ``bench.middleware``: bare, audited, "floor", "passthrough".

The audited ones capture one event per request (a capture rule on ``GET /``)
into a batch-mode spool at ``$USERAUDIT_SPOOL``. The floor ones are the
least any capturing middleware does: wrap ``send``/``start_response``,
note the status, and keep one tuple of references per request (a thread
throws them away). Nothing is built, serialised or written, so their
throughput is an upper bound for capture in Python under that server. The
passthrough ones are a middleware that does nothing at all but call the
app: what one more layer costs under that server.
"""

from __future__ import annotations

import os
import threading
import time
from contextvars import ContextVar
from typing import Any

from useraudit.middleware.asgi import AuditMiddleware as ASGIAudit
from useraudit.middleware.recorder import Recorder
from useraudit.middleware.rules import Rule, Rules
from useraudit.middleware.wsgi import AuditMiddleware as WSGIAudit

BODY = b"Hello, world!\n"
RULES = Rules([Rule("GET", "/", "client_report.downloaded")])


def wsgi_bare(environ: dict, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]


async def asgi_bare(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


def _recorder() -> Recorder:
    return Recorder(
        os.environ.get("USERAUDIT_SPOOL", "var/bench-spool"),
        durability="batch",
        flush_interval=float(os.environ.get("USERAUDIT_FLUSH_INTERVAL", "0.05")),
        account="bench",
    )


def make_wsgi(recorder: Recorder | None = None) -> Any:
    return WSGIAudit(wsgi_bare, recorder=recorder or _recorder(), rules=RULES)


def make_asgi(recorder: Recorder | None = None) -> Any:
    return ASGIAudit(asgi_bare, recorder=recorder or _recorder(), rules=RULES)


# For `gunicorn bench._hello:wsgi_audited()` / `uvicorn --factory bench._hello:asgi_audited`.
def wsgi_audited() -> Any:
    return make_wsgi()


def asgi_audited() -> Any:
    return make_asgi()


# -- the floor: what wrapping the app and keeping one tuple per request costs --

_floor_context: ContextVar[list | None] = ContextVar("bench_floor", default=None)


def _floor_buffer() -> list:
    kept: list = []

    def drop() -> None:
        while True:
            time.sleep(0.05)
            del kept[:]

    threading.Thread(target=drop, daemon=True, name="bench-floor").start()
    return kept


def wsgi_floor() -> Any:
    kept, now = _floor_buffer(), time.time

    def app(environ: dict, start_response: Any) -> Any:
        state = [environ, None]
        token = _floor_context.set(state)

        def noting_start_response(status: str, headers: list, exc_info: Any = None) -> Any:
            state[1] = status
            return start_response(status, headers, exc_info)

        try:
            body = wsgi_bare(environ, noting_start_response)
            kept.append((now(), state[1], environ))
            return body
        finally:
            _floor_context.reset(token)

    return app


def asgi_floor() -> Any:
    kept, now = _floor_buffer(), time.time

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await asgi_bare(scope, receive, send)
            return
        state = [scope, None]
        token = _floor_context.set(state)

        async def noting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                state[1] = message["status"]
            elif not message.get("more_body"):
                kept.append((now(), state[1], scope))
            await send(message)

        try:
            await asgi_bare(scope, receive, noting_send)
        finally:
            _floor_context.reset(token)

    return app


class _Passthrough:
    """A middleware that only calls the app it wraps."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Any) -> Any:
        return self.app(environ, start_response)


class _AsyncPassthrough:
    """An ASGI middleware that only awaits the app it wraps."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def wsgi_passthrough() -> Any:
    return _Passthrough(wsgi_bare)


def asgi_passthrough() -> Any:
    return _AsyncPassthrough(asgi_bare)
