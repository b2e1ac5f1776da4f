"""structlog processors: context merging, routing audit events, masking, stdlib integration."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from useraudit.middleware.context import RequestContext, current
from useraudit.middleware.recorder import Recorder
from useraudit.middleware.structlog import (
    MaskSecrets,
    MergeAuditContext,
    RouteAuditEvents,
    merge_audit_context,
)

from .conftest import spool_events


@pytest.fixture
def rec(spool_dir: Path) -> Recorder:
    r = Recorder(spool_dir, durability="sync")
    yield r
    r.close()


@pytest.fixture
def bound() -> Any:
    ctx = RequestContext(
        request_id="r-1",
        client_ip="192.0.2.5",
        method="POST",
        path="/x",
        user={"id": "u-1", "name": "alice"},
        impersonator={"id": "a-9"},
    )
    token = current.set(ctx)
    yield ctx
    current.reset(token)


def test_merge_adds_context_and_explicit_values_win(bound: Any) -> None:
    """Request context fills missing keys; a key the call passed stays as passed."""
    out = merge_audit_context(None, "info", {"event": "hi", "request_id": "mine"})
    assert out == {
        "event": "hi",
        "request_id": "mine",
        "client_ip": "192.0.2.5",
        "http_method": "POST",
        "http_path": "/x",
        "user_id": "u-1",
        "impersonator_id": "a-9",
    }


def test_merge_outside_a_request_is_a_no_op() -> None:
    """Without a bound context the event dict is returned as is."""
    assert MergeAuditContext()(None, "info", {"event": "x"}) == {"event": "x"}


def test_catalog_code_events_are_recorded_masked_and_the_line_goes_on(
    rec: Recorder, bound: Any
) -> None:
    """An event named by a catalog code becomes an audit event; the log line is unchanged."""
    route = RouteAuditEvents(rec)
    line = {
        "event": "token.created",
        "token_id": "t-1",
        "project": "p",
        "secret": "hunter2",
        "note": "Bearer abcdefghijklmnop",
    }
    out = route(None, "info", dict(line))
    assert out == line
    (ev,) = spool_events(rec.spool.directory)
    assert (ev["event.action"], ev["audit.token.id"], ev["audit.project.id"]) == (
        "token.created",
        "t-1",
        "p",
    )
    assert ev["user.name"] == "alice" and ev["audit.impersonator.id"] == "a-9"
    assert "hunter2" not in json.dumps(ev) and "abcdefghijklmnop" not in json.dumps(ev)


def test_marked_events_use_their_action_key_and_can_be_dropped(rec: Recorder) -> None:
    """audit=True with action= records that action; drop=True removes the log line."""
    route = RouteAuditEvents(rec, drop=True)
    with pytest.raises(structlog.DropEvent):
        route(
            None,
            "info",
            {
                "event": "exported",
                "audit": True,
                "action": "bot_project.exported",
                "outcome": "failure",
                "reason": "quota",
                "user_id": "u-5",
            },
        )
    (ev,) = spool_events(rec.spool.directory)
    assert (ev["event.action"], ev["event.outcome"], ev["event.reason"], ev["user.id"]) == (
        "bot_project.exported",
        "failure",
        "quota",
        "u-5",
    )


def test_ordinary_log_lines_are_left_alone(rec: Recorder) -> None:
    """Events that are neither marked nor catalog codes never reach the recorder."""
    assert RouteAuditEvents(rec)(None, "info", {"event": "cache warm"}) == {"event": "cache warm"}
    assert spool_events(rec.spool.directory) == []


def test_mask_secrets_in_the_log_line() -> None:
    """Secret-named keys and secret-shaped text are masked in the line itself."""
    out = MaskSecrets()(
        None,
        "info",
        {"event": "x", "password": "p", "msg": "api_key=abc123", "n": 1, "_record": object},
    )
    assert out["password"] == "[MASKED]" and "abc123" not in out["msg"] and out["n"] == 1
    assert out["_record"] is object


def test_with_stdlib_integration_and_contextvars(rec: Recorder, bound: Any, caplog: Any) -> None:
    """Through structlog.stdlib, ProcessorFormatter and contextvars-bound keys, events route."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(project="p-ctx")
    logger = logging.getLogger("useraudit.test.stdlib")
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(processor=structlog.processors.JSONRenderer())
    )
    logger.addHandler(handler)
    lines: list[str] = []
    handler.emit = lambda record: lines.append(handler.format(record))  # type: ignore[method-assign]
    try:
        log = structlog.wrap_logger(
            logger,
            processors=[
                structlog.contextvars.merge_contextvars,
                MergeAuditContext(),
                RouteAuditEvents(rec),
                MaskSecrets(),
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            wrapper_class=structlog.stdlib.BoundLogger,
        )
        logger.setLevel(logging.INFO)
        log.info("environment_variable.updated", name="DB_URL", password="pw-123")
    finally:
        logger.removeHandler(handler)
        structlog.contextvars.clear_contextvars()
    (ev,) = spool_events(rec.spool.directory)
    assert ev["audit.project.id"] == "p-ctx" and ev["http.request.id"] == "r-1"
    assert ev["audit.params"]["password"] == "[MASKED]"
    line = json.loads(lines[0])
    assert line["event"] == "environment_variable.updated" and line["password"] == "[MASKED]"
    assert line["request_id"] == "r-1"


def test_processors_are_small_slotted_classes() -> None:
    """Settings live in __slots__, so a processor costs no per-instance dict."""
    for proc in (MergeAuditContext(), RouteAuditEvents(), MaskSecrets()):
        assert not hasattr(proc, "__dict__")


class _Kept(Recorder):
    """A real recorder that also keeps the keyword arguments each record() call got."""

    def __init__(self, spool_dir: Path) -> None:
        super().__init__(spool_dir, durability="sync")
        self.calls: list[dict[str, Any]] = []

    def record(self, action: str, **kwargs: Any) -> str | None:  # type: ignore[override]
        self.calls.append(kwargs)
        return super().record(action, **kwargs)


def test_every_record_argument_is_routed_as_an_argument(spool_dir: Path) -> None:
    """Each keyword record() takes (but params) reaches it as that argument, not as a param:
    the processor's list follows record()'s signature."""
    import inspect

    keywords = [
        name
        for name, p in inspect.signature(Recorder.record).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "params"
    ]
    assert {"outcome", "user", "project", "token_id", "comments", "event_id"} <= set(keywords)
    rec = _Kept(spool_dir)
    try:
        route = RouteAuditEvents(rec)
        event = {"event": "token.created", **{name: f"v-{name}" for name in keywords}}
        event["timestamp"] = datetime(2026, 1, 2, tzinfo=UTC)
        event["outcome"] = "failure"
        event["colour"] = "blue"
        route(None, "info", event)
    finally:
        rec.close()
    (kwargs,) = rec.calls
    assert set(kwargs) == {*keywords, "params"}
    assert kwargs["params"] == {"colour": "blue"}
    assert kwargs["outcome"] == "failure" and kwargs["project"] == "v-project"
