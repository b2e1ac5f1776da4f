"""A small DQL (kuery) → OpenSearch DSL translator, for testing our saved searches.

It covers the DQL our saved objects and docs use — ``field:value``,
``field:"quoted value"``, ``field:*``, ``field:pre*``, ``field:(a or b)``,
``and``/``or``/``not`` and parentheses — and translates them the way
Dashboards' own kuery ``is`` function does: an unquoted value becomes a
``match``, a quoted one a ``match_phrase``, ``*`` alone an ``exists``, a
value with wildcards a ``query_string`` on that field. Anything else is a
``DQLError``, so a saved search using syntax this cannot check fails loudly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(
    r'\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<colon>:)|"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<word>[^\s():"<>{}]+))'
)
_KEYWORDS = {"and", "or", "not"}


class DQLError(ValueError):
    pass


@dataclass
class Parsed:
    dsl: dict[str, Any]
    fields: set[str] = field(default_factory=set)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise DQLError(f"cannot read DQL at {text[pos:]!r}")
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None
        value = m.group(kind)
        if kind == "quoted":
            value = re.sub(r"\\(.)", r"\1", value)
        elif kind == "word" and value.lower() in _KEYWORDS:
            kind = value.lower()
        out.append((kind, value))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.fields: set[str] = set()

    def peek(self) -> str | None:
        return self.toks[self.i][0] if self.i < len(self.toks) else None

    def take(self, kind: str) -> str:
        if self.peek() != kind:
            raise DQLError(f"expected {kind}, found {self.toks[self.i : self.i + 1]}")
        value = self.toks[self.i][1]
        self.i += 1
        return value

    def parse(self) -> dict[str, Any]:
        if not self.toks:
            return {"match_all": {}}
        node = self.or_()
        if self.peek() is not None:
            raise DQLError(f"unexpected {self.toks[self.i]}")
        return node

    def or_(self) -> dict[str, Any]:
        parts = [self.and_()]
        while self.peek() == "or":
            self.take("or")
            parts.append(self.and_())
        return (
            parts[0] if len(parts) == 1 else {"bool": {"should": parts, "minimum_should_match": 1}}
        )

    def and_(self) -> dict[str, Any]:
        parts = [self.not_()]
        while self.peek() == "and":
            self.take("and")
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else {"bool": {"filter": parts}}

    def not_(self) -> dict[str, Any]:
        if self.peek() == "not":
            self.take("not")
            return {"bool": {"must_not": [self.not_()]}}
        return self.primary()

    def primary(self) -> dict[str, Any]:
        if self.peek() == "lp":
            self.take("lp")
            node = self.or_()
            self.take("rp")
            return node
        name = self.take("word")
        self.take("colon")
        self.fields.add(name)
        return self.values(name)

    def values(self, name: str) -> dict[str, Any]:
        if self.peek() != "lp":
            return self.value(name)
        self.take("lp")
        parts = [self.value(name)]
        while self.peek() in ("or", "and"):
            op = self.take(self.peek() or "")
            if op != "or":
                raise DQLError("only 'or' lists are supported inside field:(...)")
            parts.append(self.value(name))
        self.take("rp")
        return (
            parts[0] if len(parts) == 1 else {"bool": {"should": parts, "minimum_should_match": 1}}
        )

    def value(self, name: str) -> dict[str, Any]:
        kind = self.peek()
        if kind == "quoted":
            return {"match_phrase": {name: self.take("quoted")}}
        value = self.take("word")
        if value == "*":
            return {"exists": {"field": name}}
        if "*" in value:
            escaped = re.sub(r'([+\-=&|><!(){}\[\]^"~?:\\/ ])', r"\\\1", value)
            return {"query_string": {"fields": [name], "query": escaped}}
        return {"match": {name: value}}


def parse(text: str) -> Parsed:
    """DQL text → the DSL Dashboards would send, plus every field it names."""
    parser = _Parser(text)
    dsl = parser.parse()
    return Parsed(dsl, parser.fields)
