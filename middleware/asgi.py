"""ASGI 3 middleware: bind the audit context around every HTTP request (made when first asked).

Usage (Starlette, FastAPI, any ASGI app)::

    from useraudit.middleware.asgi import AuditMiddleware
    app.add_middleware(AuditMiddleware, account="acme")
    # or: app = AuditMiddleware(app, account="acme")
    # behind one reverse proxy (and only then): trusted_proxies=1

A pure ASGI class: ``http`` scopes are captured; ``websocket``,
``lifespan`` and unknown scope types are passed to the app untouched. Only
``send`` is wrapped, to see ``http.response.start`` (the acting user is
resolved and held events are spooled there, see
:mod:`useraudit.middleware.context`) and the last ``http.response.body``
(rule events are recorded just before it is forwarded, so in ``sync``
durability a client that got the whole response implies the event is on
disk). The wrapper is a plain function returning the server's own awaitable,
so a message costs no extra coroutine. All per-request state lives in the
request's context and locals of ``__call__``, never on the instance. Don't
wrap it in Starlette's ``BaseHTTPMiddleware``: that runs the app in another
task and breaks context variables.

Scope keys read, and why (on every request only ``type``, the method and
the path; X-Forwarded-For on the requests the proxy watch samples, see
:mod:`useraudit.middleware.proxy_watch`; ``client`` and the other headers
the first time an event is recorded or a log line asks for them):

* ``type``: only ``http`` is captured.
* ``method``, ``path``, ``root_path``: what was asked (event fields, rules).
* ``client``: the peer ``(host, port)`` — the client IP unless
  ``trusted_proxies`` says there are proxies in front. Note that uvicorn
  rewrites ``client`` from X-Forwarded-For itself for peers in its
  ``--forwarded-allow-ips`` (default 127.0.0.1): run it with
  ``--no-proxy-headers`` and let ``trusted_proxies`` decide, or configure one
  of the two, not both.
* ``headers``: ``x-forwarded-for`` (only with ``trusted_proxies=N``, its Nth
  entry from the right — **never trust it otherwise**: any client can send
  it with any content and forge the IP in your audit trail; kept as received
  in the context's ``forwarded_for``), ``user-agent`` (client-controlled;
  displayed and parsed, never trusted), ``x-request-id`` (used only when it
  is a short token of safe characters).
* ``user`` (set by Starlette's AuthenticationMiddleware) and ``route``: by
  the default user resolver and for the route template.

Nothing is written to the scope, and ``receive`` is never touched, so
request bodies are never read.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Generator, MutableMapping
from sys import getrefcount
from typing import Any

from ._common import (
    MAX_FORWARDED_FOR,
    MAX_PATH,
    MAX_USER_AGENT,
    Capture,
    Fields,
    Reader,
    header_text,
)
from ._failsafe import UNAVAILABLE_BODY, AuditError, swallowed
from .context import (
    CTX,
    REQUEST,
    RULE,
    STATUS,
    Binding,
    RequestContext,
    bind,
    bound_now,
    is_middlewares,
    unbind,
)
from .recorder import get_recorder

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def default_route(scope: Scope) -> Any:
    """The route template Starlette/FastAPI routing put on the scope."""
    route = scope.get("route")
    return getattr(route, "path", None) if route is not None else None


def default_user(scope: Scope) -> Any:
    """Starlette's ``request.user`` (AuthenticationMiddleware) when signed in."""
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


class AuditMiddleware:
    """Wraps an ASGI app; see the module docstring. Keyword arguments are :class:`Capture`'s."""

    def __init__(self, app: ASGIApp, *, capture: Capture | None = None, **options: Any) -> None:
        self.app = app
        options.setdefault("get_user", default_user)
        options.setdefault("get_route", default_route)
        options.setdefault("route_when_read", True)  # the scope outlives the response
        self.capture = capture or Capture(**options)
        self._reader = self.read  # bound once, handed to every request's context
        self._late = self.late
        # With our own callbacks, what a late reader of the context needs of
        # the scope is known: see the end of __call__.
        c = self.capture
        self._light_after = (
            c.get_user is default_user
            and c.get_route in (default_route, None)
            and c.get_impersonator is None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        outer = bound_now()
        if outer is not None and is_middlewares(outer):
            # Installed twice (see _common.capturing): the outer copy captures.
            await self.app(scope, receive, send)
            return
        capture = self.capture
        try:
            # Method and path now; the context when first asked for (see .context).
            method = scope.get("method")
            path = scope.get("path") or ""
            if root := scope.get("root_path"):
                path = root + path
            if len(path) > MAX_PATH:
                path = path[:MAX_PATH]
            binding: Binding = [None, self._late, scope, method, path, None, None, None, None, None]
            # Inline, not a call: on the path of every request (docs/capture.md, "Cost").
            watch = capture.proxy_watch
            if (
                method in capture.quiet_methods
                and watch.skip > 0  # ProxyWatch.passes(), inline
                and not (capture.recorder_decides and get_recorder().fail_closed)
            ):
                watch.skip -= 1
            else:
                # The request needs its context or its rule from the start.
                binding[CTX] = capture.begin(
                    scope, self._reader, method, path, forwarded_for, binding
                )
        except AuditError:
            await _unavailable(send)
            return
        except Exception as err:  # noqa: BLE001
            try:
                swallowed(err, "request setup", capture.fail_closed)
            except AuditError:
                await _unavailable(send)
                return
            await self.app(scope, receive, send)  # our setup failed: serve it uncaptured
            return

        refused = False

        # A plain function that returns the server's own awaitable: the app
        # awaits ``send(message)`` directly, with no coroutine of ours per
        # message. The response's state lives on the binding and its
        # context, so this closure holds only what it must.
        def audit_send(message: Message) -> Awaitable[None]:
            nonlocal refused
            ctx = binding[CTX]
            if ctx is None:  # nothing recorded yet, so nothing refused either (below)
                if binding[STATUS] is None:
                    if message.get("type") == "http.response.start":
                        binding[STATUS] = message.get("status", 0)
                elif binding[RULE] is not None and _last_body(message):
                    # The last body message: rule events are recorded before it leaves.
                    capture.fire(binding, SCOPE_READER, None)
                return send(message)
            if refused:
                return _NOTHING  # we answered 503 already; the app's response goes nowhere
            kind = message.get("type")
            if kind == "http.response.body":
                if not message.get("more_body", False):
                    # The last body message: rule events are recorded before it leaves.
                    if binding[RULE] is not None:
                        capture.fire(binding, SCOPE_READER, None)
                    if ctx.rule_hit is not None:
                        capture.finish_quietly(ctx, None, None)
            elif kind == "http.response.start" and not ctx.started:
                binding[STATUS] = message.get("status", 0)
                try:
                    capture.started(ctx, message.get("status"), binding[RULE] is not None)
                except AuditError:
                    refused = True
                    return _unavailable(send)
            return send(message)

        app = self.app  # an attribute called as `self.app(...)` is looked up the slow way
        token = bind(binding)
        try:
            await app(scope, receive, audit_send)
        except AuditError:
            if binding[RULE] is not None:
                capture.fire(binding, SCOPE_READER, sys.exc_info()[1])
            ctx = binding[CTX]
            if ctx is not None:
                capture.finish_quietly(ctx, None, sys.exc_info()[1])
            if binding[STATUS] is not None or not capture.fail_closed:
                raise
            await _unavailable(send)
        except BaseException as exc:
            if binding[RULE] is not None:
                capture.fire(binding, SCOPE_READER, exc)
            ctx = binding[CTX]
            if ctx is not None:
                capture.finish_quietly(ctx, None, exc)
            raise
        else:
            if binding[RULE] is not None:  # the app returned without a last body message
                capture.fire(binding, SCOPE_READER, None)
            ctx = binding[CTX]
            if ctx is not None and ctx.may_match:
                # The app returned without a final body message, or never answered.
                capture.finish_quietly(ctx, None, None)
        finally:
            unbind(token)
            if self._light_after:
                # A context can outlive its request: a task the request started
                # may record later, and under uvicorn a finished request's
                # context stays referenced for a while. Holding the whole scope
                # that long kept the collector busy (docs/capture.md), so the
                # scope is swapped for the part of it a late reader may ask
                # about: the lazy fields (headers, client), the default user
                # and the route template come out the same from this view.
                # Built inline, not by a call: on the path of every request.
                ctx = binding[CTX]
                # getrefcount: someone besides this call (the cell it shares with
                # audit_send, and getrefcount's argument) holds the binding, a
                # copied context for instance, and may make a context from it later.
                if ctx is not None or getrefcount(binding) > 2:
                    late = {"headers": scope.get("headers"), "client": scope.get("client")}
                    if "user" in scope:
                        late["user"] = scope["user"]
                    if "route" in scope:
                        late["route"] = scope["route"]
                    if ctx is not None:
                        ctx.request = late
                    else:
                        binding[REQUEST] = late

    def late(self, binding: Binding) -> RequestContext:
        """The context of a request bound without one, when something first asks for it."""
        return self.capture.late(binding, self._reader)

    def read(self, ctx: RequestContext) -> None:
        """The scope keys listed in the module docstring, read when a field is first asked for."""
        peer, forwarded_for, user_agent, request_id = request_fields(ctx.request)
        self.capture.fill(
            ctx,
            peer=peer,
            forwarded_for=forwarded_for,
            user_agent=user_agent,
            request_id_header=request_id,
        )


def request_fields(scope: Scope) -> Fields:
    """Peer, X-Forwarded-For, user agent and X-Request-ID of a scope, as text."""
    return header_fields(headers_and_client(scope))


def headers_and_client(scope: Scope) -> tuple[Any, Any]:
    return scope.get("headers"), scope.get("client")


def header_fields(raw: tuple[Any, Any]) -> Fields:
    """:func:`request_fields` of a scope's headers and client."""
    headers, client = raw
    forwarded_for = user_agent = request_id = None
    for name, value in headers or ():
        if name == b"x-forwarded-for":
            # Repeated headers are one comma-separated list (RFC 9110).
            forwarded_for = value if forwarded_for is None else forwarded_for + b"," + value
        elif name == b"user-agent":
            user_agent = value
        elif name == b"x-request-id":
            request_id = value
    return (
        str(client[0]) if client else None,
        header_text(forwarded_for, MAX_FORWARDED_FOR),
        header_text(user_agent, MAX_USER_AGENT),
        request_id.decode("latin-1") if request_id else None,
    )


SCOPE_READER = Reader(headers_and_client, header_fields)


def forwarded_for(scope: Scope) -> bytes | None:
    """The X-Forwarded-For header of a scope; repeated headers joined (RFC 9110)."""
    found = None
    for name, value in scope.get("headers") or ():
        if name == b"x-forwarded-for":
            found = value if found is None else found + b"," + value
    return found


def _last_body(message: Message) -> bool:
    return message.get("type") == "http.response.body" and not message.get("more_body", False)


class _Done:
    """An awaitable that is already complete, awaitable any number of times."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, Any, None]:
        yield from ()


_NOTHING = _Done()


async def _unavailable(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(UNAVAILABLE_BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": UNAVAILABLE_BODY})
