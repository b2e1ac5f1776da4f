"""Django integration: a middleware class for ``MIDDLEWARE`` and sign-in receivers.

Settings::

    INSTALLED_APPS = [..., "useraudit.middleware.django.UserAuditConfig"]
    MIDDLEWARE = [
        ...,
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "useraudit.middleware.django.AuditMiddleware",
        ...,
    ]
    USERAUDIT = {
        "SPOOL_DIR": "/var/lib/useraudit/spool",   # passed to useraudit.configure
        "DURABILITY": "batch",                     # or "sync"
        "TRUSTED_PROXIES": 0,                      # N only behind N reverse proxies
        "ACCOUNT": "acme",                         # one tenant; or GET_ACCOUNT below
        "GET_USER": "myapp.audit.acting_user",     # dotted paths, all optional
        "GET_IMPERSONATOR": "myapp.audit.impersonator",
        # "GET_ACCOUNT": "myapp.audit.account",  # many tenants: request -> id
        "RULES": "myapp.audit.RULES",
        "FAIL_CLOSED": False,
    }

The acting user defaults to ``request.user`` read when the response starts —
after the view ran, so Django REST framework's token/JWT authentication
(which sets the user inside the view) is seen. The impersonator defaults to
``request.session["useraudit_impersonator"]``. The app config connects
``user_logged_in`` → ``user.signed_in``, ``user_logged_out`` →
``user.signed_out`` and ``user_login_failed`` → ``user.signed_in`` with
outcome failure (the attempted username only; Django has already cleansed
the credentials and we never look at the password).

``request.META`` keys read: ``REMOTE_ADDR``, ``HTTP_X_FORWARDED_FOR`` (only
with ``TRUSTED_PROXIES``; see :mod:`useraudit.middleware.wsgi` for why
trusting it otherwise is dangerous), ``HTTP_USER_AGENT``, ``HTTP_X_REQUEST_ID``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.apps import AppConfig
from django.utils.module_loading import import_string

from . import _common, signin
from ._common import Capture
from ._failsafe import UNAVAILABLE_BODY, AuditError, contain
from .context import CTX, STATUS, Binding, bind, unbind
from .recorder import configure

IMPERSONATOR_SESSION_KEY = "useraudit_impersonator"


def django_user(request: Any) -> Any:
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


def django_route(request: Any) -> Any:
    """The URL pattern that matched (``tokens/<str:tid>``)."""
    match = getattr(request, "resolver_match", None)
    return getattr(match, "route", None) if match is not None else None


def session_impersonator(request: Any) -> Any:
    session = getattr(request, "session", None)
    return session.get(IMPERSONATOR_SESSION_KEY) if session is not None else None


def _forwarded_for(request: Any) -> str | None:
    return request.META.get("HTTP_X_FORWARDED_FOR")


def _setting(name: str, default: Any = None) -> Any:
    from django.conf import settings

    return getattr(settings, "USERAUDIT", {}).get(name, default)


def _callable(name: str, default: Any) -> Any:
    value = _setting(name)
    if value is None:
        return default
    return import_string(value) if isinstance(value, str) else value


class AuditMiddleware:
    """Binds the audit context for each request; put it after AuthenticationMiddleware."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.capture = Capture(
            trusted_proxies=int(_setting("TRUSTED_PROXIES", 0)),
            get_user=_callable("GET_USER", django_user),
            get_impersonator=_callable("GET_IMPERSONATOR", session_impersonator),
            get_account=_callable("GET_ACCOUNT", None),
            account=_setting("ACCOUNT"),
            get_route=_callable("GET_ROUTE", django_route),
            rules=_callable("RULES", None),
            fail_closed=_setting("FAIL_CLOSED"),
        )
        self._reader = self.read  # bound once, handed to every request's context
        self._late = self.late

    def __call__(self, request: Any) -> Any:
        if _common.capturing():
            return self.get_response(request)
        capture = self.capture
        binding: Binding | None = None
        try:
            with contain("request setup", capture.fail_closed):
                ctx = capture.begin(
                    request, self._reader, request.method, request.path, _forwarded_for
                )
                binding = [ctx, self._late, request, request.method, request.path, *_UNSET]
        except AuditError:
            return _unavailable()
        else:
            if binding is None:  # our setup failed: serve the request uncaptured
                return self.get_response(request)
        token = bind(binding)
        try:
            try:
                response = self.get_response(request)
            except BaseException as exc:
                if binding[CTX] is not None:
                    capture.finish_quietly(binding[CTX], None, exc)
                raise
            ctx = binding[CTX]
            if ctx is None:  # nothing recorded, and no rule covers the request
                binding[STATUS] = response.status_code
                if getattr(response, "streaming", False):
                    response.streaming_content = _stream(
                        response.streaming_content, capture, binding, response.status_code
                    )
                return response
            try:
                capture.started(ctx, response.status_code)
            except AuditError:
                capture.finish_quietly(ctx, 503, None)
                return _unavailable()
            view_exc = getattr(request, "_useraudit_exception", None)
            if getattr(response, "streaming", False) and view_exc is None:
                response.streaming_content = _stream(
                    response.streaming_content, capture, binding, response.status_code
                )
                return response
            try:
                capture.finished(ctx, response.status_code, view_exc)
            except AuditError:
                if capture.fail_closed:
                    return _unavailable()
            return response
        finally:
            unbind(token)

    def late(self, binding: Binding) -> Any:
        """The context of a request bound without one, when something first asks for it."""
        return self.capture.late(binding, self._reader)

    def read(self, ctx: Any) -> None:
        """The request's META keys, read when a context field is first asked for."""
        self.capture.fill_from_cgi(ctx, ctx.request.META)

    def process_exception(self, request: Any, exception: Exception) -> Any:
        # Django turns view exceptions into responses inside get_response;
        # remember it so the request's rule event says failure.
        request._useraudit_exception = exception
        if isinstance(exception, AuditError) and self.capture.fail_closed:
            return _unavailable()
        return None


def _stream(
    content: Iterator[bytes], capture: Capture, binding: Binding, status: int
) -> Iterator[bytes]:
    token = bind(binding)
    try:
        for chunk in content:
            unbind(token)
            yield chunk
            token = bind(binding)
    except BaseException as exc:
        if binding[CTX] is not None:
            capture.finish_quietly(binding[CTX], status, exc)
        raise
    else:
        if binding[CTX] is not None:
            capture.finish_quietly(binding[CTX], status, None)
    finally:
        unbind(token)


# A binding's status (set once the view answered), headers, rule, number and people.
_UNSET = (None,) * 5


def _unavailable() -> Any:
    from django.http import HttpResponse

    return HttpResponse(UNAVAILABLE_BODY, status=503, content_type="text/plain; charset=utf-8")


def _signed_in(sender: Any, request: Any = None, user: Any = None, **_: Any) -> None:
    signin.signed_in(user)


def _signed_out(sender: Any, request: Any = None, user: Any = None, **_: Any) -> None:
    signin.signed_out(user)


def _sign_in_failed(sender: Any, credentials: Any = None, request: Any = None, **_: Any) -> None:
    # Django has already cleansed the credentials; only the name is read.
    username = None
    if isinstance(credentials, dict):
        from django.contrib.auth import get_user_model

        field = getattr(get_user_model(), "USERNAME_FIELD", "username")
        username = credentials.get(field) or credentials.get("username") or credentials.get("email")
    signin.sign_in_failed(username, "invalid credentials (django.contrib.auth)")


class UserAuditConfig(AppConfig):
    name = "useraudit.middleware.django"
    label = "useraudit"
    verbose_name = "User actions audit"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

        spool_dir = _setting("SPOOL_DIR")
        if spool_dir:
            configure(
                spool_dir=spool_dir,
                durability=_setting("DURABILITY", "batch"),
                fail_closed=bool(_setting("FAIL_CLOSED", False)),
                account=_setting("ACCOUNT"),
            )
        user_logged_in.connect(_signed_in, dispatch_uid="useraudit.signed_in")
        user_logged_out.connect(_signed_out, dispatch_uid="useraudit.signed_out")
        user_login_failed.connect(_sign_in_failed, dispatch_uid="useraudit.sign_in_failed")
