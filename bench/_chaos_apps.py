"""The two host apps the chaos run drives: Flask under gunicorn, FastAPI under uvicorn.

Each request ``POST /event/<id>`` records exactly one audit event whose id
is the one the load generator chose, in ``sync`` durability: a 200 means the
event is fsynced in the spool. The spool directory comes from
``USERAUDIT_SPOOL``.
"""

from __future__ import annotations

import os
from typing import Any

import useraudit
from useraudit.middleware.recorder import get_recorder


def _configure() -> None:
    useraudit.configure(
        spool_dir=os.environ["USERAUDIT_SPOOL"],
        durability="sync",
        account_id="chaos",
        fail_closed=True,
    )


def flask_app() -> Any:
    from flask import Flask

    from useraudit.middleware.flask import UserAudit

    _configure()
    app = Flask(__name__)

    @app.post("/event/<event_id>")
    def event(event_id: str) -> Any:
        get_recorder().record(
            "task.updated", event_id=event_id, comments=f"chaos event {event_id} (flask)"
        )
        return "ok"

    UserAudit(app, signals=False)
    return app


def fastapi_app() -> Any:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    from useraudit.middleware.asgi import AuditMiddleware

    _configure()
    app = FastAPI()

    @app.post("/event/{event_id}", response_class=PlainTextResponse)
    def event(event_id: str) -> str:
        get_recorder().record(
            "task.updated", event_id=event_id, comments=f"chaos event {event_id} (fastapi)"
        )
        return "ok"

    return AuditMiddleware(app)
