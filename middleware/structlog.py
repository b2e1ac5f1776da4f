"""structlog processors: request context in log lines, audit events from log calls.

Usage::

    import structlog
    from useraudit.middleware.structlog import (
        merge_audit_context, route_audit_events, mask_secrets)

    structlog.configure(processors=[
        structlog.contextvars.merge_contextvars,
        merge_audit_context,          # request_id, client_ip, user_id... (explicit wins)
        route_audit_events,           # audit events → the recorder (masked)
        mask_secrets,                 # keep secrets out of the log line too
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.JSONRenderer(),
    ])

    log = structlog.get_logger()
    log.info("token.created", token_id="t-1", project="p-9")       # a catalog code
    log.info("exported the project", audit=True, action="bot_project.exported",
             project="p-9", outcome="success")                     # marked audit=True

An event is routed when it is marked ``audit=True`` (its code is then the
``action`` key, else the event name) or when its event name is a catalog
action code. Keys named like :meth:`Recorder.record` arguments (``outcome``,
``user``/``user_id``, ``target_user``, ``project``, ``token_id``,
``comments``, ``reason``...) fill those; the remaining keys become
``params``. Everything is masked before it reaches the recorder; the log line
itself goes on unchanged (or is dropped with
``RouteAuditEvents(drop=True)``). Works the same in front of
``structlog.stdlib.ProcessorFormatter.wrap_for_formatter`` and with values
bound through ``structlog.contextvars``.
"""

from __future__ import annotations

import inspect
from typing import Any

import structlog

from useraudit.catalog import CATALOG, Catalog
from useraudit.schema import OUTCOMES

from ._failsafe import contain
from .context import bound_now
from .context import get as current_context
from .masking import DEFAULT_MASKER, MASK, Masker
from .recorder import Recorder, get_recorder

EventDict = dict[str, Any]

# event_dict key → RequestContext attribute
CONTEXT_KEYS: dict[str, str] = {
    "request_id": "request_id",
    "client_ip": "client_ip",
    "account_id": "account_id",
    "http_method": "method",
    "http_path": "path",
    "http_route": "route",
}

# Keys passed to Recorder.record() as its own arguments: every keyword it takes
# but ``params``, which is made of the remaining keys.
RECORD_ARGS = tuple(
    name
    for name, parameter in inspect.signature(Recorder.record).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "params"
)

# structlog/stdlib bookkeeping keys that are never action parameters.
IGNORED = frozenset(
    (
        "event",
        "audit",
        "action",
        "level",
        "logger",
        "logger_name",
        "exc_info",
        "stack_info",
        "_record",
        "_from_structlog",
        "positional_args",
        "user_id",
        "impersonator_id",
        *CONTEXT_KEYS,
    )
)


class MergeAuditContext:
    """Adds the bound request context to every event dict; explicit values win.

    Args:
        keys: event_dict key → RequestContext attribute (default :data:`CONTEXT_KEYS`);
            ``user_id`` and ``impersonator_id`` are added too when known.
    """

    __slots__ = ("keys",)

    def __init__(self, keys: dict[str, str] | None = None) -> None:
        self.keys = dict(CONTEXT_KEYS if keys is None else keys)

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        ctx = current_context()
        if ctx is None:
            return event_dict
        for key, attr in self.keys.items():
            value = getattr(ctx, attr, None)
            if value is not None:
                event_dict.setdefault(key, value)
        with contain("merging the audit context"):
            user = ctx.actor()
            if user and "id" in user:
                event_dict.setdefault("user_id", user["id"])
            impersonator = ctx.acting_for()
            if impersonator and "id" in impersonator:
                event_dict.setdefault("impersonator_id", impersonator["id"])
        return event_dict


class RouteAuditEvents:
    """Sends audit events among the log calls to the recorder.

    Args:
        recorder: default: the process-wide recorder, looked up per event.
        drop: drop the log line once recorded (``structlog.DropEvent``).
        masker: masking applied before the recorder sees anything.
        catalog: which event names are action codes.
        marker: the key that marks an event as an audit event.
    """

    __slots__ = ("recorder", "drop", "masker", "catalog", "marker")

    def __init__(
        self,
        recorder: Recorder | None = None,
        *,
        drop: bool = False,
        masker: Masker = DEFAULT_MASKER,
        catalog: Catalog = CATALOG,
        marker: str = "audit",
    ) -> None:
        self.recorder = recorder
        self.drop = drop
        self.masker = masker
        self.catalog = catalog
        self.marker = marker

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        name = event_dict.get("event")
        if event_dict.get(self.marker) is True:
            action = event_dict.get("action") or name
        elif isinstance(name, str) and name in self.catalog:
            action = name
        else:
            return event_dict
        kwargs: dict[str, Any] = {}
        with contain("routing an audit log event"):
            kwargs = self._arguments(event_dict)
        (self.recorder or get_recorder()).record(str(action), **kwargs)
        if self.drop:
            raise structlog.DropEvent
        return event_dict

    def _arguments(self, event_dict: EventDict) -> dict[str, Any]:
        masker = self.masker
        kwargs: dict[str, Any] = {}
        params: dict[str, Any] = {}
        for key, value in event_dict.items():
            if key in RECORD_ARGS:
                kwargs[key] = value
            elif key not in IGNORED and key != self.marker:
                params[key] = value
        # Inside a request the recorder knows the user better than a bound id.
        if "user" not in kwargs and event_dict.get("user_id") is not None and bound_now() is None:
            kwargs["user"] = str(event_dict["user_id"])
        if "timestamp" in kwargs and not hasattr(kwargs["timestamp"], "tzinfo"):
            del kwargs["timestamp"]  # a TimeStamper string, not the action's time
        if params:
            kwargs["params"] = masker.params(params)
        for key in ("comments", "reason"):
            if kwargs.get(key) is not None:
                kwargs[key] = masker.text(str(kwargs[key]))
        if kwargs.get("outcome") not in (None, *OUTCOMES):
            kwargs["outcome"] = "unknown"
        return kwargs


class MaskSecrets:
    """Masks secret-named keys and secret-shaped text in the log line itself."""

    __slots__ = ("masker",)

    def __init__(self, masker: Masker = DEFAULT_MASKER) -> None:
        self.masker = masker

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        masker = self.masker
        for key, value in event_dict.items():
            if key.startswith("_"):
                continue  # stdlib bookkeeping (_record, _from_structlog)
            if masker.is_secret_key(key) and value not in (None, ""):
                event_dict[key] = MASK
            elif isinstance(value, str):
                event_dict[key] = masker.text(value)
            elif isinstance(value, (dict, list, tuple)):
                event_dict[key] = masker.params(value)
        return event_dict


merge_audit_context = MergeAuditContext()
route_audit_events = RouteAuditEvents()
mask_secrets = MaskSecrets()

__all__ = [
    "MaskSecrets",
    "MergeAuditContext",
    "RouteAuditEvents",
    "mask_secrets",
    "merge_audit_context",
    "route_audit_events",
]
