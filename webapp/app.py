"""The admin UI as a Flask application, or mounted inside a host Flask app.

Standalone (what ``useraudit web`` runs)::

    from useraudit.webapp.app import create_app
    app = create_app({"USERAUDIT_STORE": "http://127.0.0.1:9200", "SECRET_KEY": "..."})

Inside a host application, under a prefix of its choosing::

    from useraudit.webapp.app import mount
    mount(host_app, url_prefix="/audit", config={"USERAUDIT_STORE": "..."})

Everything lives in one parent blueprint, ``useraudit``, with three children:
``auth`` (sign-in/out), ``actions`` (account picker, User actions page) and
``export`` (XLSX). CSRF, security headers and the request context that
``useraudit.record()`` reads are applied to that blueprint only, so mounting
it changes nothing about the host's own routes.

Configuration keys (``create_app(config)`` or the host's ``app.config``):

``USERAUDIT_STORE``       store URL or a :class:`~useraudit.store.Store` instance
``USERAUDIT_USERS``       a user provider (see :mod:`.users`) or a path to the user database
``USERAUDIT_DEFAULT_TZ``  time zone when the URL names none (default ``UTC``)
``USERAUDIT_SELF_ACCOUNT`` account for sign-in failures of unknown usernames (default ``useraudit``)
``USERAUDIT_LOGIN_LIMIT`` Flask-Limiter limit on failed sign-ins, per IP and per username
                          (default ``5 per minute``: the 6th rapid failure is refused)
``USERAUDIT_LIMITS_STORAGE`` where sign-in attempts are counted: ``memory://`` (default, one
                          process) or ``sqlite:///path`` shared by every process of the UI
``USERAUDIT_SESSIONS_DB`` server-side sessions for a host's own user provider (the built-in
                          user store keeps them in its own file)
``USERAUDIT_TRUSTED_PROXIES`` how many proxies in front may set X-Forwarded-For (default 0)
``USERAUDIT_EXPORT_PROCESS_ROWS`` from this many rows an export's workbook is written by a
                          child process (default 20,000; 0: never)
``USERAUDIT_EXPORT_MAX_ROWS`` rows per sheet before the next one (default Excel's 1,048,576)
``USERAUDIT_API_TOKENS``  API token database (default ``$USERAUDIT_HOME/api_tokens.db``)
``USERAUDIT_API_RATE``    requests per token (default ``600 per minute``)
``USERAUDIT_TOKEN_CREATE_LIMIT`` API tokens one admin may create per account (default
                          ``10 per hour``; the API tokens page answers 429 beyond)
``USERAUDIT_METRICS``     serve Prometheus metrics at ``/metrics`` (default False)
``USERAUDIT_COMPLETENESS_LAG`` seconds the completeness mark may trail before the User
                          actions page says indexing is behind (default 120)
``SESSION_COOKIE_SECURE`` default True; set False only for plain-HTTP development on loopback
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Blueprint, Flask, g, render_template, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError, CSRFProtect
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from useraudit.middleware import context as audit_context
from useraudit.store import Store, StoreError

from . import (
    actions,
    api_tokens_page,
    auth,
    event,
    export,
    i18n,
    limits_sqlite,  # noqa: F401 - registers the sqlite:// limits storage
    notices,
    prefs,
    resources,
    security,
)

log = logging.getLogger("useraudit.webapp")

csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "useraudit.auth.login"
login_manager.login_message = "Please sign in to see user actions."
login_manager.login_message_category = "info"
# Flask-Login drops the session when the client's IP/agent fingerprint changes.
login_manager.session_protection = "strong"

DEFAULTS: dict[str, Any] = {
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": True,
    "SESSION_COOKIE_NAME": "useraudit_session",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=8),
    "WTF_CSRF_TIME_LIMIT": 8 * 3600,
    "USERAUDIT_DEFAULT_TZ": "UTC",
    "USERAUDIT_SELF_ACCOUNT": "useraudit",
    "USERAUDIT_LOGIN_LIMIT": "5 per minute",
    "USERAUDIT_TRUSTED_PROXIES": 0,
    "RATELIMIT_HEADERS_ENABLED": True,
}

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def build_blueprint() -> Blueprint:
    bp = Blueprint(
        "useraudit",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )
    bp.register_blueprint(auth.bp)
    bp.register_blueprint(actions.bp)
    bp.register_blueprint(export.bp)
    bp.register_blueprint(event.bp)
    bp.register_blueprint(prefs.bp)
    bp.register_blueprint(security.bp)
    bp.register_blueprint(api_tokens_page.bp)
    bp.context_processor(notices.notices)

    @bp.before_request
    def _before() -> None:
        # CSRF on every unsafe request of ours, even when the host app has
        # CSRF checking off for its own routes.
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            csrf.protect()
        # The request context record() reads: who and from where. A host's
        # useraudit middleware may already have bound one; then we add to it.
        ctx = audit_context.current.get()
        if ctx is None:
            ctx = audit_context.RequestContext()
            g._useraudit_ctx_token = audit_context.current.set(ctx)
        ctx.client_ip = ctx.client_ip or request.remote_addr
        ctx.user_agent = ctx.user_agent or request.headers.get("User-Agent")
        ctx.method = request.method
        ctx.path = request.path
        ctx.request_id = ctx.request_id or secrets.token_hex(8)

    @bp.teardown_request
    def _teardown(_exc: BaseException | None) -> None:
        token = g.pop("_useraudit_ctx_token", None)
        if token is not None:
            audit_context.current.reset(token)

    @bp.after_request
    def _headers(response: Any) -> Any:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")  # URLs hold filter values
        response.headers.setdefault("X-Frame-Options", "DENY")
        if (
            not request.path.startswith(bp.static_url_path or "/static")
            and "/static/" not in request.path
        ):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @bp.app_errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> Any:
        return render_template(
            "useraudit/error.html",
            status=400,
            title="Form expired",
            message="The form was open too long or came from elsewhere. "
            "Go back, reload the page and try again.",
        ), 400

    return bp


def _error_page(exc: HTTPException) -> Any:
    messages = {
        403: (
            "Not allowed",
            "You need the USER_ADMIN role on this account to see its user actions.",
        ),
        404: ("Not found", "There is nothing at this address."),
        405: ("Not allowed", "That method is not supported here."),
        429: (
            "Too many attempts",
            "Too many attempts in a short time. Wait a minute and try again.",
        ),
    }
    title, message = messages.get(exc.code or 500, (exc.name, exc.description or ""))
    return render_template(
        "useraudit/error.html", status=exc.code, title=title, message=message
    ), exc.code


def _store_error(exc: StoreError) -> Any:
    log.warning("store error: %s", exc)
    return render_template(
        "useraudit/error.html",
        status=503,
        title="Audit log unavailable",
        message="The audit log store cannot be reached right now. Try again in a moment.",
        retry=True,
    ), 503


def _internal_error(exc: Exception) -> Any:
    if isinstance(exc, HTTPException):
        return _error_page(exc)
    log.exception("unexpected error in the admin UI")
    return render_template(
        "useraudit/error.html",
        status=500,
        title="Something went wrong",
        message="An unexpected error happened. It has been logged.",
    ), 500


def init_extensions(app: Flask) -> None:
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if not app.config.get("SECRET_KEY"):
        # Sessions will not survive a restart; say so once.
        log.warning("no SECRET_KEY configured: using a random one (sign-ins end on restart)")
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    app.extensions.setdefault("useraudit", {})
    ext = app.extensions["useraudit"]
    ext.setdefault(
        "store",
        app.config["USERAUDIT_STORE"]
        if isinstance(app.config.get("USERAUDIT_STORE"), Store)
        else None,
    )
    provider = app.config.get("USERAUDIT_USERS")
    if provider is not None and not isinstance(provider, str):
        ext["users"] = provider
    elif isinstance(provider, str):
        app.config["USERAUDIT_USERS_DB"] = provider
    i18n.init_app(app)
    if "csrf" not in app.extensions:
        csrf.init_app(app)
    if not hasattr(app, "login_manager"):
        login_manager.init_app(app)
    # One limiter per app: its memory storage must not be shared between apps
    # in one process (tests, several mounts).
    # USERAUDIT_LIMITS_STORAGE shares the counts between processes: `useraudit
    # web` points it at one SQLite file for all its workers (limits_sqlite).
    storage_uri = app.config.get("USERAUDIT_LIMITS_STORAGE") or "memory://"
    ext["limiter"] = Limiter(
        get_remote_address,
        app=app,
        storage_uri=storage_uri,
        default_limits=[],
        strategy="fixed-window",
    )
    ext["signin_limiter"] = FixedWindowRateLimiter(storage_from_string(storage_uri))


@login_manager.user_loader
def _load_user(user_id: str) -> Any:
    # The signed cookie must also name a session the server still holds:
    # signed out, signed out everywhere, or a new password/rights end it.
    if not resources.sessions().is_active(session.get(resources.SESSION_KEY), user_id):
        return None
    return resources.users().get(user_id)


def mount(app: Flask, url_prefix: str = "/audit", config: Mapping[str, Any] | None = None) -> Flask:
    """Add the UI to a host Flask app under ``url_prefix``.

    The host keeps its own routes, session cookie settings (we only turn
    SameSite=Lax on when it is unset) and CSRF/login settings; when it has no
    LoginManager, ours is installed (our users then sign in at
    ``<prefix>/login``).
    """
    app.config.update(config or {})
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # our blueprint checks its own forms
    init_extensions(app)
    app.register_blueprint(build_blueprint(), url_prefix=url_prefix or None)
    for code in (403, 404, 405, 429):
        app.register_error_handler(code, _error_page) if not app.error_handler_spec.get(
            None, {}
        ).get(code) else None
    app.register_error_handler(StoreError, _store_error)
    return app


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """A standalone admin UI app (see the module docstring for config keys)."""
    app = Flask(__name__, static_folder=None)
    app.config.update(DEFAULTS)  # over Flask's own defaults, under the caller's config
    app.config.update(config or {})
    init_extensions(app)
    proxies = int(app.config["USERAUDIT_TRUSTED_PROXIES"])
    if proxies:
        # Only the given number of proxies may name the client; see ProxyFix.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    app.register_blueprint(build_blueprint())
    for code in (403, 404, 405, 429):
        app.register_error_handler(code, _error_page)
    app.register_error_handler(StoreError, _store_error)
    app.register_error_handler(Exception, _internal_error)
    from .api import install as install_api
    from .metrics import install as install_metrics

    install_api(app)
    install_metrics(app)
    return app
