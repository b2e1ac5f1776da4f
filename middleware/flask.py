"""Flask integration: the WSGI middleware on ``app.wsgi_app`` plus Flask-Login signals.

Usage::

    from useraudit.middleware.flask import UserAudit

    audit = UserAudit(account="acme")    # or get_account=lambda environ: ...

    def create_app(config=None):
        app = Flask(__name__)
        ...
        audit.init_app(app)
        return app

What it does:

* wraps ``app.wsgi_app`` (not ``app``, so ``app.test_client()`` and
  ``app.run()`` keep working) with :class:`~useraudit.middleware.wsgi.AuditMiddleware`;
  a second ``init_app`` on the same app is a no-op;
* the acting user defaults to ``flask_login.current_user`` when the app has a
  login manager, read lazily and again when the response starts (inside the
  request context, after the view ran), so sign-ins inside the view count;
* the impersonator defaults to ``session[impersonator_session_key]`` (an id,
  or a dict with id/name/email/full_name) — write it there when an
  administrator starts acting as someone else, remove it when they stop;
* Flask-Login's ``user_logged_in`` → ``user.signed_in``,
  ``user_login_confirmed`` → ``user.signed_in`` (re-authentication),
  ``user_logged_out`` → ``user.signed_out``;
* a fail-closed recorder's :class:`AuditError` raised in a view is answered
  with 503 rather than Flask's 500.

Failed sign-ins have no Flask-Login signal: the sign-in view calls
:func:`sign_in_failed` (re-exported here from :mod:`.signin`) with the
attempted user name and a reason::

    if user is None or not user.check_password(password):
        sign_in_failed(username, reason="wrong password")
        return "Invalid credentials", 401
"""

from __future__ import annotations

from typing import Any

from . import signin
from ._common import Capture
from ._failsafe import UNAVAILABLE_BODY, AuditError
from .recorder import Recorder, get_recorder
from .signin import signed_in, signed_out
from .wsgi import AuditMiddleware

IMPERSONATOR_SESSION_KEY = "useraudit_impersonator"

__all__ = ["UserAudit", "sign_in_failed", "flask_user", "flask_route", "IMPERSONATOR_SESSION_KEY"]


def flask_user(_environ: Any = None) -> Any:
    """``flask_login.current_user`` when signed in, else None (no login manager: None)."""
    from flask import current_app, has_request_context

    if not has_request_context() or not hasattr(current_app, "login_manager"):
        return None
    from flask_login import current_user

    return current_user if current_user.is_authenticated else None


def flask_route(_environ: Any = None) -> Any:
    """The matched URL rule (``/tokens/<tid>``), once Flask has routed the request."""
    from flask import has_request_context, request

    if not has_request_context() or request.url_rule is None:
        return None
    return request.url_rule.rule


class UserAudit:
    """The Flask extension; keyword arguments are :class:`~._common.Capture`'s."""

    def __init__(
        self,
        app: Any = None,
        *,
        recorder: Recorder | None = None,
        impersonator_session_key: str = IMPERSONATOR_SESSION_KEY,
        signals: bool = True,
        **options: Any,
    ) -> None:
        self.recorder = recorder
        self.impersonator_session_key = impersonator_session_key
        self.signals = signals
        options.setdefault("get_user", flask_user)
        options.setdefault("get_impersonator", self.session_impersonator)
        options.setdefault("get_route", flask_route)
        self.capture = Capture(recorder=recorder, **options)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        if "useraudit" in app.extensions:
            return
        app.extensions["useraudit"] = self
        app.wsgi_app = AuditMiddleware(app.wsgi_app, capture=self.capture)
        app.register_error_handler(AuditError, _unavailable)
        if self.signals:
            from flask_login import user_logged_in, user_logged_out, user_login_confirmed

            user_logged_in.connect(self._logged_in, app, weak=False)
            user_logged_out.connect(self._logged_out, app, weak=False)
            user_login_confirmed.connect(self._login_confirmed, app, weak=False)

    def session_impersonator(self, _environ: Any = None) -> Any:
        from flask import has_request_context, session

        if not has_request_context():
            return None
        return session.get(self.impersonator_session_key)

    @property
    def _recorder(self) -> Recorder:
        return self.recorder or get_recorder()

    def sign_in_failed(
        self, username: Any, reason: str = signin.DEFAULT_FAILURE_REASON
    ) -> str | None:
        """Record a failed sign-in (Flask-Login has no signal for it); see :mod:`.signin`."""
        return signin.sign_in_failed(username, reason, recorder=self._recorder)

    def _logged_in(self, sender: Any, user: Any = None, **_: Any) -> None:
        signed_in(user, recorder=self._recorder)

    def _logged_out(self, sender: Any, user: Any = None, **_: Any) -> None:
        signed_out(user, recorder=self._recorder)

    def _login_confirmed(self, sender: Any, **_: Any) -> None:
        signed_in(recorder=self._recorder, comments="re-authenticated (fresh login confirmed)")


def sign_in_failed(username: Any, reason: str = signin.DEFAULT_FAILURE_REASON) -> str | None:
    """Record a failed sign-in from a view: Flask-Login has no signal for it.

    Uses the recorder of the app's :class:`UserAudit` (the process-wide one
    by default). Only the attempted name (cut, masked) and the reason are kept.
    """
    from flask import current_app, has_app_context

    ext = current_app.extensions.get("useraudit") if has_app_context() else None
    recorder = ext.recorder if isinstance(ext, UserAudit) else None
    return signin.sign_in_failed(username, reason, recorder=recorder)


def _unavailable(exc: AuditError) -> Any:
    return UNAVAILABLE_BODY, 503, {"Content-Type": "text/plain; charset=utf-8"}
