"""Our own failures, contained and counted, never the host's problem.

Capture must not break the host app: an exception from our code or from a
host callback (``get_user``, ``get_route``, rules) is logged, counted and
swallowed, unless the host asked to fail closed. Nothing keeps the
exceptions themselves: a host app with a broken spool would otherwise hold
every failure alive for the life of the process.

Tests see every swallowed error through :func:`on_internal_error`, the hook
``tests/conftest.py`` patches to fail any test that hid one (as
sentry-python's test suite does with ``capture_internal_exception``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("useraudit.middleware")


# What a fail-closed request is answered with (503) when its audit event cannot be recorded.
UNAVAILABLE_BODY = b"audit trail unavailable\n"


class AuditError(RuntimeError):
    """Raised by a fail-closed recorder when an event could not be spooled."""


class CaptureError(AuditError):
    """Raised by :func:`contain` instead of swallowing, when failing closed."""


@dataclass
class CaptureStats:
    # Errors the middleware contained (record()'s own are in Recorder.stats).
    internal_errors: int = 0


stats = CaptureStats()


def on_internal_error(exc: Exception, what: str) -> None:
    """Called with every error we swallow; does nothing unless a test patches it."""


def internal_error(exc: Exception, what: str) -> None:
    """Hand a swallowed error to the hook (looked up at call time, so patching works)."""
    on_internal_error(exc, what)


class contain:  # noqa: N801 - used like a function: `with contain("what"):`
    """Swallow, log and count errors of our own code and of host callbacks.

    Counted in :data:`stats` and passed to :func:`on_internal_error`. With
    ``fail_closed`` it is re-raised as :class:`CaptureError`, which the
    middleware answers with 503.
    """

    __slots__ = ("what", "fail_closed")

    def __init__(self, what: str, fail_closed: bool = False) -> None:
        self.what = what
        self.fail_closed = fail_closed

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False  # KeyboardInterrupt, SystemExit... are not ours to eat
        if isinstance(exc, AuditError):
            return False  # already counted by the recorder, meant to propagate
        swallowed(exc, self.what, self.fail_closed)
        return True


def swallowed(exc: Exception, what: str, fail_closed: bool = False) -> None:
    """Count and log an error we contain (the hot paths call this from ``except``)."""
    stats.internal_errors += 1
    internal_error(exc, what)
    log.error("useraudit: %s failed: %r", what, exc, exc_info=exc)
    if fail_closed:
        raise CaptureError(f"useraudit: {what} failed: {exc!r}") from exc
