"""Hello-world WSGI and ASGI apps for ``bench.middleware``: bare, audited, floors, passthrough.

The audited ones capture one event per request (a capture rule on ``GET /``)
into a batch-mode spool at ``$USERAUDIT_SPOOL``. The floor ones are the
least a middleware does that lets the app record into its request: bind
the request in a context variable, wrap ``send``/``start_response`` and
note the status. Nothing is kept, built, serialised or written, so their
throughput is an upper bound for a request that records nothing. The
passthrough ones are a middleware that does nothing at all but call the
app: what one more layer costs under that server. The recording floor
ones do the least a recorder of the same event can: the floor's work,
plus one tuple per request of the values the event needs (clock, random
bits, user agent, status, peer, method, path), turned into the same JSON
fields and written with one fdatasync per batch by a thread 20 times a
second. No rules, masking, users, accounts or spool framing: a bound for
recording in Python under that server, not a competitor.
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


# -- the floor: what binding a request and noting its status costs --

_floor_context: ContextVar[list | None] = ContextVar("bench_floor", default=None)

# _let_go: the ASGI floors drop the scope from their binding once the app is
# done, as useraudit does (the end of asgi.AuditMiddleware.__call__). Under uvicorn a finished
# request's context stays referenced for a while (timer handles copy it),
# and a scope kept that long keeps the collector busy (docs/capture.md).


def wsgi_floor() -> Any:
    def app(environ: dict, start_response: Any) -> Any:
        state = [environ, None]
        token = _floor_context.set(state)

        def noting_start_response(status: str, headers: list, exc_info: Any = None) -> Any:
            state[1] = status
            return start_response(status, headers, exc_info)

        try:
            return wsgi_bare(environ, noting_start_response)
        finally:
            _floor_context.reset(token)

    return app


def asgi_floor() -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await asgi_bare(scope, receive, send)
            return
        state = [scope, None]
        token = _floor_context.set(state)

        def noting_send(message: Any) -> Any:
            if message["type"] == "http.response.start":
                state[1] = message["status"]
            return send(message)

        try:
            await asgi_bare(scope, receive, noting_send)
        finally:
            _floor_context.reset(token)
            state[0] = None  # see _let_go

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


# -- the recording floor: the fields of one event per request, and no more work --


def _floor_writer() -> list:
    """A queue of raw events that a thread turns into JSON lines 20 times a second.

    Everything that can wait leaves the request: formatting the time and
    the ids, decoding the user agent, serialising, writing and the fdatasync.
    """
    import itertools
    import random

    import orjson

    queued: list = []
    directory = os.environ.get("USERAUDIT_SPOOL", "var/bench-spool")
    os.makedirs(directory, exist_ok=True)
    fd = os.open(
        os.path.join(directory, f"floor-{os.getpid()}.jsonl"),
        os.O_WRONLY | os.O_CREAT | os.O_APPEND,
        0o640,
    )
    request_ids = itertools.count(random.getrandbits(64) << 64)

    def write() -> None:
        while True:
            time.sleep(0.05)
            batch = queued[:]
            del queued[: len(batch)]  # appended meanwhile: kept for the next turn
            lines = []
            for raw in batch:
                ms, bits, agent, status, *rest = raw
                sec, frac = divmod(ms, 1000)
                event = {
                    "@timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
                    + f".{frac:03d}Z",
                    "event.id": format((ms << 80) | bits, "032x"),
                    "event.action": "client_report.downloaded",
                    "event.outcome": "success" if status < 400 else "failure",
                    "organization.id": "bench",
                    "source.address": rest[0],
                    "user_agent.original": agent.decode() if isinstance(agent, bytes) else agent,
                    "http.request.id": format(next(request_ids), "032x"),
                    "http.request.method": rest[1],
                    "url.path": rest[2],
                    "http.response.status_code": status,
                }
                lines.append(orjson.dumps(event) + b"\n")
            if lines:
                os.write(fd, b"".join(lines))
                os.fdatasync(fd)

    threading.Thread(target=write, daemon=True, name="bench-record-floor").start()
    return queued


def wsgi_record_floor() -> Any:
    import random

    queued, now, bits = _floor_writer(), time.time_ns, random.getrandbits

    def app(environ: dict, start_response: Any) -> Any:
        state = [environ, None]
        token = _floor_context.set(state)

        def noting_start_response(status: str, headers: list, exc_info: Any = None) -> Any:
            state[1] = status
            return start_response(status, headers, exc_info)

        try:
            body = wsgi_bare(environ, noting_start_response)
        finally:
            _floor_context.reset(token)
        queued.append(
            (
                now() // 1_000_000,
                bits(80),
                environ.get("HTTP_USER_AGENT"),
                int(state[1][:3]),
                environ.get("REMOTE_ADDR"),
                environ.get("REQUEST_METHOD"),
                environ.get("PATH_INFO"),
            )
        )
        return body

    return app


def asgi_record_floor() -> Any:
    import random

    queued, now, bits = _floor_writer(), time.time_ns, random.getrandbits

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await asgi_bare(scope, receive, send)
            return
        state = [scope, None]
        token = _floor_context.set(state)

        def noting_send(message: Any) -> Any:
            if message["type"] == "http.response.start":
                state[1] = message["status"]
            return send(message)

        try:
            await asgi_bare(scope, receive, noting_send)
        finally:
            _floor_context.reset(token)
            state[0] = None  # see _let_go
        agent = None
        for name, value in scope["headers"]:
            if name == b"user-agent":
                agent = value
        client = scope.get("client")
        queued.append(
            (
                now() // 1_000_000,
                bits(80),
                agent,
                state[1],
                client[0] if client else None,
                scope["method"],
                scope["path"],
            )
        )

    return app
