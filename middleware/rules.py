"""Declarative capture rules: (method, route, status) → action and outcome.

For actions the app does not record itself, the middleware can derive the
event from the request and its response::

    from useraudit.middleware.rules import Rule, Rules

    rules = Rules([
        # A sign-in that failed: 401/403 is a failure; success is recorded
        # by the framework's sign-in signal, so no success range here.
        Rule("POST", "/login", "user.signed_in", success="", failure="401,403"),
        Rule("DELETE", "/tokens/{token_id}", "token.deleted"),
        Rule("GET", "/projects/{project}/export", "bot_project.exported"),
    ])

Route patterns are literal paths with ``{name}`` placeholders for one path
segment (``{name:path}`` for the rest of the path). Placeholders named like
:meth:`Recorder.record` arguments — ``project``, ``token_id``,
``target_user``, ``account`` — fill those; any other placeholder goes into
``params``. Status ranges are comma-separated codes, ``Nxx`` classes or
``a-b`` ranges. A response whose status is in neither range records
nothing. An exception raised by the app records a failure (reason: the
exception's class name) and is re-raised unchanged by the middleware.
Streaming responses are recorded when the body ends — or fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")
RECORD_ARGS = frozenset(("project", "project_name", "token_id", "target_user", "account"))


def parse_statuses(spec: str | Iterable[int]) -> frozenset[int]:
    """``"2xx,3xx"`` / ``"401,403"`` / ``"200-204"`` / ``[200, 201]`` → set of codes."""
    if not isinstance(spec, str):
        return frozenset(int(s) for s in spec)
    codes: set[int] = set()
    for part in (p.strip().lower() for p in spec.split(",")):
        if not part:
            continue
        if part.endswith("xx") and len(part) == 3 and part[0].isdigit():
            base = int(part[0]) * 100
            codes.update(range(base, base + 100))
        elif "-" in part:
            lo, hi = (int(x) for x in part.split("-", 1))
            codes.update(range(lo, hi + 1))
        else:
            codes.add(int(part))
    return frozenset(codes)


def compile_route(route: str) -> re.Pattern[str]:
    out, pos = [], 0
    for m in _PLACEHOLDER.finditer(route):
        out.append(re.escape(route[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)")
        pos = m.end()
    out.append(re.escape(route[pos:]))
    return re.compile("".join(out) + r"/?\Z")


@dataclass(frozen=True)
class Rule:
    """One capture rule. ``method`` may be ``"*"``; see the module docstring."""

    method: str
    route: str
    action: str
    success: str | Iterable[int] = "2xx,3xx"
    failure: str | Iterable[int] = "4xx,5xx"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", compile_route(self.route))
        object.__setattr__(self, "_success", parse_statuses(self.success))
        object.__setattr__(self, "_failure", parse_statuses(self.failure))
        object.__setattr__(self, "_method", self.method.upper())

    def match(
        self, method: str, path: str, status: int | None, exc: BaseException | None
    ) -> tuple[str, dict[str, Any]] | None:
        if self._method != "*" and self._method != method.upper():  # type: ignore[attr-defined]
            return None
        m = self._pattern.match(path)  # type: ignore[attr-defined]
        if m is None:
            return None
        return self.decide(m, status, exc)

    def decide(
        self, m: re.Match[str], status: int | None, exc: BaseException | None
    ) -> tuple[str, dict[str, Any]] | None:
        """Outcome and record() arguments for a request whose path matched ``m``."""
        if exc is not None:
            outcome, reason = "failure", type(exc).__name__
        elif status in self._success:  # type: ignore[attr-defined]
            outcome, reason = "success", None
        elif status in self._failure:  # type: ignore[attr-defined]
            outcome, reason = "failure", f"HTTP {status}"
        else:
            return None
        kwargs: dict[str, Any] = {"outcome": outcome}
        if reason:
            kwargs["reason"] = reason
        params = dict(self.params)
        for name, value in m.groupdict().items():
            if name in RECORD_ARGS:
                kwargs[name] = value
            else:
                params[name] = value
        if params:
            kwargs["params"] = params
        return self.action, kwargs


class Rules:
    """An ordered list of rules; the first that matches method and route decides."""

    __slots__ = ("rules", "_by_method")

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = list(rules)
        self._by_method: dict[str, list[Rule]] = {}
        for rule in self.rules:
            self._by_method.setdefault(rule.method.upper(), []).append(rule)

    def may_match(self, method: str, path: str) -> bool:
        """Whether some rule covers this method and path (whatever the status)."""
        method = method.upper()
        for rule in (*self._by_method.get(method, ()), *self._by_method.get("*", ())):
            if rule._pattern.match(path):  # type: ignore[attr-defined]
                return True
        return False

    def match(
        self, method: str, path: str, status: int | None, exc: BaseException | None = None
    ) -> tuple[str, dict[str, Any]] | None:
        method = method.upper()
        for rule in (*self._by_method.get(method, ()), *self._by_method.get("*", ())):
            m = rule._pattern.match(path)  # type: ignore[attr-defined]
            if m is not None:
                return rule.decide(m, status, exc)
        return None
