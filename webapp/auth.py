"""Sign-in and sign-out, audited with ``useraudit.record()``.

* Passwords are checked by the user provider (Argon2id in :mod:`.users`).
* The session is cleared before ``login_user``, so whatever a visitor had
  before signing in (a planted session included) does not carry over.
* Failed sign-ins are limited with Flask-Limiter per client IP *and* per
  username (``USERAUDIT_LOGIN_LIMIT``, default 5 per minute); only failures
  count, so the 6th rapid failure is answered 429 and a correct password
  is still accepted afterwards once the window has passed.
* Every attempt is recorded as ``user.signed_in`` with outcome success or
  failure (and why), every sign-out as ``user.signed_out``; each lands in
  every account the user holds a role on, so those accounts' admins see it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

import useraudit

from . import resources
from .users import WebUser

bp = Blueprint("auth", __name__)

COMMENT = "Admin UI: User actions audit"


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=128)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    next = HiddenField()


def safe_next(target: str | None) -> str | None:
    """Only same-site relative paths: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


def _accounts_of(user: WebUser | None) -> list[str]:
    roles = getattr(user, "roles", None) or {}
    return sorted(roles) or [current_app.config["USERAUDIT_SELF_ACCOUNT"]]


def audit_session(
    action: str,
    user: WebUser | None,
    *,
    username: str = "",
    outcome: str = "success",
    reason: str | None = None,
) -> None:
    person: Any = user.person() if user else ({"name": username[:128]} if username else None)
    for account in _accounts_of(user):
        useraudit.record(
            action, outcome=outcome, user=person, account=account, comments=COMMENT, reason=reason
        )


def _failed(response: Any) -> bool:
    # A successful sign-in redirects; anything else spent one attempt.
    return response.status_code != 302


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET" and current_user.is_authenticated:
        return redirect(url_for("useraudit.actions.accounts"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
        return render_template("useraudit/login.html", form=form)

    username = (request.form.get("username") or "").strip()[:128]
    limit = current_app.config["USERAUDIT_LOGIN_LIMIT"]
    limiter = resources.limiter()
    try:
        with limiter.limit(
            limit, key_func=lambda: f"signin-ip:{request.remote_addr}", deduct_when=_failed
        ):
            pass
        with limiter.limit(
            limit, key_func=lambda: f"signin-user:{username.lower()}", deduct_when=_failed
        ):
            pass
    except RateLimitExceeded:
        by_username = getattr(resources.users(), "by_username", None)
        known = by_username(username) if by_username else None
        audit_session(
            "user.signed_in",
            known,
            username=username,
            outcome="failure",
            reason="too many failed sign-in attempts",
        )
        raise

    if not form.validate_on_submit():
        return render_template(
            "useraudit/login.html", form=form, error="Enter a username and password."
        ), 400
    user = resources.users().authenticate(username, form.password.data or "")
    if user is None:
        by_username = getattr(resources.users(), "by_username", None)
        known = by_username(username) if by_username else None
        audit_session(
            "user.signed_in",
            known,
            username=username,
            outcome="failure",
            reason="wrong username or password",
        )
        return render_template(
            "useraudit/login.html", form=form, error="Wrong username or password."
        ), 401
    session.clear()  # a fresh session: nothing from before sign-in survives
    login_user(user)
    session.permanent = True
    audit_session("user.signed_in", user)
    return redirect(safe_next(form.next.data) or url_for("useraudit.actions.accounts"))


@bp.post("/logout")
@login_required
def logout() -> Any:
    user = current_user._get_current_object()  # type: ignore[attr-defined]
    audit_session("user.signed_out", user)
    logout_user()
    session.clear()
    flash("You have signed out.", "info")
    return redirect(url_for("useraudit.auth.login"))
