"""What the UI asks a Store for: filters, full text, facets, a page, a cursor.

Backends translate a :class:`Query` into their own language
(OpenSearch DSL, SQL) and must give the same answers; the contract suite
in ``tests/store/`` holds them to it.

Tenant isolation starts here: ``Query.account`` is required and every
backend filters on it in every request (search, facets, export, count).
Cursors carry only sort values, never filters, so a crafted cursor cannot
widen a query to another account.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

# Facet name → the field it counts. Order is the UI's order.
FACETS: dict[str, str] = {
    "action": "event.action",
    "result": "event.outcome",
    "user": "user.name",
    "target": "user.target.name",
    "impersonator": "audit.impersonator.name",
    "project": "audit.project.id",
    "product": "audit.product",
    "browser": "user_agent.name",
    "os": "user_agent.os.name",
    "device": "user_agent.device.name",
    "country": "source.geo.country_iso_code",
}

# Person filters match the id exactly, or the login name, e-mail or full
# (display) name, folded (:func:`fold`: case and Latin accents ignored, any script).
PERSON_FILTERS: dict[str, str] = {
    "users": "user",
    "target_users": "user.target",
    "impersonators": "audit.impersonator",
}

# Simple term filters: Query attribute → field (exact match, except FOLDED_FILTERS).
TERM_FILTERS: dict[str, str] = {
    "products": "audit.product",
    "actions": "event.action",
    "projects": "audit.project.id",
    "token_ids": "audit.token.id",
    "outcomes": "event.outcome",
    "browsers": "user_agent.name",
    "oses": "user_agent.os.name",
    "devices": "user_agent.device.name",
    "countries": "source.geo.country_iso_code",
}

# Term filters that ignore case (and Latin accents): browser, OS and device
# names are shown as the user-agent parser spells them ("iPhone", "Mac OS X"),
# which nobody types exactly.
FOLDED_FILTERS: frozenset[str] = frozenset({"browsers", "oses", "devices"})
# The person fields a person filter matches besides the id.
PERSON_PARTS_FOLDED = ("name", "email", "full_name")
# Filters outside TERM_FILTERS and PERSON_FILTERS that each backend handles itself.
EXTRA_FILTERS = ("history", "ips", "groups", "request_ids")
# Exact-match filters on fields that are neither facets nor stored in the
# backends' narrow indexes: rare, selective pivots.
PIVOT_FILTERS: dict[str, str] = {"request_ids": "http.request.id"}

MAX_TEXT = 512
MAX_VALUES = 100
MAX_PAGE = 500


class QueryError(ValueError):
    """The query is malformed; the message is safe to show to the user.

    ``template`` is the English message with ``%(name)s`` placeholders and
    ``params`` their values: the UI translates the template (every one is in
    the Russian catalog) and fills it in; ``str()`` is the English text.
    """

    def __init__(self, template: str, **params: object) -> None:
        self.template = template
        self.params = params
        super().__init__(template % params if params else template)


@dataclass(frozen=True)
class Query:
    """Filters. Values within one facet are OR-ed; facets are AND-ed.

    ``actions`` and ``groups`` are one facet (the UI's action picker): an
    event matches when its action is one of ``actions`` *or* it belongs to
    one of ``groups``. Every other attribute is a facet of its own.
    """

    account: str
    # The period, both ends inclusive, to the millisecond; naive times are UTC.
    start: datetime | None = None
    end: datetime | None = None
    products: tuple[str, ...] = ()
    # (product, group) pairs: "narrowed to groups" as on the product page.
    groups: tuple[tuple[str, str], ...] = ()
    actions: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    target_users: tuple[str, ...] = ()
    impersonators: tuple[str, ...] = ()
    # User history: the user as actor, modified user or impersonator.
    history: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    token_ids: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    # Exact addresses or CIDR networks.
    ips: tuple[str, ...] = ()
    browsers: tuple[str, ...] = ()
    oses: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    # ISO country codes from GeoIP (source.geo.country_iso_code).
    countries: tuple[str, ...] = ()
    # Events of these requests (http.request.id): the details panel's "same request".
    request_ids: tuple[str, ...] = ()
    # Full text over comments, simple-query-string semantics.
    text: str = ""

    def __post_init__(self) -> None:
        if not self.account:
            raise QueryError("an account is required")
        if len(self.text) > MAX_TEXT:
            raise QueryError("search text is limited to %(n)s characters", n=MAX_TEXT)
        for name in (*TERM_FILTERS, *PERSON_FILTERS, *EXTRA_FILTERS):
            if len(getattr(self, name)) > MAX_VALUES:
                raise QueryError("at most %(n)s values per filter", n=MAX_VALUES)
        for value in self.ips:
            networks(value)
        parse_text(self.text)
        if self.start and self.end and self.start > self.end:
            raise QueryError("the period ends before it starts")


def networks(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise QueryError(
            "%(value)s is not an IP address or CIDR range", value=repr(value)
        ) from None
    mapped = getattr(net.network_address, "ipv4_mapped", None)
    if mapped is not None and net.prefixlen >= 96:
        # ::ffff:10.0.0.0/104 is 10.0.0.0/8: OpenSearch refuses the mapped
        # CIDR form as ambiguous, and both stores keep IPv4 as mapped anyway.
        return ipaddress.IPv4Network((mapped, net.prefixlen - 96))
    return net


@dataclass(frozen=True)
class SearchRequest:
    """One page of matches, newest first, chosen by one of three positions.

    * ``cursor``: the ``size`` matches just older than it (``None``: page 1);
    * ``before``: the ``size`` matches just newer than it (Previous when the
      caller came from the end and has no stack of cursors to pop);
    * ``last``: the oldest page, holding ``total % size`` matches (``size``
      when that is 0), so its boundaries are those of paging from page 1.

    A backend answers the last two by reading in the opposite order.
    """

    query: Query
    size: int = 50
    cursor: str | None = None
    before: str | None = None
    last: bool = False
    facets: tuple[str, ...] = tuple(FACETS)
    facet_size: int = 10
    highlight: bool = True
    # The hits need at least these fields (None: all). Fewer bytes for
    # OpenSearch to read, send and for us to parse; a backend may return more.
    fields: tuple[str, ...] | None = None
    # (interval ms, offset ms): also count every match per time bucket and
    # outcome, as ``Store.histogram`` would (the activity chart), in the same
    # round trip where the backend can.
    histogram: tuple[int, int] | None = None

    @property
    def backward(self) -> bool:
        """Whether a backend reads oldest first (``before`` or ``last``)."""
        return self.last or self.before is not None

    def __post_init__(self) -> None:
        if not 1 <= self.size <= MAX_PAGE:
            raise QueryError("page size must be 1..%(n)s", n=MAX_PAGE)
        if sum((self.cursor is not None, self.before is not None, self.last)) > 1:
            raise QueryError("a page is after a cursor, before one or the last, not several")
        unknown = set(self.facets) - set(FACETS)
        if unknown:
            raise QueryError("unknown facet(s): %(names)s", names=", ".join(sorted(unknown)))


@dataclass
class SearchPage:
    """One page of hits, newest first.

    ``hits`` are flat documents (dotted keys). When highlighting, a hit's
    ``_highlight`` holds the comments with matches wrapped in ``<mark>``
    and everything else HTML-escaped, ready to render.
    """

    hits: list[dict]
    total: int
    next_cursor: str | None
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    # The first hit's position when newer matches exist (for ``before``).
    prev_cursor: str | None = None
    # Store.histogram's buckets (histogram.Bucket) when the request asked for them.
    histogram: list[Any] | None = None


T = TypeVar("T")


def backward_page(rows: list[T], total: int, request: SearchRequest) -> tuple[list[T], bool]:
    """Rows a backend read oldest first (``size + 1`` of them at most) → the page, newest first.

    Also returns whether newer matches remain past the page. For ``last``
    the page keeps ``total % size`` rows, so the last page ends where paging
    forward from page 1 would end it.
    """
    keep = (total % request.size or request.size) if request.last else request.size
    return rows[:keep][::-1], len(rows) > keep


def to_ms(ts: datetime) -> int:
    """Epoch milliseconds of ``ts`` (naive means UTC), as both backends sort and filter."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - _EPOCH) // _ONE_MS


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)  # built once: to_ms runs for every event SQLite stores


HIGHLIGHT_PRE = "\x02"
HIGHLIGHT_POST = "\x03"


# Cursors carry a sort timestamp in ms: 1970 to the year 3000.
MAX_CURSOR_MS = 32_503_680_000_000


def encode_cursor(timestamp_ms: int, event_id: str) -> str:
    raw = json.dumps([timestamp_ms, event_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """Sort values from a cursor; anything malformed is a QueryError."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, event_id = json.loads(raw)
        if (
            not isinstance(ts, int)
            or isinstance(ts, bool)
            or not 0 <= ts <= MAX_CURSOR_MS  # a date both stores can compare
            or not isinstance(event_id, str)
            or len(event_id) > 64
        ):
            raise ValueError
        return ts, event_id
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
        raise QueryError("that page link is invalid or expired") from None


# -- full text -----------------------------------------------------------------
#
# The search box speaks a small, safe subset of OpenSearch's
# simple_query_string, parsed here once into a tree that each backend renders
# into its own language (a canonical simple_query_string for OpenSearch, an
# FTS5 MATCH expression for SQLite). Raw user text never reaches either engine.
#
#   several words      all of them (default operator AND); ``+`` is accepted
#   "a phrase"         the words in this order
#   word*              prefix (at least 2 letters; the ``*`` only at the end)
#   a OR b, a | b      either (OR in capitals; a lowercase "or" is a word)
#   -word, -"phrase"   exclusion; a query needs at least one positive term
#   ( ... )            grouping, at most MAX_DEPTH deep
#
# Not supported, on purpose: fuzzy (``~``), slop, NEAR, regex, backslash
# escapes and leading or inner wildcards (slow on large indices and absent
# from FTS5). Those characters are plain text (which both tokenizers drop)
# except ``*``, which is an error anywhere but at the end of a word.
# Each word or phrase is handed to the engine quoted, so each engine splits it
# with the same tokenizer it indexed the comments with. Words are stemmed
# (English and Russian Snowball: "reviewer" finds "Reviewers", "оператора"
# finds "оператор"): by OpenSearch's analyzer, by :mod:`.stems` for SQLite;
# a prefix (``word*``) is matched against the stems as typed.

MAX_CLAUSES = 20
MAX_DEPTH = 6
MIN_PREFIX = 2
# The simple_query_string flags we allow OpenSearch to interpret.
SQS_FLAGS = "AND|OR|NOT|PHRASE|PRECEDENCE|PREFIX|WHITESPACE"

_SPECIAL = '()|"'
_HAS_WORD = re.compile(r"[^\W_]")
_PREFIX_WORD = re.compile(r"^[^\W_]+$")


@dataclass(frozen=True)
class Term:
    """A word or quoted phrase (``raw`` has no double quotes); ``prefix`` for ``word*``."""

    raw: str
    prefix: bool = False
    phrase: bool = False


@dataclass(frozen=True)
class Not:
    node: TextNode


@dataclass(frozen=True)
class And:
    nodes: tuple[TextNode, ...]


@dataclass(frozen=True)
class Or:
    nodes: tuple[TextNode, ...]


TextNode = Term | Not | And | Or


def _lex(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "(":
            tokens.append(("(", ch))
            i += 1
        elif ch == ")":
            tokens.append((")", ch))
            i += 1
        elif ch == "|":
            tokens.append(("|", ch))
            i += 1
        elif ch == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise QueryError('a quoted phrase is not closed: add the closing "')
            tokens.append(("phrase", text[i + 1 : end]))
            i = end + 1
        elif ch == "+":
            tokens.append(("+", ch))
            i += 1
        elif ch == "-":
            tokens.append(("-", ch))
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _SPECIAL:
                j += 1
            word = text[i:j]
            # OR in capitals is the operator, as in web search boxes; "or" is a word.
            tokens.append(("|", word) if word == "OR" else ("word", word))
            i = j
    return tokens


def _term(kind: str, raw: str) -> Term:
    if kind == "phrase":
        if "*" in raw:
            raise QueryError("wildcards (*) do not work inside quotes")
        if not _HAS_WORD.search(raw):
            raise QueryError('"%(raw)s" has no letters or digits to search for', raw=raw)
        return Term(" ".join(raw.split()), phrase=True)
    if raw.startswith("*"):
        raise QueryError("%(raw)s: a word cannot start with a wildcard (*)", raw=repr(raw))
    prefix = raw.endswith("*")
    stem = raw.rstrip("*") if prefix else raw
    if "*" in stem or (prefix and raw.endswith("**")):
        raise QueryError(
            "%(raw)s: the wildcard (*) is only allowed once, at the end of a word", raw=repr(raw)
        )
    if prefix:
        if not _PREFIX_WORD.match(stem):
            raise QueryError(
                "%(raw)s: a prefix search (word*) takes letters and digits only", raw=repr(raw)
            )
        if len(stem) < MIN_PREFIX:
            raise QueryError(
                "%(raw)s: a prefix search needs at least %(n)s letters", raw=repr(raw), n=MIN_PREFIX
            )
    elif not _HAS_WORD.search(stem):
        raise QueryError("%(raw)s has no letters or digits to search for", raw=repr(raw))
    return Term(stem, prefix=prefix)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.terms = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def parse(self) -> TextNode:
        node = self.or_(0)
        if self.peek() is not None:
            raise QueryError("a closing parenthesis has no opening one")
        return node

    def or_(self, depth: int) -> TextNode:
        nodes = [self.and_(depth)]
        while self.peek() == "|":
            self.pos += 1
            nodes.append(self.and_(depth))
        return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))

    def and_(self, depth: int) -> TextNode:
        nodes: list[TextNode] = []
        while self.peek() not in (None, "|", ")"):
            nodes.append(self.unary(depth))
        if not nodes:
            raise QueryError("an operator (| or parenthesis) has nothing on one side")
        if all(isinstance(n, Not) for n in nodes):
            raise QueryError("add a word to search for: a query cannot only exclude (-word)")
        return nodes[0] if len(nodes) == 1 else And(tuple(nodes))

    def unary(self, depth: int) -> TextNode:
        kind = self.peek()
        if kind == "+":
            self.pos += 1
            if self.peek() in (None, "|", ")", "+"):
                raise QueryError("'+' must be followed by a word")
            return self.unary(depth)
        if kind == "-":
            self.pos += 1
            if self.peek() in (None, "|", ")", "+", "-"):
                raise QueryError("'-' must be followed by the word or phrase to exclude")
            return Not(self.primary(depth))
        return self.primary(depth)

    def primary(self, depth: int) -> TextNode:
        kind, value = self.tokens[self.pos]
        self.pos += 1
        if kind == "(":
            if depth + 1 > MAX_DEPTH:
                raise QueryError("parentheses are limited to %(n)s levels", n=MAX_DEPTH)
            node = self.or_(depth + 1)
            if self.peek() != ")":
                raise QueryError("a parenthesis is not closed")
            self.pos += 1
            return node
        if kind in ("word", "phrase"):
            self.terms += 1
            if self.terms > MAX_CLAUSES:
                raise QueryError("the search is limited to %(n)s words and phrases", n=MAX_CLAUSES)
            return _term(kind, value)
        raise QueryError("a closing parenthesis has no opening one")


@lru_cache(maxsize=1024)
def parse_text(text: str) -> TextNode | None:
    """The search box text as a tree; ``None`` when empty; QueryError when malformed."""
    if not text or not text.strip():
        return None
    if len(text) > MAX_TEXT:
        raise QueryError("search text is limited to %(n)s characters", n=MAX_TEXT)
    return _Parser(_lex(text)).parse()


def to_simple_query_string(node: TextNode) -> str:
    """Canonical simple_query_string text: every word quoted, every group parenthesised."""
    if isinstance(node, Term):
        return f"{node.raw}*" if node.prefix else f'"{node.raw}"'
    if isinstance(node, Not):
        return f"-{to_simple_query_string(node.node)}"
    sep = " " if isinstance(node, And) else " | "
    return "(" + sep.join(to_simple_query_string(n) for n in node.nodes) + ")"


def to_fts5(node: TextNode) -> str:
    """A safe FTS5 MATCH expression: quoted strings, ``"stem" *`` prefixes, AND/OR/NOT."""
    if isinstance(node, Term):
        quoted = '"' + node.raw.replace('"', '""') + '"'
        return f"{quoted} *" if node.prefix else quoted
    if isinstance(node, Or):
        return "(" + " OR ".join(to_fts5(n) for n in node.nodes) + ")"
    if isinstance(node, And):
        positives = [to_fts5(n) for n in node.nodes if not isinstance(n, Not)]
        expr = "(" + " AND ".join(positives) + ")"
        for n in node.nodes:
            if isinstance(n, Not):
                expr = f"({expr} NOT {to_fts5(n.node)})"
        return expr
    raise QueryError("an exclusion (-word) needs a word to search for beside it")


# -- names ---------------------------------------------------------------------


def fold(value: str) -> str:
    """Lowercase and strip accents from Latin letters, like the template's normalizer.

    OpenSearch's ``lowercase`` + ``asciifolding`` leave Cyrillic alone (``ё``
    stays ``ё``), so a decomposed character is replaced by its base only when
    that base is ASCII.
    """
    out = []
    for ch in value.lower():
        if ch.isascii():
            out.append(ch)
            continue
        base = unicodedata.normalize("NFKD", ch)
        out.append(base[0] if base and base[0].isascii() and base[0].isalnum() else ch)
    return "".join(out)
