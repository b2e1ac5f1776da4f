"""FastAPI integration: the ASGI middleware plus dependencies for the acting user.

FastAPI authenticates inside dependencies (OAuth2/JWT), after any middleware
ran, so the acting user is handed to the audit context *by* a dependency::

    from fastapi import Depends, FastAPI
    from useraudit.middleware.fastapi import ActingUser, audited, install

    app = FastAPI()
    install(app, account="acme")          # or get_account=lambda scope: ...

    CurrentUser = Annotated[User, Depends(audited(get_current_user,
                                                  impersonator=lambda u: u.impersonator))]

    @app.post("/tokens")
    def create_token(user: CurrentUser):
        useraudit.record("token.created", token_id=...)   # user filled in

    @app.get("/whoami")
    def whoami(actor: ActingUser):                         # the audit view of the user
        return actor

Sign-ins: FastAPI has no sign-in of its own, so the token or session
endpoint calls the helpers re-exported here from :mod:`.signin`::

    from useraudit.middleware.fastapi import sign_in_failed, signed_in, signed_out

    user = authenticate(form.username, form.password)
    if user is None:
        sign_in_failed(form.username, reason="wrong password")
        raise HTTPException(401)
    signed_in(user)

``audited(dep)`` wraps your own user dependency: whatever it returns is bound
as the request's acting user (and ``impersonator(user)``, when given, as the
impersonator). It works for sync and async dependencies: FastAPI runs sync
ones in a thread with a copy of the context, and that copy still points to
the same request context object. Events recorded before the dependency ran
are held and get the user when the response starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse

from ._common import Capture
from ._failsafe import UNAVAILABLE_BODY, AuditError, contain
from .asgi import AuditMiddleware, default_route, default_user
from .context import Person, person
from .context import get as current_context
from .signin import sign_in_failed, signed_in, signed_out

__all__ = ["install", "audited", "ActingUser", "sign_in_failed", "signed_in", "signed_out"]


def install(app: FastAPI, **options: Any) -> None:
    """Add the ASGI middleware (keyword arguments: Capture's) and a 503 handler for AuditError.

    The settings are checked here, not at the first request (Starlette builds
    its middleware stack lazily): a bad ``account=`` fails at start-up.
    """
    options.setdefault("get_user", default_user)
    options.setdefault("get_route", default_route)
    app.add_middleware(AuditMiddleware, capture=Capture(**options))  # type: ignore[arg-type]
    app.add_exception_handler(AuditError, _unavailable)


async def _unavailable(request: Request, exc: Exception) -> PlainTextResponse:
    return PlainTextResponse(str(UNAVAILABLE_BODY, "utf-8"), status_code=503)


def audited(
    dependency: Callable[..., Any], *, impersonator: Callable[[Any], Any] | None = None
) -> Callable[..., Any]:
    """A dependency that returns ``dependency``'s user and binds it for the audit log."""

    def bind(user: Any) -> Any:
        ctx = current_context()
        if ctx is not None:
            with contain("binding the acting user", ctx.fail_closed):
                ctx.user = person(user)
                if impersonator is not None:
                    admin = impersonator(user)
                    if admin is not None:
                        ctx.impersonator = person(admin)
        return user

    # Binding is cheap: an async wrapper keeps it on the event loop whatever
    # kind of dependency it wraps.
    async def audited_user(user: Any = Depends(dependency)) -> Any:  # noqa: B008 - FastAPI's idiom
        return bind(user)

    return audited_user


async def acting_user() -> Person | None:
    """Dependency: the acting user as the audit log sees it (None outside requests/anonymous)."""
    ctx = current_context()
    return ctx.actor() if ctx is not None else None


ActingUser = Annotated[Person | None, Depends(acting_user)]
