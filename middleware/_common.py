"""Pieces shared by the WSGI and ASGI middleware and the framework integrations.

Nothing here knows about a particular server interface: the WSGI and ASGI
modules read their environ/scope, then call :meth:`Capture.begin`,
:meth:`Capture.started` and :meth:`Capture.finished`.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import random
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ._failsafe import AuditError, contain, swallowed
from .context import (
    CTX,
    METHOD,
    PATH,
    PEOPLE,
    REQUEST,
    RULE,
    SEEN,
    STATUS,
    Binding,
    RequestContext,
    Seen,
    bound_now,
    call_resolver,
    is_middlewares,
    publish,
)
from .proxy_watch import ProxyWatch
from .recorder import Recorder, account_of, check_account, get_recorder

log = logging.getLogger("useraudit.middleware")

# Longest header values we keep; longer ones are cut (the enricher flags it).
MAX_USER_AGENT = 4096
MAX_FORWARDED_FOR = 2048
MAX_PATH = 2048

HTTP_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"))

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}\Z")


def capturing() -> bool:
    """Whether a middleware already captures this request.

    A second copy of the middleware (installed twice, or Flask extension +
    manual wrap) then passes the request straight through instead of
    capturing it twice. A context bound by a middleware carries its
    request; one bound by hand (tests, the admin UI) does not.
    """
    return is_middlewares(bound_now())


def header_text(value: str | bytes | None, limit: int) -> str | None:
    """A header value as text: invalid UTF-8 replaced, cut to ``limit`` chars.

    WSGI servers hand headers over as latin-1-decoded ``str`` (PEP 3333),
    ASGI servers as raw ``bytes``; both are re-read as UTF-8 here.
    """
    if value is None:
        return None
    if len(value) <= limit and value.isascii():  # the common case: nothing to re-read or cut
        return (value if isinstance(value, str) else value.decode("ascii")) or None
    if isinstance(value, str):
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:  # a server that already decoded UTF-8
            return value[:limit] or None
    else:
        raw = value
    text = raw[: limit * 4].decode("utf-8", "replace")[:limit]
    return text or None


def clean_ip(value: str) -> str | None:
    """The IP inside one X-Forwarded-For entry, or None if it is not one.

    Accepts ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``,
    ``[2001:db8::1]:443``, ``"[::1]"`` and zone ids (``fe80::1%eth0``, kept).
    """
    text = value.strip().strip('"')[:80]
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    address = text.split("%", 1)[0]
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return None
    return text


def client_ip(peer: str | None, forwarded_for: str | None, trusted_proxies: int) -> str | None:
    """The client's address, believing X-Forwarded-For only as far as configured.

    With ``trusted_proxies == 0`` (the default) the peer address is the
    client: any X-Forwarded-For header came from the client itself and can
    say anything. With ``N`` trusted proxies in front of the app, each of them
    appended the address it saw, so the Nth entry from the right was written
    by our outermost proxy and is the real client; entries left of it were
    sent by the client and are never believed. When the header has fewer than
    N entries, or that entry is not an IP, the peer address is used.
    """
    if trusted_proxies <= 0 or not forwarded_for:
        return peer
    parts = forwarded_for.rsplit(",", trusted_proxies)
    if len(parts) < trusted_proxies:
        return peer
    return clean_ip(parts[-trusted_proxies]) or peer


def request_id(header: str | None, number: int | None = None) -> str:
    """The caller's X-Request-ID when it is a sane token, else a fresh id.

    A correlation id, not a secret: 64 random bits drawn once per process
    (again in every forked worker) followed by a per-process counter, which
    is unique and costs a fraction of drawing and formatting 128 random bits
    on every request. ``number``: the counter's value drawn earlier for this
    request (see ``Capture.fire``), so every reader of the request makes the same id.
    """
    if header and _REQUEST_ID.match(header):
        return header
    # The prefix's bits above the counter's: one int formatted once.
    return format(_id_base | (next(_id_counter) if number is None else number), "032x")


def _new_id_prefix() -> None:
    global _id_base, _id_counter
    _id_base = random.getrandbits(64) << 64
    _id_counter = itertools.count(1)


_id_base = 0
_id_counter: itertools.count[int] = itertools.count(1)
_new_id_prefix()
os.register_at_fork(after_in_child=_new_id_prefix)


# Peer, X-Forwarded-For, user agent and X-Request-ID of a request, as text.
Fields = tuple[str | None, str | None, str | None, Any]


class Reader(NamedTuple):
    """How a middleware reads a request for an event built later (``Capture.fire``).

    ``take(request)`` runs on the request's thread and only picks the raw
    values out, so the request itself is not kept; ``fields(taken)`` turns
    them into :data:`Fields` on the spool's thread, where it costs less.
    """

    take: Callable[[Any], Any]
    fields: Callable[[Any], Fields]


def cgi_fields(variables: Mapping[str, Any]) -> Fields:
    """Peer, X-Forwarded-For, user agent and X-Request-ID of CGI-style variables, as text."""
    return cgi_text(cgi_raw(variables))


def cgi_raw(variables: Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
    get = variables.get
    return (
        get("REMOTE_ADDR"),
        get("HTTP_X_FORWARDED_FOR"),
        get("HTTP_USER_AGENT"),
        get("HTTP_X_REQUEST_ID"),
    )


def cgi_text(raw: tuple[Any, Any, Any, Any]) -> Fields:
    peer, forwarded_for, user_agent, request_id_header = raw
    return (
        peer or None,
        header_text(forwarded_for, MAX_FORWARDED_FOR),
        header_text(user_agent, MAX_USER_AGENT),
        request_id_header,
    )


CGI_READER = Reader(cgi_raw, cgi_text)


def status_code(status: str | int | None) -> int | None:
    """``"404 Not Found"`` → 404."""
    if status is None:
        return None
    if isinstance(status, int):
        return status
    try:
        return int(status[:3])
    except ValueError:
        return None


Resolver = Callable[[Any], Any]


class Capture:
    """The capture settings one middleware instance applies to every request.

    Args:
        recorder: where events go (default: the process-wide recorder, looked
            up per request so ``useraudit.configure`` may run after install).
        trusted_proxies: how many reverse proxies in front of the app append
            to X-Forwarded-For (0: trust none, use the peer address).
        get_user: ``request -> user`` (object, dict or id) for the acting
            user; called lazily and once more when the response starts.
        get_impersonator: ``request -> admin`` when an administrator acts on
            the user's behalf, else None.
        account: the account of every request, for a single-tenant app: an
            id or ``(id, name)``. Give this or ``get_account``; with neither,
            the recorder's ``account`` applies, else events are filed under
            ``unassigned`` (docs/capture.md, "Which account an event belongs to").
        get_account: ``request -> account id`` or ``(id, name)``.
        get_route: ``request -> route template`` (``/tokens/<tid>``), read
            when the response starts, after routing; kept in
            ``RequestContext.route`` (log lines get it as ``http_route``).
        rules: :class:`~useraudit.middleware.rules.Rules` deriving events
            from method, route and status.
        fail_closed: answer 503 when an event cannot be recorded or a
            callback fails (default: the ``fail_closed`` of the recorder
            given here, read once, now; else the process-wide recorder's,
            read on every request).
        route_when_read: ask ``get_route`` only when the route is first read
            after the response started, not on every request: for request
            objects that outlive the response (the ASGI scope). A failing
            ``get_route`` then costs the field, never the request.

    ``request`` is what the integration has at hand: the WSGI environ, the
    ASGI scope, Django's ``HttpRequest``; Flask's defaults ignore it and use
    ``flask.request``/``flask_login.current_user``.
    """

    __slots__ = (
        "_recorder",
        "trusted_proxies",
        "get_user",
        "get_impersonator",
        "get_account",
        "account_id",
        "account_name",
        "proxy_watch",
        "get_route",
        "rules",
        "_fail_closed",
        "route_when_read",
        "_context",
        "_unruled",
        "quiet_methods",
        "recorder_decides",
    )

    def __init__(
        self,
        *,
        recorder: Recorder | None = None,
        trusted_proxies: int = 0,
        get_user: Resolver | None = None,
        get_impersonator: Resolver | None = None,
        get_account: Resolver | None = None,
        get_route: Resolver | None = None,
        rules: Any = None,
        fail_closed: bool | None = None,
        account: str | tuple[str, str] | None = None,
        route_when_read: bool = False,
    ) -> None:
        if trusted_proxies < 0:
            raise ValueError("trusted_proxies must be >= 0")
        account_id, self.account_name = account_of(account)
        self.account_id = check_account(account_id, "account")
        if self.account_id and get_account is not None:
            raise ValueError("useraudit: give either account= or get_account=, not both")
        self._recorder = recorder
        self.trusted_proxies = int(trusted_proxies)
        self.get_user = get_user
        self.get_impersonator = get_impersonator
        self.get_account = get_account
        self.get_route = get_route
        self.rules = rules
        if fail_closed is None and recorder is not None:
            fail_closed = recorder.fail_closed
        self._fail_closed = fail_closed
        self.route_when_read = route_when_read
        self.proxy_watch = ProxyWatch()
        self._context = self._context_type(route_when_read)
        # The standard methods no rule names: their requests skip the rule lookup.
        ruled = getattr(rules, "methods", None)
        self._unruled = HTTP_METHODS - ruled if ruled is not None else frozenset()
        # A request needs nothing from its start (its middleware skips begin)
        # when capture fails open, no rule names its method, and the proxy
        # watch lets it by: the common request of an app. Whether capture
        # fails open is known now, unless the process-wide recorder decides
        # (it may be configured after the middleware is installed).
        quiet = HTTP_METHODS if rules is None else self._unruled
        self.quiet_methods = frozenset() if fail_closed else quiet
        self.recorder_decides = fail_closed is None

    def _context_type(self, route_when_read: bool) -> type[RequestContext]:
        """RequestContext with this capture's per-request constants as class defaults.

        The settings are read here, once: a Capture is configured at construction.
        """
        defaults: dict[str, Any] = {"__slots__": ()}
        for field, callback in (
            ("resolve_user", self.get_user),
            ("resolve_impersonator", self.get_impersonator),
            ("resolve_route", self.get_route if route_when_read else None),
        ):
            if callback is not None:
                defaults[field] = staticmethod(callback)
        if self.account_id is not None:
            defaults["account_id"] = self.account_id
            defaults["account_name"] = self.account_name
        return type("RequestContext", (RequestContext,), defaults)

    @property
    def recorder(self) -> Recorder:
        return self._recorder or get_recorder()

    @property
    def fail_closed(self) -> bool:
        if self._fail_closed is not None:
            return self._fail_closed
        return self.recorder.fail_closed

    def begin(
        self,
        request: Any,
        reader: Callable[[RequestContext], None],
        method: str | None,
        path: str | None,
        forwarded_for: Callable[[Any], str | bytes | None],
        binding: Binding | None = None,
    ) -> RequestContext | None:
        """The context one request needs from its start, or None when it needs none yet.

        Only what every request needs is read now: method and path (capture
        rules). ``forwarded_for(request)``, the X-Forwarded-For header, is
        asked only for the requests the proxy watch samples.

        A request that no capture rule covers, captured failing open, needs
        no context until something asks for one: the middleware binds a
        binding (see :mod:`.context`) and :meth:`late` makes the context
        then. Otherwise the context is made now, so a failing
        ``get_account`` can still refuse the request when failing closed.

        A middleware that passes its ``binding`` decides the covering rule
        itself once the status is known (:meth:`fire`): failing open, such
        a request too gets no context now, only the rule in ``binding[RULE]``.
        """
        recorder = self._recorder or get_recorder()
        watch = self.proxy_watch
        if watch.due():
            watch.observe(forwarded_for(request), self.trusted_proxies, recorder.spool)
        hit = None
        rules = self.rules
        if (
            rules is not None
            and method is not None
            and path is not None
            and method not in self._unruled
        ):
            # Method and path are all a rule looks at before the status.
            hit = rules.find(method, path)
        fail_closed = self._fail_closed if self._fail_closed is not None else recorder.fail_closed
        if not fail_closed:
            if hit is None:
                return None
            if binding is not None:
                binding[RULE] = hit
                return None
        ctx = self._new(request, reader, method, path)
        if hit is not None:
            ctx.rule_hit = hit
        if fail_closed:
            ctx.fail_closed = True
        if self.get_account is not None:
            self._account(ctx)
        return ctx

    def late(self, binding: Binding, reader: Callable[[RequestContext], None]) -> RequestContext:
        """The context of a request bound without one, made when something first asks.

        Made the way :meth:`begin` makes one; when the response already
        started it is marked so (events recorded from now on spool at once,
        the route is asked when first read).
        """
        ctx = self._new(binding[REQUEST], reader, binding[METHOD], binding[PATH])
        number = binding[SEEN]
        if number is not None:  # drawn by fire(): one request id for every event and log line
            ctx._request_number = number
        people = binding[PEOPLE]
        if people is not None:  # asked of the host when the response started (resolve)
            ctx.user, ctx.impersonator = people[0], people[1]
            if people[2] is not None:
                ctx.account_id, ctx.account_name = people[2], people[3]
            ctx.final = True
        status = binding[STATUS]
        if status is not None:
            ctx.started = True
            ctx.status = status_code(status) or None  # 0: an ASGI start without a status
            ctx.pending = None
            if self.get_route is not None and not self.route_when_read:
                ctx.resolve_route = self.get_route
        ctx, made_here = publish(binding, ctx)
        if made_here and self.get_account is not None and people is None:
            # After publishing: a get_account that records finds this context.
            self._account(ctx)
        return ctx

    def _new(
        self,
        request: Any,
        reader: Callable[[RequestContext], None],
        method: str | None,
        path: str | None,
    ) -> RequestContext:
        # Only what this request has; the rest are the context type's class defaults.
        ctx = object.__new__(self._context)
        ctx.request = request
        ctx._reader = reader
        ctx.method = method
        ctx.path = path
        ctx.pending = []
        return ctx

    def _account(self, ctx: RequestContext) -> None:
        """The account ``get_account`` gives for the context's request (called only when set)."""
        with contain("get_account callback", ctx.fail_closed):
            account = self.get_account(ctx.request)  # type: ignore[misc]
            if isinstance(account, tuple):
                ctx.account_id, ctx.account_name = (
                    str(a) if a is not None else None for a in account
                )
            elif account is not None:
                ctx.account_id = str(account)

    def fill(
        self,
        ctx: RequestContext,
        *,
        peer: str | None,
        forwarded_for: str | None,
        user_agent: str | None,
        request_id_header: str | None,
    ) -> None:
        """The request fields a reader found: sets them and derives client IP and request id."""
        ctx._peer, ctx._forwarded_for, ctx._user_agent, ctx._client_ip, ctx._request_id = self.seen(
            peer, forwarded_for, user_agent, request_id_header, ctx._request_number
        )

    def seen(
        self,
        peer: str | None,
        forwarded_for: str | None,
        user_agent: str | None,
        request_id_header: str | None,
        number: int | None = None,
    ) -> Seen:
        """The request's fields from what a reader found: client IP and request id derived."""
        return (
            peer,
            forwarded_for,
            user_agent,
            client_ip(peer, forwarded_for, self.trusted_proxies),
            request_id(request_id_header, number),
        )

    def fill_from_cgi(self, ctx: RequestContext, variables: Mapping[str, Any]) -> None:
        """``fill`` from CGI-style variables: a WSGI environ or Django's ``request.META``."""
        peer, forwarded_for, user_agent, request_id_header = cgi_fields(variables)
        self.fill(
            ctx,
            peer=peer,
            forwarded_for=forwarded_for,
            user_agent=user_agent,
            request_id_header=request_id_header,
        )

    def started(self, ctx: RequestContext, status: int | None, rule_waits: bool = False) -> None:
        """The response starts: resolve the user for good, spool held events.

        ``rule_waits``: a rule covering the request decides later (see
        :meth:`fire`), and its event needs the user as the app knows it now.
        Raises :class:`AuditError` only when failing closed.
        """
        ctx.status = status
        ctx.started = True
        if self.get_route is not None and not self.route_when_read:
            try:
                route = self.get_route(ctx.request)
                if route is not None:
                    ctx.route = str(route)
            except Exception as err:  # noqa: BLE001 - a host callback
                swallowed(err, "get_route callback", ctx.fail_closed)
        # Resolve the user now only when something needs it: held events or
        # a rule that may fire (found by begin). A request that records
        # nothing never loads the user (no session or database lookup on our
        # account); events recorded later in such a request still resolve it lazily.
        if ctx.pending or ctx.rule_hit is not None or rule_waits:
            ctx.actor()
            ctx.acting_for()
            ctx.final = True
            flush_pending(ctx)
        else:
            ctx.pending = None  # nothing held: events recorded from now on spool at once

    def finish_quietly(
        self, ctx: RequestContext, status: int | None, exc: BaseException | None
    ) -> None:
        """:meth:`finished`, once the response is under way: a failure is counted, never raised."""
        try:
            self.finished(ctx, status, exc)
        except AuditError:
            pass  # counted by the recorder; too late to refuse the response
        except Exception as err:  # noqa: BLE001 - our bug must not become the host's
            swallowed(err, "recording the request")

    def finished(self, ctx: RequestContext, status: int | None, exc: BaseException | None) -> None:
        """The request is over (response sent, or the app raised); later calls do nothing."""
        if ctx.finished:
            return
        ctx.finished = True
        if not ctx.started:
            self.started(ctx, status if status is not None else (500 if exc is not None else None))
        elif status is not None:
            ctx.status = status  # e.g. 503 when we refused the response
        found = ctx.rule_hit
        if found is None:
            return
        ctx.rule_hit = None  # decided once; the context may outlive the request
        try:
            hit = found[0].decide(found[1], ctx.status, exc)
        except Exception as err:  # noqa: BLE001 - a bad rule must not break the host
            swallowed(err, "capture rules", ctx.fail_closed)
            return
        if hit is not None:
            action, kwargs = hit
            self.recorder.record(action, **kwargs)

    def fire(self, binding: Binding, reader: Reader, exc: BaseException | None) -> None:
        """Decide the rule :meth:`begin` left in the binding, now that the request ended.

        ``reader`` is how the middleware reads its requests (:class:`Reader`).
        Called once the last body message is due (or the app returned or
        raised), on the request's own task, so the host's callbacks see the
        request as the app left it.

        When the request has a context (something recorded, or a log line
        asked), its event is recorded through it as any other. Otherwise no
        context is made: the user, impersonator and account are resolved
        and the request's raw fields taken here, and the event is built
        (the fields read, the client IP and request id derived) and encoded
        by the spool's thread (``Recorder.record_seen``), a batch at a time.
        The request's number is drawn here and kept in the binding, so a
        context made later for the same request, and the event, make the
        same request id. Fails open: errors are counted, never raised.
        """
        found = binding[RULE]
        binding[RULE] = None
        try:
            status = status_code(binding[STATUS])
            hit = found[0].decide(found[1], status, exc)
            if hit is None:
                return
            action, kwargs = hit
            recorder = self._recorder or get_recorder()
            if binding[CTX] is not None:
                recorder.record(action, **kwargs)
                return
            user, impersonator, account, account_name = binding[PEOPLE] or self.resolve(binding)
            number = binding[SEEN] = next(_id_counter)
            recorder.record_seen(
                action,
                kwargs,
                account,
                account_name,
                (
                    user,
                    impersonator,
                    self,
                    reader.fields,
                    reader.take(binding[REQUEST]),
                    number,
                    binding[METHOD],
                    binding[PATH],
                    status,
                ),
            )
        except AuditError:
            pass  # counted by the recorder
        except Exception as err:  # noqa: BLE001 - a host callback or our bug: the host goes on
            swallowed(err, "recording the request")

    def resolve(self, binding: Binding) -> tuple[Any, Any, str | None, str | None]:
        """Ask the host for the user, impersonator and account of a request bound without
        a context, for its rule's event; kept in the binding for :meth:`fire`.

        A WSGI middleware asks when the response starts, while the app (and
        Flask's request context) is still running; ASGI's ``fire`` asks itself.
        The callbacks' failures are contained: the event goes on without.
        """
        request = binding[REQUEST]
        account, account_name = self.account_id, self.account_name
        if self.get_account is not None:
            with contain("get_account callback"):
                account, account_name = account_of(self.get_account(request))
        get_user, get_impersonator = self.get_user, self.get_impersonator
        people = binding[PEOPLE] = (
            call_resolver(get_user, request) if get_user is not None else None,
            call_resolver(get_impersonator, request) if get_impersonator is not None else None,
            account,
            account_name,
        )
        return people


def flush_pending(ctx: RequestContext) -> None:
    """Fill the now-known actor into held events and spool them."""
    pending, ctx.pending = ctx.pending, None
    if not pending:
        return
    user, impersonator = ctx.user, ctx.impersonator
    error: AuditError | None = None
    for recorder, event in pending:
        if user:
            for key, value in user.items():
                event.setdefault(f"user.{key}", value)
        if (
            impersonator
            and "audit.impersonator.id" not in event
            and "audit.impersonator.name" not in event
        ):
            for key, value in impersonator.items():
                event[f"audit.impersonator.{key}"] = value
        if ctx.status is not None:
            event.setdefault("http.response.status_code", ctx.status)
        try:
            recorder.spool_event(event)
        except AuditError as exc:  # fail-closed recorder: keep spooling the rest, then raise
            error = error or exc
    if error is not None:
        raise error
