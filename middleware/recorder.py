"""``record()``: the one call that turns an action into a spooled audit event.

Usage in app code::

    import useraudit
    useraudit.configure(spool_dir="/var/lib/useraudit/spool", durability="batch")

    useraudit.record("custom_role.renamed", project="p-42",
                     params={"from": "Editors", "to": "Reviewers"})

Inside a request the middleware has bound who and where (user, account,
impersonator, client IP, user agent, request id); ``record`` fills those in,
masks secrets, and appends the event to the spool. It returns the event id.

It never raises into the host app: any failure is logged and counted in
``Recorder.stats`` — unless the recorder was configured ``fail_closed=True``
(for compliance-strict apps that must not act without an audit trail), in
which case :class:`AuditError` is raised and the middleware answers 503.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from useraudit import config as _config
from useraudit._json import dumps, loads
from useraudit.config import default_spool_dir
from useraudit.schema import ACCOUNT_ID, PERSON_PARTS, PERSONS, UNASSIGNED_ACCOUNT
from useraudit.spool import Durability, FullPolicy, SpoolWriter

from . import context as _context
from ._failsafe import AuditError, internal_error
from .masking import DEFAULT_MASKER, Masker

log = logging.getLogger("useraudit")

# Longest free text record() spools; the indexer cuts much shorter and flags it.
MAX_TEXT_CHARS = 1 << 20


def new_event_id(ms: int | None = None) -> str:
    """A 32-hex-digit id whose first 12 digits are the millisecond clock (``ms``: now).

    Time-ordered like UUIDv7, so ids sort roughly by creation and SQLite's
    B-tree appends stay cheap; 80 random bits make collisions negligible.
    The bits come from the process PRNG, which Python seeds from the OS and
    reseeds in every forked child: ids are unique, not secret, and this
    saves a getrandom() syscall per event (~15 µs on some VMs).
    """
    if ms is None:
        ms = time.time_ns() // 1_000_000
    # One 128-bit int formatted once: cheaper than formatting its two halves.
    return format((ms << 80) | _random_bits(80), "032x")


_random_bits = random.getrandbits


@dataclass
class RecorderStats:
    recorded: int = 0
    errors: int = 0
    rejected_full: int = 0


class Recorder:
    """Builds, masks and spools events. Thread- and fork-safe.

    Args:
        spool_dir: the spool directory the indexer reads.
        durability: ``"batch"`` (group commit every ``flush_interval`` s) or
            ``"sync"`` (fsync before ``record`` returns).
        masker: the masking rules (default: :data:`DEFAULT_MASKER`).
        fail_closed: raise :class:`AuditError` instead of carrying on.
        account: the account of every event that names none, for a
            single-tenant app (``account_id`` is its older name).
        get_account: ``() -> id`` or ``(id, name)``, asked for events
            recorded outside a request (jobs, scripts) that name no account.
        account_name / product: defaults for every event.
    """

    def __init__(
        self,
        spool_dir: str | os.PathLike[str] | None = None,
        *,
        durability: Durability | None = None,
        flush_interval: float = 0.05,
        max_spool_bytes: int = 1024 * 1024 * 1024,
        full_policy: FullPolicy = "block",
        masker: Masker = DEFAULT_MASKER,
        fail_closed: bool = False,
        account_id: str | None = None,
        account_name: str | None = None,
        product: str | None = None,
        account: str | None = None,
        get_account: Callable[[], Any] | None = None,
    ) -> None:
        explicit = account or account_id
        if explicit and get_account is not None:
            raise ValueError("useraudit: give either account= or get_account=, not both")
        if explicit:
            account_id = check_account(explicit, "account")
        elif get_account is None:  # USERAUDIT_ACCOUNT is the default; a callback wins over it
            account_id = check_account(_config.default_account(), "USERAUDIT_ACCOUNT")
        else:
            account_id = None
        self.spool = SpoolWriter(
            spool_dir or default_spool_dir(),
            durability=durability or _config.default_durability(),  # type: ignore[arg-type]
            flush_interval=flush_interval,
            max_bytes=max_spool_bytes,
            full_policy=full_policy,
            encode=numbered,
        )
        self.masker = masker
        self.fail_closed = fail_closed
        self.account_id = account_id
        self.get_account = get_account
        self.account_name = account_name
        self.product = product
        self.stats = RecorderStats()

    def record(
        self,
        action: str,
        *,
        outcome: str = "success",
        user: Any = None,
        target_user: Any = None,
        impersonator: Any = None,
        account: str | None = None,
        account_name: str | None = None,
        project: str | None = None,
        project_name: str | None = None,
        token_id: str | None = None,
        params: dict[str, Any] | None = None,
        comments: str | None = None,
        reason: str | None = None,
        timestamp: datetime | None = None,
        event_id: str | None = None,
    ) -> str | None:
        """Record one action; returns its event id (None if it could not be spooled).

        Explicit arguments win over the request context. ``user``,
        ``target_user`` and ``impersonator`` take an id string, a dict with
        id/name/email/full_name, or a user object (``.id``, ``.username``,
        ``.email``...). ``params`` are masked and stored as structured data;
        when ``comments`` is omitted they are also rendered into it.
        """
        try:
            ctx = _context.current.get()
            event = self._build(
                ctx,
                action,
                outcome,
                user,
                target_user,
                impersonator,
                account,
                account_name,
                project,
                project_name,
                token_id,
                params,
                comments,
                reason,
                timestamp,
                event_id,
            )
            if ctx is not None and ctx.pending is not None and not _has_person(event, "user"):
                # No actor known yet inside a request: hold the event until
                # the response starts (see middleware.context).
                ctx.pending.append((self, event))
                return event["event.id"]
            self.spool.append(event)
        except Exception as exc:
            self._failed(exc, action)
            return None
        self.stats.recorded += 1
        return event["event.id"]

    def record_seen(
        self,
        action: str,
        kwargs: dict[str, Any],
        account: str | None,
        account_name: str | None,
        request: tuple[Any, ...],
    ) -> None:
        """Queue a capture rule's event whose request was resolved and read already.

        ``request`` is what :meth:`built` reads of the request: user and
        impersonator (persons), the capture, its reader's ``fields`` and the
        raw values it took, the request's number, method, path, status (see
        ``Capture.fire``). What must happen on the request's thread happens
        here: the clock, and the recorder's own ``get_account`` when nothing
        else named the account. The event is built where the spool encodes
        it: on the spool's thread in ``batch`` durability, a batch at a time
        (:func:`numbered`), at once in ``sync``. It waits as one flat tuple,
        so the collector has few young objects per event to look at, and the
        request itself is not kept alive meanwhile.
        """
        try:
            if not account and not kwargs.get("account"):
                account, account_name = self._fallback_account(account, account_name)
            self.spool.append(
                (self, time.time_ns() // 1_000_000, action, kwargs, account, account_name, *request)
            )
        except Exception as exc:
            self._failed(exc, action)
            return
        self.stats.recorded += 1

    def built(self, queued: tuple[Any, ...]) -> dict[str, Any]:
        """The event :meth:`record_seen` queued, built from what it took.

        Everything of the request was taken on its thread, so this asks
        nothing of the host; the raw values taken are read here.
        """
        (
            _self,
            ms,
            action,
            kwargs,
            account,
            account_name,
            user,
            impersonator,
            capture,
            fields,
            taken,
            number,
            method,
            path,
            status,
        ) = queued
        get = kwargs.get
        ev = self._build(
            None,
            action,
            get("outcome"),
            None,
            get("target_user"),
            None,
            get("account") or account,
            account_name,
            get("project"),
            get("project_name"),
            get("token_id"),
            get("params"),
            None,
            get("reason"),
            None,
            None,
            ms=ms,
            ask_account=False,
        )
        if user:
            _put_person(ev, "user", user)
        if impersonator:
            _put_person(ev, "audit.impersonator", impersonator)
        _peer, _forwarded_for, agent, ip, request_id = capture.seen(*fields(taken), number)
        _put_request_fields(ev, ip, agent, request_id, method, path, status, self.masker.text)
        return ev

    def spool_event(self, event: dict[str, Any]) -> bool:
        """Spool an event built earlier (held by the middleware); raises only when fail-closed."""
        try:
            self.spool.append(event)
        except Exception as exc:
            self._failed(exc, str(event.get("event.action")))
            return False
        self.stats.recorded += 1
        return True

    def _build(
        self,
        ctx: _context.RequestContext | None,
        action: str,
        outcome: str | None,
        user: Any,
        target_user: Any,
        impersonator: Any,
        account: str | None,
        account_name: str | None,
        project: str | None,
        project_name: str | None,
        token_id: str | None,
        params: Any,
        comments: Any,
        reason: Any,
        timestamp: datetime | None,
        event_id: str | None,
        ms: int | None = None,
        ask_account: bool = True,
    ) -> dict[str, Any]:
        # On every request's path: plain locals and no loops over absent keys.
        if timestamp is None and event_id is None:  # the common case: one clock read for both
            if ms is None:
                ms = time.time_ns() // 1_000_000
            ev: dict[str, Any] = {"@timestamp": _iso_ms(ms), "event.id": new_event_id(ms)}
        else:
            ev = {"@timestamp": _iso(timestamp), "event.id": event_id or new_event_id()}
        ev["event.action"] = action
        ev["event.outcome"] = outcome or "success"
        self._put_account(ev, ctx, account, account_name, ask_account)
        _put_people(ev, ctx, user, target_user, impersonator)
        text = self.masker.text
        if (
            project is not None
            or project_name is not None
            or token_id is not None
            or reason is not None
        ):
            for name, value in (
                ("audit.project.id", project),
                ("audit.project.name", project_name),
                ("audit.token.id", token_id),
                ("event.reason", reason),
            ):
                if value is not None and value != "":
                    ev[name] = text(str(value))
        if self.product:
            ev["audit.product"] = self.product
        if params:
            masked = self.masker.params(params)
            ev["audit.params"] = masked
            if comments is None:
                ev["audit.comments"] = describe_params(masked)
        if comments is not None:
            # Cut far beyond what the index keeps (32,766 chars, flagged
            # truncated there): a 20 MB comment must not exceed the spool's
            # record bound and lose the whole event.
            ev["audit.comments"] = text(str(comments)[:MAX_TEXT_CHARS])
        if ctx is not None:
            _put_request(ev, ctx, text)
        return ev

    def _put_account(
        self,
        ev: dict[str, Any],
        ctx: _context.RequestContext | None,
        account: str | None,
        account_name: str | None,
        ask: bool = True,
    ) -> None:
        """The account: given, else the request's, else this recorder's (or its get_account).

        ``ask=False``: the recorder's own account and ``get_account`` were applied already,
        on the request's thread (``record_seen``).
        """
        if ctx is not None:
            account = account or ctx.account_id
            account_name = account_name or ctx.account_name
        if ask:
            account, account_name = self._fallback_account(account, account_name)
        if account:
            ev["organization.id"] = account
        else:
            _no_account(ev["event.action"])
        account_name = account_name or self.account_name
        if account_name:
            ev["organization.name"] = account_name

    def _fallback_account(
        self, account: str | None, account_name: str | None
    ) -> tuple[str | None, str | None]:
        """``account``, else this recorder's own, else what its ``get_account`` says."""
        account = account or self.account_id
        if not account and self.get_account is not None:
            account, name = _call_get_account(self.get_account)
            account_name = account_name or name
        return account, account_name

    def flush(self) -> None:
        self.spool.flush()

    def close(self) -> None:
        self.spool.close()

    def _failed(self, exc: Exception, action: str) -> None:
        from useraudit.spool import SpoolFull

        if isinstance(exc, SpoolFull):
            self.stats.rejected_full += 1
        self.stats.errors += 1
        internal_error(exc, "record()")
        log.error(
            "useraudit: could not record %r: %s",
            action,
            exc,
            exc_info=not isinstance(exc, SpoolFull),
        )
        if self.fail_closed:
            raise AuditError(f"audit event {action!r} was not recorded: {exc}") from exc


def check_account(account: str | None, what: str) -> str | None:
    """A fixed account id, refused at configuration when the admin UI could not open it."""
    if account is None or account == "":
        return None
    if not isinstance(account, str) or not ACCOUNT_ID.match(account):
        raise ValueError(
            f"useraudit: {what}={account!r} is not an account id the admin UI can open: "
            "use 1-128 letters, digits and _ . : @ -"
        )
    return account


def account_of(value: Any) -> tuple[str | None, str | None]:
    """What a ``get_account`` callback returned: an id, ``(id, name)`` or None."""
    if value is None:
        return None, None
    if isinstance(value, tuple):
        ident, name = (value + (None, None))[:2]
        return (str(ident) if ident else None), (str(name) if name else None)
    return str(value), None


def _call_get_account(fn: Callable[[], Any]) -> tuple[str | None, str | None]:
    try:
        return account_of(fn())
    except Exception as exc:  # a host callback must never lose the event
        internal_error(exc, "get_account callback")
        log.error("useraudit: get_account callback failed: %r", exc, exc_info=exc)
        return None, None


_warned_no_account = False


def _no_account(action: str) -> None:
    # Once per process: loud enough to be seen in the host's log, cheap after.
    global _warned_no_account
    if not _warned_no_account:
        _warned_no_account = True
        log.warning(
            "useraudit: event %r has no account; it will be filed under %r. "
            "Give the middleware account='...' (one tenant) or get_account=... "
            "(see docs/capture.md, 'Which account an event belongs to')",
            action,
            UNASSIGNED_ACCOUNT,
        )


_second: tuple[int, str] = (-1, "")


def _iso_ms(ms: int) -> str:
    """Millisecond UTC with a Z: cheap to produce, and what ECS tools expect.

    The formatted second is cached (most events share it with the last
    one) and the millisecond suffixes are made once: one concatenation.
    """
    global _second
    sec, frac = divmod(ms, 1000)
    cached = _second
    if cached[0] != sec:
        cached = _second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return cached[1] + _MILLIS[frac]


_MILLIS = tuple(f".{frac:03d}Z" for frac in range(1000))


def _iso(ts: datetime | None) -> str:
    if ts is None:
        return _iso_ms(time.time_ns() // 1_000_000)
    if not isinstance(ts, datetime):
        # A string or epoch number from a careless caller: the indexer
        # parses it or flags invalid_timestamp; never drop the event here.
        return ts  # type: ignore[return-value]
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    try:
        return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except OverflowError:
        # Year 1 at +14:00 or year 9999 at -14:00 has no UTC form: keep the
        # offset; the indexer flags it clock_skew and uses the id's time.
        return ts.isoformat(timespec="milliseconds")


# "user" → {"id": "user.id", ...}: the event field of each part of each person.
_PERSON_FIELDS = {
    prefix: {part: f"{prefix}.{part}" for part in PERSON_PARTS} for prefix, _role in PERSONS
}


def _put_person(ev: dict[str, Any], prefix: str, person: dict[str, str] | None) -> None:
    if person:
        fields = _PERSON_FIELDS[prefix]
        for key, value in person.items():
            ev[fields.get(key) or f"{prefix}.{key}"] = value


def _put_people(
    ev: dict[str, Any],
    ctx: _context.RequestContext | None,
    user: Any,
    target_user: Any,
    impersonator: Any,
) -> None:
    """Actor, modified user and impersonator: given, else (actor, impersonator) the request's."""
    person = _context.person
    actor = person(user) if user is not None else None
    if actor is None and ctx is not None:
        actor = ctx.actor()
    if actor:
        _put_person(ev, "user", actor)
    if target_user is not None:
        _put_person(ev, "user.target", person(target_user))
    admin = person(impersonator) if impersonator is not None else None
    if admin is None and ctx is not None:
        admin = ctx.acting_for()
    if admin:
        _put_person(ev, "audit.impersonator", admin)


def _put_request(
    ev: dict[str, Any], ctx: _context.RequestContext, text: Callable[[str], str]
) -> None:
    """What the middleware saw of the request (its first read parses the request's headers)."""
    ip, agent, request_id = ctx.seen()
    _put_request_fields(ev, ip, agent, request_id, ctx.method, ctx.path, ctx.status, text)
    if ctx.extra:
        for key, value in ctx.extra.items():
            ev.setdefault(key, _snapshot(value))


def _put_request_fields(
    ev: dict[str, Any],
    ip: str | None,
    agent: str | None,
    request_id: str | None,
    method: str | None,
    path: str | None,
    status: int | None,
    text: Callable[[str], str],
) -> None:
    if ip:
        ev["source.address"] = ip
    if agent:
        ev["user_agent.original"] = agent
    if request_id:
        ev["http.request.id"] = request_id
    if method:
        ev["http.request.method"] = method
    if path:
        ev["url.path"] = text(path)  # ;jsessionid=…, tokens in segments
    if status is not None:
        ev["http.response.status_code"] = status


def _has_person(ev: dict[str, Any], prefix: str) -> bool:
    for field in _PERSON_FIELDS[prefix].values():
        if field in ev:
            return True
    return False


def describe_params(params: Any) -> str:
    """Params as readable comment text: 'name: Reviewers; enabled: true'."""
    if isinstance(params, dict):
        return "; ".join(f"{k}: {_short(v)}" for k, v in params.items())
    return _short(params)


def _short(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def diff(
    before: dict[str, Any], after: dict[str, Any], masker: Masker = DEFAULT_MASKER
) -> tuple[str, dict[str, Any]]:
    """Turn a settings change into (comments, params) for ``record``.

    >>> diff({"name": "A", "ttl": 5}, {"name": "B", "ttl": 5, "tags": ["x"]})[0]
    'name: "A" → "B"; tags: added ["x"]'

    Secret-named settings show that they changed, never their values.
    """
    changes: dict[str, Any] = {}
    parts: list[str] = []
    for key in sorted(set(before) | set(after), key=str):
        old, new = before.get(key, _MISSING), after.get(key, _MISSING)
        if old == new:
            continue
        if masker.is_secret_key(str(key)):
            changes[key] = {"changed": True}
            parts.append(f"{key}: changed")
            continue
        old = masker.params(old) if old is not _MISSING else old
        new = masker.params(new) if new is not _MISSING else new
        if old is _MISSING:
            changes[key] = {"to": new}
            parts.append(f"{key}: added {_json(new)}")
        elif new is _MISSING:
            changes[key] = {"from": old}
            parts.append(f"{key}: removed (was {_json(old)})")
        else:
            changes[key] = {"from": old, "to": new}
            parts.append(f"{key}: {_json(old)} → {_json(new)}")
    return "; ".join(parts), changes


_MISSING = object()


MAX_EVENT_BYTES = 4 * 1024 * 1024


def encode(event: dict[str, Any]) -> bytes:
    """The event as spool bytes; oversized params give way to a note.

    The event itself is never dropped: an event larger than
    ``MAX_EVENT_BYTES`` (params of many megabytes) would exceed the spool's
    record limit and be lost whole; instead its params give way to a marker
    saying how large they were, and the indexer flags the event
    ``truncated``.
    """
    payload = dumps(event)
    if len(payload) <= MAX_EVENT_BYTES:
        return payload
    slim = {k: v for k, v in event.items() if k != "audit.params"}
    slim["audit.params"] = {"truncated": f"params of {len(payload)} bytes were not kept"}
    slim["audit.flags"] = ["truncated"]
    comments = slim.get("audit.comments")
    if isinstance(comments, str) and len(comments) > 65_536:  # often rendered from those params
        slim["audit.comments"] = comments[:65_536] + "…[truncated]"
    payload = dumps(slim)
    if len(payload) > MAX_EVENT_BYTES:  # something else is huge: keep the essentials
        keep = (
            "@timestamp",
            "event.id",
            "event.action",
            "event.outcome",
            "organization.id",
            "user.id",
        )
        slim = {k: slim[k] for k in keep if k in slim}
        slim["audit.comments"] = f"event of {len(payload)} bytes cut to its essentials"
        slim["audit.flags"] = ["truncated"]
        payload = dumps(slim)
    return payload


def numbered(event: dict[str, Any], origin: str, number: int) -> bytes:
    """The spool record of ``event``, the ``number``-th of host process ``origin``.

    ``audit.origin.*`` let ``useraudit verify`` see events lost between the
    host and the store as gaps (docs/integrity.md). Called by the spool
    writer (in ``batch`` mode on its flushing thread), so an event is
    encoded once its number is known and never changed after ``record()``.
    """
    if event.__class__ is tuple:  # queued by Recorder.record_seen: built now
        event = event[0].built(event)  # type: ignore[attr-defined]
    event["audit.origin.id"] = origin
    event["audit.origin.seq"] = number
    try:
        return encode(event)
    except Exception:  # noqa: BLE001 - the event is recorded either way
        # A value bound with bind_extra that JSON cannot hold (a circular
        # structure, say): such values are recorded as text, never lost.
        return encode({k: _json_or_text(v) for k, v in event.items()})


def _json_or_text(value: Any) -> Any:
    try:
        dumps(value)
    except Exception:  # noqa: BLE001
        return _text_of(value)
    return value


def _snapshot(value: Any) -> Any:
    """A bound value as it is now: the event is encoded later, and the app may change it."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        return loads(dumps(value))
    except Exception:  # noqa: BLE001 - JSON cannot hold it: kept as text
        return _text_of(value)


def _text_of(value: Any) -> str:
    try:
        return str(value)[:MAX_TEXT_CHARS]
    except Exception:  # noqa: BLE001
        return f"<{type(value).__name__}>"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


_default: Recorder | None = None
_default_lock = threading.Lock()


def configure(**kwargs: Any) -> Recorder:
    """Create the process-wide recorder used by :func:`record` and the middleware."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
        _default = Recorder(**kwargs)
        return _default


def get_recorder() -> Recorder:
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Recorder()
    return _default


def record(action: str, **kwargs: Any) -> str | None:
    """Record an action with the process-wide recorder. See :meth:`Recorder.record`."""
    return get_recorder().record(action, **kwargs)
