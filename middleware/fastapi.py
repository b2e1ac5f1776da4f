"""FastAPI integration: the ASGI middleware plus dependencies for the acting user.

FastAPI authenticates inside dependencies (OAuth2/JWT), after any middleware
ran, so the acting user is handed to the audit context *by* a dependency::

    from fastapi import Depends, FastAPI
    from useraudit.middleware.fastapi import ActingUser, audited, install

    app = FastAPI()
    install(app, trusted_proxies=1)

    CurrentUser = Annotated[User, Depends(audited(get_current_user,
                                                  impersonator=lambda u: u.impersonator))]

    @app.post("/tokens")
    def create_token(user: CurrentUser):
        useraudit.record("token.created", token_id=...)   # user filled in

    @app.get("/whoami")
    def whoami(actor: ActingUser):                         # the audit view of the user
        return actor

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

from ._failsafe import UNAVAILABLE_BODY, AuditError, contain
from .asgi import AuditMiddleware
from .context import Person, current, person


def install(app: FastAPI, **options: Any) -> None:
    """Add the ASGI middleware (keyword arguments: Capture's) and a 503 handler for AuditError."""
    app.add_middleware(AuditMiddleware, **options)  # type: ignore[arg-type]
    app.add_exception_handler(AuditError, _unavailable)


async def _unavailable(request: Request, exc: Exception) -> PlainTextResponse:
    return PlainTextResponse(UNAVAILABLE_BODY.decode(), status_code=503)


def audited(
    dependency: Callable[..., Any], *, impersonator: Callable[[Any], Any] | None = None
) -> Callable[..., Any]:
    """A dependency that returns ``dependency``'s user and binds it for the audit log."""

    def bind(user: Any) -> Any:
        ctx = current.get()
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
    ctx = current.get()
    return ctx.actor() if ctx is not None else None


ActingUser = Annotated[Person | None, Depends(acting_user)]
