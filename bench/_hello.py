"""Hello-world WSGI and ASGI apps for ``bench.middleware``, bare and audited.

The audited ones capture one event per request (a capture rule on ``GET /``)
into a batch-mode spool at ``$USERAUDIT_SPOOL``.
"""

from __future__ import annotations

import os
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
