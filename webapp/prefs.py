"""Per-user display preferences: the time zone and the language.

The built-in :class:`~.users.UserStore` keeps them in its database, so they
follow the admin from browser to browser. A host's own user provider may
offer the same two methods (``preferences(user_id) -> dict`` and
``set_preference(user_id, key, value)``); without them the choice lives in
the signed session cookie and lasts as long as the sign-in.

``POST <prefix>/preferences`` (CSRF-checked) sets ``tz`` and/or ``lang``
(the first visit's browser time zone uses it); the header's language links
are ``GET <prefix>/language/<code>?next=...`` (harmless to forge: the worst
a third-party page can do is switch an admin's language).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, g, redirect, request, session, url_for
from flask_login import current_user

from . import resources
from .auth import safe_next
from .zones import find, is_offered

bp = Blueprint("prefs", __name__)

LANGUAGES = {"en": "English", "ru": "Русский"}
KEYS = ("tz", "lang")
_SESSION_KEY = "useraudit_prefs"
_CACHE = "_useraudit_prefs"


def _valid(key: str, value: str) -> bool:
    if key == "tz":
        return is_offered(value)
    if key == "lang":
        return value in LANGUAGES
    return False


def preferences() -> dict[str, str]:
    """The admin's saved preferences; before sign-in, the session's.

    Read once per request (a page asks for the zone and the language several
    times); :func:`remember` forgets the request's copy.
    """
    cached = g.get(_CACHE)
    if cached is None:
        cached = g.setdefault(_CACHE, _read())
    return dict(cached)


def _read() -> dict[str, str]:
    provider: Any = resources.users()
    if current_user and current_user.is_authenticated and hasattr(provider, "preferences"):
        saved = provider.preferences(current_user.get_id())
    else:
        saved = session.get(_SESSION_KEY) or {}
    return {k: v for k, v in saved.items() if k in KEYS and _valid(k, v)}


def default_tz() -> str:
    """The zone a page without ``tz`` shows: the admin's saved one, else the app's default."""
    return preferences().get("tz") or current_app.config["USERAUDIT_DEFAULT_TZ"]


def remember(key: str, value: str) -> None:
    """Save one preference for the signed-in user (invalid values are ignored)."""
    if key not in KEYS or not _valid(key, value):
        return
    g.pop(_CACHE, None)
    provider: Any = resources.users()
    if current_user.is_authenticated and hasattr(provider, "set_preference"):
        if provider.preferences(current_user.get_id()).get(key) != value:
            provider.set_preference(current_user.get_id(), key, value)
    else:
        saved = dict(session.get(_SESSION_KEY) or {})
        if saved.get(key) != value:
            saved[key] = value
            session[_SESSION_KEY] = saved


@bp.get("/language/<code>")
def language(code: str) -> Any:
    """The header's language switch: save the choice, back to the page."""
    if code not in LANGUAGES:
        abort(404)
    remember("lang", code)
    return redirect(
        safe_next(request.args.get("next")) or url_for("useraudit.actions.accounts"), 303
    )


@bp.post("/preferences")
def save() -> Any:
    """Save tz/lang from a form or the page's script; back to ``next`` (204 without one)."""
    given = {k: (request.form.get(k) or "").strip() for k in KEYS if request.form.get(k)}
    if "tz" in given:
        given["tz"] = find(given["tz"]) or given["tz"]
    if not given or not all(_valid(k, v) for k, v in given.items()):
        abort(400)
    for key, value in given.items():
        remember(key, value)
    target = safe_next(request.form.get("next"))
    if target:
        return redirect(target, 303)
    if request.accept_mimetypes.best == "text/html" and not request.form.get("js"):
        return redirect(url_for("useraudit.actions.accounts"), 303)
    return "", 204
