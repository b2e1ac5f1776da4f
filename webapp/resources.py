"""What the UI's requests share, kept per Flask app and opened on first use.

The store, the user database and the sign-in rate limiter live in
``app.extensions["useraudit"]`` (set up by :func:`useraudit.webapp.app.init_extensions`),
so several apps in one process (tests, a host mounting the UI) never share them.
"""

from __future__ import annotations

from flask import current_app
from flask_limiter import Limiter
from limits.strategies import FixedWindowRateLimiter

from useraudit.store import Store, open_store

from .sessions import SessionRegistry
from .users import UserProvider, UserStore

# Where the signed session cookie keeps the id of its server-side session.
SESSION_KEY = "_useraudit_sid"


def store() -> Store:
    """The store this app reads, opened on first use."""
    ext = current_app.extensions["useraudit"]
    if ext.get("store") is None:
        ext["store"] = open_store(current_app.config.get("USERAUDIT_STORE"))
    return ext["store"]


def limiter() -> Limiter:
    return current_app.extensions["useraudit"]["limiter"]


def signin_limiter() -> FixedWindowRateLimiter:
    """Counts sign-in attempts: ``hit`` adds and compares in one atomic step."""
    return current_app.extensions["useraudit"]["signin_limiter"]


def users() -> UserProvider:
    ext = current_app.extensions["useraudit"]
    if ext.get("users") is None:
        ext["users"] = UserStore(current_app.config.get("USERAUDIT_USERS_DB"))
    return ext["users"]


def sessions() -> SessionRegistry:
    """The server-side session registry: the built-in user store's, else its own file."""
    ext = current_app.extensions["useraudit"]
    if ext.get("sessions") is None:
        own = getattr(users(), "sessions", None)
        if isinstance(own, SessionRegistry):
            ext["sessions"] = own
        else:
            from useraudit.config import home

            path = current_app.config.get("USERAUDIT_SESSIONS_DB") or home() / "websessions.db"
            ext["sessions"] = SessionRegistry(path)
    return ext["sessions"]
