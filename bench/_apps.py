"""The hello world of ``bench.middleware`` as a framework app, bare and wired as the quickstarts do.

``*_app_bare`` is the smallest app a user has: Flask (served by gunicorn)
or FastAPI (served by uvicorn) answering the same body on ``GET /``.
``*_app_quiet`` is that app wired as docs/quickstart-flask.md and
docs/quickstart-fastapi.md wire it (``UserAudit(app, account=...)``,
``install(app, account=...)``), on a request that records nothing: what
the quiet path weighs in a real app's request, where the framework runs
too. The bare hello world of ``bench._hello`` is the harsher yardstick.
"""

from __future__ import annotations

from typing import Any

from bench._hello import BODY, _recorder
from bench._peers import QUIET_RULES


def _flask() -> Any:
    from flask import Flask, Response

    app = Flask(__name__)

    @app.get("/")
    def hello() -> Response:
        return Response(BODY, mimetype="text/plain")

    return app


def _fastapi() -> Any:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    app = FastAPI()

    @app.get("/", response_class=PlainTextResponse)
    async def hello() -> PlainTextResponse:
        return PlainTextResponse(BODY)

    return app


def wsgi_app_bare() -> Any:
    return _flask()


def wsgi_app_quiet() -> Any:
    from useraudit.middleware.flask import UserAudit

    app = _flask()
    UserAudit(app, account="acme", recorder=_recorder(), rules=QUIET_RULES)
    return app


def asgi_app_bare() -> Any:
    return _fastapi()


def asgi_app_quiet() -> Any:
    from useraudit.middleware.fastapi import install

    app = _fastapi()
    install(app, account="acme", recorder=_recorder(), rules=QUIET_RULES)
    return app
