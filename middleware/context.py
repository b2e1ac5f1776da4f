"""Per-request audit context, carried in a ContextVar.

The middleware binds one :class:`RequestContext` at request entry and
resets it in ``finally``; ``record()`` reads it to fill who/where/how.
We keep one ContextVar holding a small mutable object rather than one
ContextVar per key: one set and one reset per request, and the acting user
can be filled in *late* — when the response starts, after the view's own
authentication (token/JWT) has run — by mutating the bound object. Threads
and ``run_in_threadpool`` copies of the context share the same object, so a
user bound inside a FastAPI dependency running in a worker thread is seen by
the middleware too.

How the acting user is found (the design, in one place):

1. ``record()`` inside a request asks :meth:`RequestContext.actor`, which
   returns the bound user or — until the response starts — calls the host's
   ``get_user`` callable again. A view that authenticated itself (DRF token,
   JWT in a FastAPI dependency) is therefore seen as soon as it has.
2. An event recorded while no user is known yet is *held* in
   ``RequestContext.pending`` instead of being spooled.
3. When the response starts (``start_response`` / ``http.response.start``),
   the middleware resolves the user one final time, fills it (and the
   impersonator, and the status code) into the held events and spools them —
   before the first byte of the response leaves, so in ``sync`` durability a
   response the client saw still implies its events are on disk.
4. A request that dies before its response starts spools its held events in
   the middleware's ``finally``, with whatever user is known.
5. A request that holds no events and matches no capture rule never has its
   user resolved at all: capture adds no session or database lookup to
   requests it has nothing to record for.
6. Likewise its headers are never parsed: the request id, client IP, user
   agent and peer are read from the raw request the first time something
   asks (see ``Capture.begin`` in :mod:`useraudit.middleware._common`).
7. A request that no capture rule covers does not even get a context until
   something asks for one: the middleware binds a *binding*, a plain list
   (the cheapest object Python makes, see the slots below), and
   ``current.get()`` makes the context from it the first time ``record()``,
   a log line or :func:`set_user` asks. Every later ask, from any thread
   or copied context, gets that same context.
8. Under WSGI and ASGI, failing open, the same holds for a request that a
   capture rule covers: the rule waits in the binding until the status is
   known (``Capture.fire``). If nothing made a context by then, the event
   is queued with what the host said of the user and account, and built on
   the spool's thread (``Recorder.built``).

Host code can also bind explicitly: :func:`set_user`, :func:`set_impersonator`,
:func:`set_account`, :func:`bind_extra`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from useraudit.schema import PERSON_PARTS

from ._failsafe import contain

Person = dict[str, str]


# The request fields a middleware reads only when something asks for them.
LAZY_FIELDS = ("request_id", "client_ip", "user_agent", "peer", "forwarded_for")


class RequestContext:
    """Who, where and how of one request; every field may be given by keyword.

    A middleware binds a context that knows only the method, the path and
    the raw request (made by ``Capture.begin``): the request id, client IP, user agent,
    peer address and X-Forwarded-For header are read from the request the
    first time any of them is asked for — by ``record()`` or a log line —
    so a request that records nothing parses no header and resolves no IP.
    """

    if TYPE_CHECKING:  # properties made by _lazy_field below
        request_id: str | None
        client_ip: str | None
        user_agent: str | None
        peer: str | None
        forwarded_for: str | None

    # Class-level defaults: a context built per request stores only what it has.
    method: str | None = None
    path: str | None = None
    account_id: str | None = None
    account_name: str | None = None
    user: Person | None = None
    impersonator: Person | None = None
    status: int | None = None
    # Anything the host app wants on every event of this request.
    extra: dict[str, Any] | None = None
    # Late resolution (see the module docstring): the host's callbacks,
    # called with ``request`` (no closure is made per request).
    resolve_user: Callable[[Any], Any] | None = None
    resolve_impersonator: Callable[[Any], Any] | None = None
    # Where the request object outlives the response (an ASGI scope): the
    # host's ``request -> route template``, asked when the route is first
    # read after the response started (routing is done by then).
    resolve_route: Callable[[Any], Any] | None = None
    # Set when the response started.
    started: bool = False
    # Set when the user was resolved for good (at response start, when
    # held events or rules needed it): resolvers are not called again.
    final: bool = False
    # The capture rule covering the method and path and its match, found when
    # the request began; dropped once the rule decided (see may_match).
    rule_hit: tuple[Any, Any] | None = None
    # Set once the request's rule events were decided (a middleware ends a request once).
    finished: bool = False
    # (recorder, raw event) pairs waiting for the actor; None once flushed.
    pending: list[tuple[Any, dict[str, Any]]] | None = None
    # Whether a failing host callback should fail the request (503).
    fail_closed: bool = False
    # What the integration passed to the host's callbacks: the WSGI environ,
    # the ASGI scope, Django's HttpRequest.
    request: Any = None
    # Set by a middleware: fills the lazy fields from ``request``, once.
    _reader: Callable[[RequestContext], None] | None = None
    _request_id: str | None = None
    _client_ip: str | None = None
    _user_agent: str | None = None
    # The peer address and the X-Forwarded-For header exactly as received;
    # client_ip is what we derived from them (see middleware._common.client_ip).
    _peer: str | None = None
    _forwarded_for: str | None = None
    _route: str | None = None
    # Drawn before the context was made (see Capture.fire): the generated request id's.
    _request_number: int | None = None

    def __init__(self, **fields: Any) -> None:
        for name, value in fields.items():
            if name not in FIELDS:
                raise TypeError(f"RequestContext has no field {name!r}")
            setattr(self, name, value)

    def read_request(self) -> None:
        """Fill the lazy fields now (the first read of any of them does it)."""
        reader = self._reader
        if reader is not None:
            self._reader = None
            try:
                reader(self)
            except Exception:
                # A malformed request must not cost the event: its fields stay empty.
                with contain("reading the request", self.fail_closed):
                    raise

    def seen(self) -> tuple[str | None, str | None, str | None]:
        """Client IP, user agent and request id in one call (what every event carries)."""
        if self._reader is not None:
            self.read_request()
        return self._client_ip, self._user_agent, self._request_id

    def __repr__(self) -> str:
        self.read_request()
        shown = ", ".join(
            f"{name}={value!r}"
            for name in (*LAZY_FIELDS, "method", "path", "route", "account_id", "user", "status")
            if (value := getattr(self, name)) is not None
        )
        return f"RequestContext({shown})"

    @property
    def may_match(self) -> bool:
        """Whether the request still needs finishing: until the response starts (held
        events), and after that while the rule found for it has not decided.
        """
        return not self.started or self.rule_hit is not None

    @property
    def route(self) -> str | None:
        """The route template (``/tokens/{token_id}``) once the request was routed."""
        resolve = self.resolve_route
        if resolve is not None and self.started:
            self.resolve_route = None
            try:
                route = resolve(self.request)
            except Exception:
                # Asked by a log line: a failing callback costs the field, never the request.
                with contain("get_route callback"):
                    raise
            else:
                self._route = str(route) if route is not None else None
        return self._route

    @route.setter
    def route(self, value: str | None) -> None:
        self.resolve_route = None
        self._route = value

    def actor(self) -> Person | None:
        """The acting user, resolving it lazily until the response starts."""
        if self.user is None and self.resolve_user is not None and not self.final:
            self.user = call_resolver(self.resolve_user, self.request, self.fail_closed)
        return self.user

    def acting_for(self) -> Person | None:
        """The impersonator in effect, resolved lazily like :meth:`actor`."""
        if self.impersonator is None and self.resolve_impersonator is not None and not self.final:
            self.impersonator = call_resolver(
                self.resolve_impersonator, self.request, self.fail_closed
            )
        return self.impersonator


def _lazy_field(name: str) -> property:
    slot = "_" + name

    def get(self: RequestContext) -> Any:
        if self._reader is not None:
            self.read_request()
        return getattr(self, slot)

    def set_(self: RequestContext, value: Any) -> None:
        if self._reader is not None:
            self.read_request()  # so the reader cannot overwrite what is set here
        setattr(self, slot, value)

    return property(
        get, set_, doc=f"The request's {name.replace('_', ' ')}, read when first asked."
    )


for _name in LAZY_FIELDS:
    setattr(RequestContext, _name, _lazy_field(_name))
del _name

# What RequestContext(...) takes by keyword: the lazy fields and every public default.
FIELDS = frozenset(
    (
        *LAZY_FIELDS,
        "route",
        *(
            name
            for name, value in vars(RequestContext).items()
            if not name.startswith("_")
            and not callable(value)
            and not isinstance(value, (property, classmethod, staticmethod))
        ),
    )
)


# A middleware's binding: [context or None, make(binding) -> context,
# request, method, path, status once the response started (as the server
# interface gives it), response headers (WSGI), the capture rule covering
# the request while it waits for the status (WSGI and ASGI, see
# Capture.fire), the request's number once its event was queued without a
# context (Capture.fire), the user, impersonator and account asked of the
# host for that event (Capture.resolve)].
CTX, MAKE, REQUEST, METHOD, PATH, STATUS, HEADERS, RULE, SEEN, PEOPLE = range(10)
Binding = list[Any]

# peer, X-Forwarded-For, user agent, client IP, request id: a request's fields as read.
Seen = tuple[str | None, str | None, str | None, str | None, str]


# What is bound for the current request: a middleware's binding, a context
# bound by hand (tests, the admin UI), or None outside requests.
bound: ContextVar[RequestContext | Binding | None] = ContextVar("useraudit_request", default=None)

# ``bound``'s methods, for the modules that bind a request on every one.
# CPython 3.11 compiles ``name.method()`` on a name imported with ``from …
# import`` to a plain attribute load, which makes a new bound method on each
# call; these are made once (docs/capture.md, "Cost").
bind = bound.set
unbind = bound.reset
bound_now = bound.get

_publishing = threading.Lock()


class _Current:
    """The current request's context: ``get()``; ``set(ctx)`` and ``reset(token)`` bind by hand."""

    __slots__ = ()

    def get(self) -> RequestContext | None:
        value = bound.get()
        if value.__class__ is list:
            ctx = value[CTX]  # type: ignore[index]
            return ctx if ctx is not None else value[MAKE](value)  # type: ignore[index]
        return value  # type: ignore[return-value]

    def set(self, ctx: RequestContext | None) -> Token[RequestContext | Binding | None]:
        return bound.set(ctx)

    def reset(self, token: Token[RequestContext | Binding | None]) -> None:
        bound.reset(token)


current = _Current()


def publish(binding: Binding, ctx: RequestContext) -> tuple[RequestContext, bool]:
    """Put a freshly made context into its binding, unless another thread was first.

    Returns the binding's context and whether it is ``ctx``: events held on a
    context that lost the race would never be spooled.
    """
    with _publishing:
        first = binding[CTX]
        if first is None:
            binding[CTX] = ctx
            return ctx, True
    return first, False


def is_middlewares(value: RequestContext | Binding | None) -> bool:
    """Whether what is bound was bound by a middleware (which then captures the request)."""
    if value is None:
        return False
    return value.__class__ is list or value.request is not None  # type: ignore[union-attr]


# The current request's context, bound once for the same reason as ``bind``.
get = current.get


def set_user(user: Any) -> None:
    """Bind the acting user of the current request (after in-view token auth)."""
    ctx = current.get()
    if ctx is not None:
        ctx.user = person(user)


def set_impersonator(admin: Any) -> None:
    """Bind the administrator acting on the user's behalf for this request."""
    ctx = current.get()
    if ctx is not None:
        ctx.impersonator = person(admin)


def set_account(account_id: str | None, account_name: str | None = None) -> None:
    ctx = current.get()
    if ctx is not None:
        ctx.account_id = account_id
        if account_name is not None:
            ctx.account_name = account_name


def bind_extra(**fields: Any) -> None:
    """Schema fields to put on every event of this request (explicit fields win)."""
    ctx = current.get()
    if ctx is not None:
        if ctx.extra is None:
            ctx.extra = {}
        ctx.extra.update(fields)


def call_resolver(
    fn: Callable[[Any], Any], request: Any, fail_closed: bool = False
) -> Person | None:
    """The person a host's user or impersonator callback gives; its failures are contained."""
    try:
        return person(fn(request))
    except Exception:
        with contain("user callback", fail_closed):
            raise
    return None


def person(value: Any) -> Person | None:
    """Normalise a user given as id string, dict or object to a Person dict.

    Anonymous user objects (``is_authenticated`` false: Django's
    AnonymousUser, Flask-Login's AnonymousUserMixin) count as no user.
    """
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        out = {k: str(value[k]) for k in PERSON_PARTS if value.get(k) not in (None, "")}
        return out or None
    if isinstance(value, (str, int)):
        return {"id": str(value)}
    if getattr(value, "is_authenticated", True) is False:
        return None
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
