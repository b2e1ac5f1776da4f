"""Per-request audit context, carried in a ContextVar.

The middleware binds one :class:`RequestContext` at request entry and
resets it in ``finally``; ``record()`` reads it to fill who/where/how.
We keep one ContextVar holding a small mutable object rather than one
ContextVar per key: one set and one reset per request, and the acting user
can be filled in *late* — when the response starts, after the view's own
authentication (token/JWT) has run — by mutating the bound object.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

Person = dict[str, str]


@dataclass(slots=True)
class RequestContext:
    request_id: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    method: str | None = None
    path: str | None = None
    route: str | None = None
    account_id: str | None = None
    account_name: str | None = None
    user: Person | None = None
    impersonator: Person | None = None
    status: int | None = None
    # Anything the host app wants on every event of this request.
    extra: dict[str, Any] = field(default_factory=dict)


current: ContextVar[RequestContext | None] = ContextVar("useraudit_request", default=None)


def get() -> RequestContext | None:
    return current.get()


def person(value: Any) -> Person | None:
    """Normalise a user given as id string, dict or object to a Person dict."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        out = {k: str(value[k]) for k in ("id", "name", "email", "full_name") if value.get(k) not in (None, "")}
        return out or None
    if isinstance(value, (str, int)):
        return {"id": str(value)}
    out = {}
    for key, attrs in (
        ("id", ("id", "pk", "user_id")),
        ("name", ("username", "name", "login")),
        ("email", ("email",)),
        ("full_name", ("full_name", "display_name")),
    ):
        for attr in attrs:
            v = getattr(value, attr, None)
            if v not in (None, "") and not callable(v):
                out[key] = str(v)
                break
    if "full_name" not in out:
        get_full_name = getattr(value, "get_full_name", None)  # Django's User
        if callable(get_full_name):
            name = get_full_name()
            if name:
                out["full_name"] = str(name)
    return out or None
