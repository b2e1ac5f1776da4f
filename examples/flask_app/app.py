"""Flask example: ``gunicorn --chdir examples 'flask_app.app:create_app()'``.

Environment: ``USERAUDIT_SPOOL`` (spool dir), ``USERAUDIT_DURABILITY``
(batch/sync), ``USERAUDIT_TRUSTED_PROXIES`` (0).

Audit events come from four places, to show each:
* Flask-Login signals (sign-in, sign-out) through the extension;
* ``useraudit.record`` in views (profile, roles, tokens);
* a structlog call routed by the processor (password change);
* capture rules (failed sign-in, token deletion, project export).
"""

from __future__ import annotations

import os
from typing import Any

import structlog
from demo_accounts import BY_ID, USERS, api_user, check_password, new_api_token
from flask import Blueprint, Flask, Response, abort, g, jsonify, request, session
from flask_login import LoginManager, current_user, login_required, login_user, logout_user

import useraudit
from useraudit.middleware import context as audit_context
from useraudit.middleware.flask import IMPERSONATOR_SESSION_KEY, UserAudit, flask_user
from useraudit.middleware.rules import Rule, Rules
from useraudit.middleware.structlog import mask_secrets, merge_audit_context, route_audit_events

RULES = Rules(
    [
        Rule("POST", "/login", "user.signed_in", success="", failure="401,403"),
        Rule("DELETE", "/tokens/{token_id}", "token.deleted"),
        Rule("GET", "/projects/{project}/export", "bot_project.exported"),
    ]
)

bp = Blueprint("main", __name__)
log = structlog.get_logger("flask_app")


def acting_user(_environ: Any) -> Any:
    # API calls authenticate inside the view (g.api_user); browsers by session.
    return g.get("api_user") or flask_user()


@bp.post("/login")
def login() -> Any:
    data = request.get_json(silent=True) or {}
    user = check_password(str(data.get("username", "")), str(data.get("password", "")))
    if user is None:
        # The rule records the failure; name who tried.
        audit_context.set_user({"name": str(data.get("username", ""))[:64]})
        return jsonify(error="invalid credentials"), 401
    login_user(user)
    return jsonify(ok=True, user=user.id)


@bp.post("/logout")
@login_required
def logout() -> Any:
    logout_user()
    session.pop(IMPERSONATOR_SESSION_KEY, None)
    return jsonify(ok=True)


@bp.post("/profile")
@login_required
def profile() -> Any:
    data = request.get_json(silent=True) or {}
    before = {"full_name": current_user.full_name}
    after = {"full_name": str(data.get("full_name", ""))}
    comments, params = useraudit.diff(before, after)
    useraudit.record("user.profile_updated", comments=comments, params=params)
    return jsonify(ok=True)


@bp.post("/password")
@login_required
def password() -> Any:
    data = request.get_json(silent=True) or {}
    if data.get("old_password") != current_user.password:
        return jsonify(error="wrong password"), 403
    # Routed to the audit log by the structlog processor; masked on the way.
    log.info("user.password_changed", new_password=data.get("new_password"), via="profile form")
    return jsonify(ok=True)


@bp.post("/users/<username>/roles")
@login_required
def roles(username: str) -> Any:
    if not current_user.is_admin:
        abort(403)
    target = USERS.get(username) or abort(404)
    roles = [str(r) for r in (request.get_json(silent=True) or {}).get("roles", [])]
    useraudit.record("user.roles_updated", target_user=target, params={"roles": roles})
    return jsonify(ok=True)


@bp.post("/tokens")
@login_required
def create_token() -> Any:
    project = (request.get_json(silent=True) or {}).get("project")
    tid, secret = new_api_token(current_user, project)
    useraudit.record("token.created", token_id=tid, project=project, params={"token": secret})
    return jsonify(id=tid, token=secret)


@bp.post("/tokens/<tid>/refresh")
@login_required
def refresh_token(tid: str) -> Any:
    _, secret = new_api_token(current_user, None)
    useraudit.record("token.refreshed", token_id=tid)
    return jsonify(id=tid, token=secret)


@bp.delete("/tokens/<tid>")
@login_required
def delete_token(tid: str) -> Any:
    return jsonify(ok=True)  # recorded by the rule


@bp.get("/projects/<project>/export")
def export(project: str) -> Any:
    # Token auth inside the view: the middleware sees the user when the response starts.
    g.api_user = api_user(request.headers.get("Authorization")) or (
        current_user if current_user.is_authenticated else None
    )
    if g.api_user is None:
        abort(401)

    def rows() -> Any:
        yield "id,name\n"
        for i in range(100):
            yield f"{i},row {i} of {project}\n"

    return Response(rows(), mimetype="text/csv")


@bp.post("/impersonate/<username>")
@login_required
def impersonate(username: str) -> Any:
    if not current_user.is_admin:
        abort(403)
    target = USERS.get(username) or abort(404)
    admin = current_user
    session[IMPERSONATOR_SESSION_KEY] = {
        "id": admin.id,
        "name": admin.username,
        "email": admin.email,
        "full_name": admin.full_name,
    }
    login_user(target)
    return jsonify(ok=True, acting_as=target.id)


@bp.get("/boom")
def boom() -> Any:
    raise RuntimeError("host bug")


def create_app(config: dict | None = None) -> Flask:
    useraudit.configure(
        spool_dir=os.environ.get("USERAUDIT_SPOOL", "var/spool"),
        durability=os.environ.get("USERAUDIT_DURABILITY", "batch"),  # type: ignore[arg-type]
        account=os.environ.get("USERAUDIT_ACCOUNT", "example"),  # one tenant
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            merge_audit_context,
            route_audit_events,
            mask_secrets,
            structlog.processors.JSONRenderer(),
        ]
    )
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("EXAMPLE_SECRET", "example-secret-not-for-production")
    )
    app.config.update(config or {})
    login_manager = LoginManager(app)
    login_manager.user_loader(BY_ID.get)
    app.register_blueprint(bp)
    UserAudit(
        app,
        trusted_proxies=int(os.environ.get("USERAUDIT_TRUSTED_PROXIES", "0")),
        get_user=acting_user,
        rules=RULES,
    )
    return app
