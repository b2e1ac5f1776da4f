"""WSGI (PEP 3333) middleware: bind the audit context around every request (made when first asked).

Usage::

    import useraudit
    from useraudit.middleware.wsgi import AuditMiddleware
    from useraudit.middleware.rules import Rule, Rules

    useraudit.configure()                         # spool etc. from USERAUDIT_*
    app.wsgi_app = AuditMiddleware(
        app.wsgi_app,
        account="acme",                           # or get_account=...
        trusted_proxies=1,                        # behind one nginx; 0 without a proxy
        get_user=lambda environ: environ.get("REMOTE_USER"),
        rules=Rules([Rule("DELETE", "/tokens/{token_id}", "token.deleted")]),
    )

Inside the request, ``useraudit.record(...)`` picks up the request id,
client IP, user agent, method, path, account, acting user and impersonator.
The acting user is resolved lazily and finally when the response starts
(see :mod:`useraudit.middleware.context`), so users authenticated inside the
view (tokens, JWT) are not missed.

Environ keys read, and why (on every request only the method and the path;
X-Forwarded-For on the requests the proxy watch samples, see
:mod:`useraudit.middleware.proxy_watch`; the rest the first time an event is
recorded or a log line asks for the context, see :class:`RequestContext`):

* ``REQUEST_METHOD``, ``SCRIPT_NAME``, ``PATH_INFO``: what was asked (event
  fields and rule matching); re-read as UTF-8, cut to 2048 chars.
* ``REMOTE_ADDR``: the peer address — the client IP unless
  ``trusted_proxies`` says there are proxies in front.
* ``HTTP_X_FORWARDED_FOR``: only with ``trusted_proxies=N``, and only its
  Nth entry from the right. **Never trust it otherwise**: any client can send
  the header with any content, so believing its leftmost entry (as several
  audit libraries do) lets an attacker write someone else's IP into your
  audit trail. The header is kept as received in the context's
  ``forwarded_for``; the environ is not modified.
* ``HTTP_USER_AGENT``: the device; client-controlled, so it is only ever
  displayed and parsed, never trusted (cut to 4096 chars).
* ``HTTP_X_REQUEST_ID``: correlation id; client-controlled, so it is used
  only when it is a short token of safe characters, else a fresh id is made.

Nothing else is read: request bodies never are, so huge uploads cost
nothing. Keys this middleware sets: none.

Behaviour towards the host: the response is passed through as it is made
(never buffered or delayed); ``start_response`` is wrapped in a closure that
forwards ``exc_info`` only when the app gave one; the app iterable is wrapped
in an iterator whose ``close()`` always calls the app's ``close()``.
Exceptions from the app are re-raised unchanged. Our own failures and those
of the host's callbacks are logged and counted, never raised — unless
``fail_closed`` is set, in which case the request is answered with 503 while
that is still possible (before the body starts).

When rule events are recorded — always before the client can hold the whole
response, so ``sync`` durability covers them: a list/tuple body as soon as
the app returns it; a body with a Content-Length header just before its last
chunk is handed to the server; any other body when its iterator is exhausted
(before the server writes the chunked terminator) or closed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import _common
from ._common import (
    CGI_READER,
    MAX_PATH,
    Capture,
    header_text,
)
from ._failsafe import UNAVAILABLE_BODY, AuditError, contain, swallowed
from .context import (
    CTX,
    HEADERS,
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

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

UNAVAILABLE_HEADERS = [
    ("Content-Type", "text/plain; charset=utf-8"),
    ("Content-Length", str(len(UNAVAILABLE_BODY))),
]


def _forwarded_for(environ: Environ) -> str | None:
    return environ.get("HTTP_X_FORWARDED_FOR")


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if len(name) == 14 and name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _discard(data: bytes) -> None:
    return None


class AuditMiddleware:
    """Wraps a WSGI app; see the module docstring. Keyword arguments are :class:`Capture`'s."""

    def __init__(self, app: WSGIApp, *, capture: Capture | None = None, **options: Any) -> None:
        self.app = app
        self.capture = capture or Capture(**options)
        self._reader = self.read  # bound once, handed to every request's context
        self._late = self.late

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        outer = bound_now()
        if outer is not None and is_middlewares(outer):
            # Installed twice (see _common.capturing): the outer copy captures.
            return self.app(environ, start_response)
        capture = self.capture
        binding: Binding | None = None
        try:
            # Method and path now; the context when first asked for (see .context).
            path = environ.get("PATH_INFO") or ""
            if script := environ.get("SCRIPT_NAME"):
                path = script + path
            if len(path) > MAX_PATH or not path.isascii():  # else header_text has nothing to do
                path = header_text(path, MAX_PATH) or ""
            method, known_path = environ.get("REQUEST_METHOD"), path or None
            binding = [None, self._late, environ, method, known_path, None, None, None, None, None]
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
                    environ, self._reader, method, known_path, _forwarded_for, binding
                )
        except AuditError:
            return _unavailable(start_response)
        except Exception as err:  # noqa: BLE001
            binding = None
            try:
                swallowed(err, "request setup", capture.fail_closed)
            except AuditError:
                return _unavailable(start_response)
        if binding is None:  # our setup failed: serve the request uncaptured
            return self.app(environ, start_response)
        refused = False

        def audit_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            nonlocal refused
            if binding[STATUS] is None:
                binding[STATUS] = status
                binding[HEADERS] = headers
                ctx = binding[CTX]
                if ctx is None and binding[RULE] is not None:
                    # A rule's event, recorded when the body is done: the host is
                    # asked for its user now, while the app still runs.
                    capture.resolve(binding)
                elif ctx is not None:  # something was recorded or asked, or capture fails closed
                    try:
                        try:
                            code: int | None = int(status[:3])
                        except (TypeError, ValueError):
                            code = _common.status_code(status)
                        capture.started(ctx, code, binding[RULE] is not None)
                    except AuditError:
                        # Nothing was sent yet: this first start_response call
                        # simply carries our status instead of the app's.
                        refused = True
                        binding[STATUS] = 503
                        if exc_info is not None:
                            return start_response(
                                "503 Service Unavailable", list(UNAVAILABLE_HEADERS), exc_info
                            )
                        return start_response("503 Service Unavailable", list(UNAVAILABLE_HEADERS))
            elif exc_info is not None and not refused:
                binding[STATUS] = status
            if refused:
                return _discard
            if exc_info is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)

        app = self.app  # an attribute called as `self.app(...)` is looked up the slow way
        token = bind(binding)
        try:
            try:
                iterable = app(environ, audit_start_response)
            except AuditError:
                ctx = binding[CTX]
                if binding[RULE] is not None:
                    capture.fire(binding, CGI_READER, sys.exc_info()[1])
                if binding[STATUS] is not None or not capture.fail_closed:
                    raise
                if ctx is not None:
                    capture.finish_quietly(ctx, None, sys.exc_info()[1])
                return _unavailable(start_response)
            except BaseException as exc:
                if binding[RULE] is not None:
                    capture.fire(binding, CGI_READER, exc)
                ctx = binding[CTX]
                if ctx is not None:
                    capture.finish_quietly(ctx, _common.status_code(binding[STATUS]), exc)
                raise
            if refused:
                _close(iterable)
                return [UNAVAILABLE_BODY]
            if isinstance(iterable, (list, tuple)):
                # The whole body is known: record now, before a byte leaves,
                # so `sync` durability covers rule events too.
                if binding[RULE] is not None:
                    capture.fire(binding, CGI_READER, None)
                ctx = binding[CTX]
                if ctx is None or not ctx.may_match:
                    # Nothing recorded, or the response started and no rule covers it.
                    return iterable
                try:
                    capture.finished(ctx, _common.status_code(binding[STATUS]), None)
                except AuditError:
                    if capture.fail_closed:
                        _close(iterable)
                        return _unavailable(start_response, sys.exc_info())
                    # A fail-closed recorder under a fail-open middleware:
                    # counted by the recorder; the host's response goes on.
                return iterable
            return _Body(iterable, capture, binding)
        finally:
            unbind(token)

    def late(self, binding: Binding) -> RequestContext:
        """The context of a request bound without one, when something first asks for it."""
        return self.capture.late(binding, self._reader)

    def read(self, ctx: RequestContext) -> None:
        """The environ keys listed in the module docstring, read when a field is first asked for."""
        self.capture.fill_from_cgi(ctx, ctx.request)


_EXHAUSTED: Any = object()


class _Body:
    """The app's iterable, passed through chunk by chunk with the request's binding bound."""

    __slots__ = ("_iterable", "_capture", "_binding", "_done", "_sent", "_length")

    def __init__(self, iterable: Iterable[bytes], capture: Capture, binding: Binding) -> None:
        self._iterable = iterable
        self._capture = capture
        self._binding = binding
        self._done = False
        self._sent = 0
        self._length: int | None | bool = False  # False: not looked up yet

    def __iter__(self) -> Iterator[bytes]:
        # A generator: its end costs no StopIteration raised from a frame of
        # ours, and resuming it builds no new frame per chunk.
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        binding = self._binding
        iterator = None
        while True:
            # Bound while the app's code runs, never across a yield: between
            # chunks the server runs, and it is not the request's code.
            token = bind(binding)
            try:
                if iterator is None:
                    iterator = iter(self._iterable)
                chunk = next(iterator, _EXHAUSTED)
                if chunk is _EXHAUSTED:
                    self._end(None)
                else:
                    self._sent += len(chunk)
                    # The declared length matters only with something to record
                    # before the last chunk leaves; a quiet request never looks.
                    if not self._done and (binding[RULE] is not None or binding[CTX] is not None):
                        length = self._length
                        if length is False:
                            length = self._declared_length()
                        if length is not None and self._sent >= length:
                            # The last chunk of a Content-Length body: record before
                            # it leaves, so a client holding the whole response
                            # implies the event is spooled (sync durability).
                            self._end(None)
            except BaseException as exc:
                self._end(exc)
                raise
            finally:
                unbind(token)
            if chunk is _EXHAUSTED:
                return
            yield chunk

    def _declared_length(self) -> int | None:
        """Content-Length the app declared: lets us see the last chunk coming.

        Looked up once the response started (a generator app starts it on
        its first chunk), only for streamed bodies: a list body needs no such care.
        """
        headers = self._binding[HEADERS]
        if headers is None:
            return None  # not started yet: look again at the next chunk
        self._length = length = _content_length(headers)
        return length

    def close(self) -> None:
        token = bind(self._binding)
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        finally:
            try:
                self._end(None)
            finally:
                unbind(token)

    def _end(self, exc: BaseException | None) -> None:
        if not self._done:
            self._done = True
            if self._binding[RULE] is not None:
                self._capture.fire(self._binding, CGI_READER, exc)
            ctx = self._binding[CTX]
            if ctx is not None:  # else nothing was recorded and no rule covers the request
                self._capture.finish_quietly(ctx, _common.status_code(self._binding[STATUS]), exc)


def _close(iterable: Any) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        with contain("closing the app iterable"):
            close()


def _unavailable(start_response: StartResponse, exc_info: Any = None) -> list[bytes]:
    if exc_info is not None and exc_info[0] is not None:
        start_response("503 Service Unavailable", list(UNAVAILABLE_HEADERS), exc_info)
    else:
        start_response("503 Service Unavailable", list(UNAVAILABLE_HEADERS))
    return [UNAVAILABLE_BODY]
