"""The API tokens page: an account's USER_ADMIN lists, creates and revokes its tokens.

Same authorization as the User actions page (USER_ADMIN on the route's
account, checked on every request) and CSRF on every form. Routes:

* ``GET  /a/<account>/api-tokens``: the account's tokens (name, scopes, who
  created it and when, expiry, last use and from which address, state) and
  the form to create one.
* ``POST /a/<account>/api-tokens``: form ``name``, ``scope`` (one or both of
  :data:`~.api_tokens.SCOPES`), ``days`` (one of :data:`EXPIRY_DAYS`; a token
  always expires). The answer is the page itself holding the new secret,
  once: it is never stored in clear, put in the session, a flash message, a
  log line or the audit event, so no later page can show it again. Creations
  are limited per admin and account (``USERAUDIT_TOKEN_CREATE_LIMIT``).
* ``GET  /a/<account>/api-tokens/<token_id>/revoke``: asks for confirmation.
* ``POST /a/<account>/api-tokens/<token_id>/revoke``: revokes at once.

Creation and revocation are recorded by :class:`~.api_tokens.TokenStore`,
with the same actions as ``useraudit api-tokens`` and the token id in
``audit.token.id``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from limits import parse

from . import resources
from .actions import admin_required
from .api import tokens
from .api_tokens import SCOPES, ApiToken

bp = Blueprint("api_tokens", __name__)

EXPIRY_DAYS = (30, 90, 365)
DEFAULT_DAYS = 90
DEFAULT_CREATE_LIMIT = "10 per hour"
NAME_MAX = 128


@bp.app_template_filter("utc_time")
def utc_time(ts: float | None) -> str:
    """A token's times, to the minute, in UTC (said on the page)."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts)) if ts else ""


@bp.app_template_filter("utc_day")
def utc_day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def state(token: ApiToken) -> str:
    """``active``, ``expired`` or ``revoked`` (revoked wins: it was a person's choice)."""
    if token.revoked_at is not None:
        return "revoked"
    return "active" if token.active else "expired"


def _own_token(account: str, token_id: str) -> ApiToken:
    # Another account's token is "not found" too: no oracle for ids.
    token = tokens().get(token_id[:64])
    if token is None or token.account != account:
        abort(404)
    return token


def _page(account: str, status: int = 200, **context: Any) -> Any:
    listed = tokens().list(account)
    listed.sort(key=lambda t: (state(t) != "active", -t.created_at))
    form = {"name": "", "scopes": ("events:read",), "days": DEFAULT_DAYS}
    form.update(context.pop("form", {}))
    return render_template(
        "useraudit/api_tokens.html",
        form_id=secrets.token_urlsafe(16),
        account=account,
        accounts=current_user.admin_accounts(),
        tokens=listed,
        state=state,
        scopes=SCOPES,
        expiry_days=EXPIRY_DAYS,
        form=form,
        **context,
    ), status


@bp.get("/a/<account>/api-tokens")
@admin_required
def api_tokens(account: str) -> Any:
    return _page(account)


# A reload of the page that showed a new secret would send its form again:
# each form carries an id, and an id already used creates nothing.
SENT_FORMS_KEPT = 20


def _first_sending(form_id: str) -> bool:
    sent = list(session.get("api_token_forms", ()))
    if not form_id or form_id in sent:
        return False
    session["api_token_forms"] = [*sent, form_id][-SENT_FORMS_KEPT:]
    return True


def _take_creation(account: str) -> bool:
    """Count one creation for this admin in this account; False when over the limit."""
    limit = parse(current_app.config.get("USERAUDIT_TOKEN_CREATE_LIMIT", DEFAULT_CREATE_LIMIT))
    key = f"api-token-create:{account}:{current_user.id}"
    return resources.signin_limiter().hit(limit, key)


@bp.post("/a/<account>/api-tokens")
@admin_required
def create(account: str) -> Any:
    name = request.form.get("name", "").strip()
    scopes = tuple(s for s in SCOPES if s in request.form.getlist("scope"))
    days_text = request.form.get("days", "")
    days = int(days_text) if days_text.isdigit() else 0
    form = {"name": name[:NAME_MAX], "scopes": scopes, "days": days}
    errors = []
    if not name:
        errors.append(_("Give the token a name: what it is for."))
    elif len(name) > NAME_MAX:
        errors.append(_("The name is longer than %(n)s characters.", n=NAME_MAX))
    unknown = set(request.form.getlist("scope")) - set(SCOPES)
    if not scopes or unknown:
        errors.append(_("Choose at least one scope."))
    if days not in EXPIRY_DAYS:
        errors.append(_("Choose when the token expires."))
    if errors:
        return _page(account, 400, form=form, errors=errors)
    if not _first_sending(request.form.get("form_id", "")[:64]):
        message = _(
            "This form was already sent: its token was created then, and its secret shown "
            "once. Revoke it below if the secret was not copied."
        )
        return _page(account, 409, form=form, errors=[message])
    if not _take_creation(account):
        abort(429)
    token, secret = tokens().create(
        account, name, scopes, created_by=current_user.person(), ttl_days=days
    )
    # Rendered, not redirected: a redirect would have to carry the secret in
    # the session cookie or the URL.
    return _page(account, created=token, secret=secret)


@bp.get("/a/<account>/api-tokens/<token_id>/revoke")
@admin_required
def confirm_revoke(account: str, token_id: str) -> Any:
    token = _own_token(account, token_id)
    if token.revoked_at is not None:
        return redirect(url_for(".api_tokens", account=account))
    return render_template(
        "useraudit/api_token_revoke.html",
        account=account,
        accounts=current_user.admin_accounts(),
        token=token,
        state=state,
    )


@bp.post("/a/<account>/api-tokens/<token_id>/revoke")
@admin_required
def revoke(account: str, token_id: str) -> Any:
    token = _own_token(account, token_id)
    tokens().revoke(token.id, by=current_user.person(), account=account)
    flash(_("Token “%(name)s” revoked: it no longer opens the API.", name=token.name), "info")
    return redirect(url_for(".api_tokens", account=account))
