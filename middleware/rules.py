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


def compile_route(route: str, named: bool = True) -> re.Pattern[str]:
    return re.compile(route_regex(route, named) + r"/?\Z")


def route_regex(route: str, named: bool = True) -> str:
    """The regex of a route pattern; ``named=False`` leaves out the group names."""
    out, pos = [], 0
    for m in _PLACEHOLDER.finditer(route):
        out.append(re.escape(route[pos : m.start()]))
        value = ".+" if m.group(2) else "[^/]+"
        out.append(f"(?P<{m.group(1)}>{value})" if named else f"(?:{value})")
        pos = m.end()
    out.append(re.escape(route[pos:]))
    return "".join(out)


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
        groups = m.groupdict()
        if groups or self.params:
            params = dict(self.params)
            for name, value in groups.items():
                if name in RECORD_ARGS:
                    kwargs[name] = value
                else:
                    params[name] = value
            if params:
                kwargs["params"] = params
        return self.action, kwargs


class Rules:
    """An ordered list of rules; the first that matches method and route decides.

    Rules for the request's method are tried before ``"*"`` rules.
    """

    __slots__ = ("rules", "methods", "_by_method", "_wildcard", "_any", "_any_wildcard")

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = list(rules)
        by_method: dict[str, list[Rule]] = {}
        for rule in self.rules:
            by_method.setdefault(rule.method.upper(), []).append(rule)
        wildcard = tuple(by_method.pop("*", ()))
        self._wildcard = wildcard
        # The methods some rule names; None when a "*" rule covers every method.
        self.methods: frozenset[str] | None = None if wildcard else frozenset(by_method)
        self._by_method = {method: (*own, *wildcard) for method, own in by_method.items()}
        # Whether any rule covers a path, in one regex per method: the
        # common request matches none, and one pass in C beats a loop here.
        self._any = {method: _any_of(candidates) for method, candidates in self._by_method.items()}
        self._any_wildcard = _any_of(wildcard)

    def may_match(self, method: str, path: str) -> bool:
        """Whether some rule covers this method and path (whatever the status)."""
        pattern = self._any.get(method)
        if pattern is None:
            pattern = self._any.get(method.upper(), self._any_wildcard)
        return pattern is not None and pattern.match(path) is not None

    def match(
        self, method: str, path: str, status: int | None, exc: BaseException | None = None
    ) -> tuple[str, dict[str, Any]] | None:
        found = self.find(method, path)
        return found[0].decide(found[1], status, exc) if found is not None else None

    def find(self, method: str, path: str) -> tuple[Rule, re.Match[str]] | None:
        """The rule that covers this method and path, with its match (the status decides later).

        One regex for the common request either way: the rule's own when it
        is the method's only candidate, else the all-candidates pre-check
        of :meth:`may_match` first.
        """
        candidates = self._by_method.get(method)
        if candidates is None:
            candidates = self._by_method.get(method.upper(), self._wildcard)
        if len(candidates) > 1 and not self.may_match(method, path):
            return None
        for rule in candidates:
            m = rule._pattern.match(path)  # type: ignore[attr-defined]
            if m is not None:
                return rule, m
        return None


def _any_of(rules: tuple[Rule, ...]) -> re.Pattern[str] | None:
    if not rules:
        return None
    return re.compile(
        "|".join(f"(?:{route_regex(rule.route, named=False)}/?\\Z)" for rule in rules)
    )
