"""What the UI's requests share, kept per Flask app and opened on first use.

The store, the user database and the sign-in rate limiter live in
``app.extensions["useraudit"]`` (set up by :func:`useraudit.webapp.app.init_extensions`),
so several apps in one process (tests, a host mounting the UI) never share them.
"""

from __future__ import annotations

from flask import current_app
from flask_limiter import Limiter

from useraudit.store import Store, open_store

from .users import UserProvider, UserStore


def store() -> Store:
    """The store this app reads, opened on first use."""
    ext = current_app.extensions["useraudit"]
    if ext.get("store") is None:
        ext["store"] = open_store(current_app.config.get("USERAUDIT_STORE"))
    return ext["store"]


def limiter() -> Limiter:
    return current_app.extensions["useraudit"]["limiter"]


def users() -> UserProvider:
    ext = current_app.extensions["useraudit"]
    if ext.get("users") is None:
        ext["users"] = UserStore(current_app.config.get("USERAUDIT_USERS_DB"))
    return ext["users"]
