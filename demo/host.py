"""The demo's host application: a small product backend instrumented with useraudit.

It is what a real host app looks like after adding useraudit: the Flask
integration (:class:`~useraudit.middleware.flask.UserAudit`) records
sign-ins and sign-outs from Flask-Login's signals, the view records failed
sign-ins and ``useraudit.record()`` is called where the app changes
something. The account (tenant) is the first path segment, ``/a/<account>/…``.

Routes, under ``/a/<account>``:

* ``POST /login`` — form ``username``, ``password``. 200 on success, 401 on
  bad credentials, 423 once the user is blocked after ``MAX_FAILURES``
  failures in a row (which records ``user_account.blocked_failed_sign_ins``).
* ``POST /logout``
* ``POST /impersonate/<username>`` (admins) and ``POST /impersonate/stop``
* ``POST /api/<action code>`` — JSON ``target_user``, ``project``,
  ``project_name``, ``token_id``, ``params``, ``comments``, ``outcome``,
  ``reason``, ``occurred_at``: performs a catalog action (here: records it)
  as the signed-in user. ``occurred_at`` lets the demo spread its history
  over past days.

The demo runs it behind a pretend reverse proxy, so ``trusted_proxies=1``
and the traffic's ``X-Forwarded-For`` carries the simulated client IPs.
"""

from __future__ import annotations

import secrets
import threading
from datetime import datetime
from typing import Any

from flask import Flask, abort, jsonify, request, session
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)

import useraudit
from useraudit.catalog import CATALOG
from useraudit.middleware.flask import IMPERSONATOR_SESSION_KEY, UserAudit

MAX_FAILURES = 5


class Directory:
    """The host's own users: username → person, password, account, admin flag."""

    def __init__(self, people: dict[str, dict[str, Any]]) -> None:
        self.people = people
        self.failures: dict[str, int] = {}
        self.blocked: set[str] = set()
        self.lock = threading.Lock()

    def person(self, username: str | None) -> dict[str, str] | None:
        info = self.people.get(username or "")
        if info is None:
            return None
        return {k: info[k] for k in ("id", "name", "email", "full_name")}


class DemoUser(UserMixin):
    def __init__(self, username: str, info: dict[str, Any]) -> None:
        self.username = username
        self.id = info["id"]
        self.name = username
        self.email = info["email"]
        self.full_name = info["full_name"]

    def get_id(self) -> str:
        return self.username


def _account_of(environ: dict[str, Any]) -> str | None:
    parts = environ.get("PATH_INFO", "").split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "a" and parts[2] else None


def create_host_app(directory: Directory) -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = secrets.token_hex(16)
    logins = LoginManager(app)

    @logins.user_loader
    def load(username: str) -> DemoUser | None:
        info = directory.people.get(username)
        return DemoUser(username, info) if info else None

    @app.post("/a/<account>/login")
    def login(account: str) -> Any:
        username = request.form.get("username", "")
        info = directory.people.get(username)
        with directory.lock:
            if username in directory.blocked:
                useraudit.record(
                    "user.signed_in",
                    outcome="failure",
                    user=directory.person(username),
                    reason="account is blocked",
                    comments="refused: the account is blocked",
                )
                return jsonify(error="account blocked"), 423
            if (
                info is None
                or info["password"] != request.form.get("password")
                or account not in info["accounts"]
            ):
                failures = directory.failures[username] = directory.failures.get(username, 0) + 1
                useraudit.record(
                    "user.signed_in",
                    outcome="failure",
                    user=directory.person(username) or {"name": username[:64]},
                    reason="unknown user or wrong password",
                    comments=f"wrong password (attempt {failures} in a row)",
                )
                if info is not None and failures >= MAX_FAILURES:
                    directory.blocked.add(username)
                    useraudit.record(
                        "user_account.blocked_failed_sign_ins",
                        target_user=directory.person(username),
                        user=directory.person(username),
                        comments=f"{failures} failed sign-in attempts in a row",
                    )
                return jsonify(error="bad credentials"), 401
            directory.failures.pop(username, None)
        login_user(DemoUser(username, info))
        return jsonify(ok=True)

    @app.post("/a/<account>/logout")
    @login_required
    def logout(account: str) -> Any:
        session.pop(IMPERSONATOR_SESSION_KEY, None)
        logout_user()
        return jsonify(ok=True)

    @app.post("/a/<account>/impersonate/<username>")
    @login_required
    def impersonate(account: str, username: str) -> Any:
        me = directory.people[current_user.username]
        if not me.get("admin") or username not in directory.people:
            abort(403)
        session[IMPERSONATOR_SESSION_KEY] = directory.person(current_user.username)
        login_user(DemoUser(username, directory.people[username]))
        return jsonify(ok=True)

    @app.post("/a/<account>/api/<code>")
    @login_required
    def act(account: str, code: str) -> Any:
        if CATALOG.get(code) is None:
            abort(404)
        body = request.get_json(silent=True) or {}
        when = body.get("occurred_at")
        useraudit.record(
            code,
            outcome=body.get("outcome", "success"),
            target_user=directory.person(body.get("target_user")),
            project=body.get("project"),
            project_name=body.get("project_name"),
            token_id=body.get("token_id"),
            params=body.get("params"),
            comments=body.get("comments"),
            reason=body.get("reason"),
            timestamp=datetime.fromisoformat(when) if when else None,
        )
        return jsonify(ok=True)

    UserAudit(app, trusted_proxies=1, get_account=_account_of)
    return app
