"""Sign-in outcomes, the same three events for every framework.

The integrations call these from their frameworks' signals (Flask-Login's
``user_logged_in`` / ``user_logged_out``, Django's ``user_logged_in`` /
``user_logged_out`` / ``user_login_failed``). Where a framework sends no
signal for a failure (Flask-Login, FastAPI), the host's sign-in view calls
:func:`sign_in_failed` itself, as the quickstarts show::

    from useraudit.middleware.signin import sign_in_failed

    if user is None or not user.check_password(form.password):
        sign_in_failed(form.username, reason="wrong password")
        return "Invalid credentials", 401

Only the attempted user name is kept, cut to :data:`MAX_ATTEMPTED_NAME`
characters (a password typed into the name field must not end up whole in
the log), and masked like any other text. The password is never passed here.
"""

from __future__ import annotations

from typing import Any

from .recorder import Recorder, get_recorder

SIGNED_IN = "user.signed_in"
SIGNED_OUT = "user.signed_out"
# Longest attempted user name and reason kept.
MAX_ATTEMPTED_NAME = 128
MAX_REASON = 256
DEFAULT_FAILURE_REASON = "invalid credentials"


def signed_in(user: Any = None, *, recorder: Recorder | None = None, **kwargs: Any) -> str | None:
    """Record a successful sign-in of ``user`` (default: the request's acting user)."""
    return (recorder or get_recorder()).record(SIGNED_IN, user=user, **kwargs)


def signed_out(user: Any = None, *, recorder: Recorder | None = None, **kwargs: Any) -> str | None:
    """Record a sign-out of ``user`` (default: the request's acting user)."""
    return (recorder or get_recorder()).record(SIGNED_OUT, user=user, **kwargs)


def sign_in_failed(
    username: Any,
    reason: str = DEFAULT_FAILURE_REASON,
    *,
    recorder: Recorder | None = None,
    **kwargs: Any,
) -> str | None:
    """Record a failed sign-in: the attempted user name (cut) and why it failed."""
    rec = recorder or get_recorder()
    name = rec.masker.text(attempted_name(username)) if username not in (None, "") else ""
    return rec.record(
        SIGNED_IN,
        outcome="failure",
        user={"name": name} if name else {"name": "(empty)"},
        reason=str(reason or DEFAULT_FAILURE_REASON)[:MAX_REASON],
        **kwargs,
    )


def attempted_name(username: Any) -> str:
    """The attempted user name as stored: text, at most MAX_ATTEMPTED_NAME characters."""
    text = username if isinstance(username, str) else str(username)
    return text.strip()[:MAX_ATTEMPTED_NAME]
