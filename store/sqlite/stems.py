"""Word stems for the embedded store's full text: English and Russian Snowball.

OpenSearch stems the comments with its analyzer (``useraudit_text`` in
the index template: standard tokenizer, lowercase, Snowball English, then
Snowball Russian). SQLite's FTS5 has no stemming tokenizer that Python
can plug in, so the SQLite store indexes *stems* instead of words: each
comment is split into words, each word folded (:func:`~.query.fold`) and
stemmed, and FTS5 indexes those stems. Search words go through the same
:func:`word_key`, so "reviewer" finds "Reviewers" on both stores.

Each word is stemmed by the stemmer of its script: Snowball English for
Latin letters, Snowball Russian for Cyrillic (each leaves the other
script's words unchanged anyway, which is why OpenSearch can chain them).
PyStemmer is the C implementation of the Snowball algorithms; the same
algorithms Lucene ships.

The stored text stays as written; highlights are computed here from the
same keys (:func:`mark`), since FTS5's ``highlight()`` would only see stems.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import Stemmer

from ..query import HIGHLIGHT_POST, HIGHLIGHT_PRE, And, Not, Or, Term, TextNode, fold

# FTS5's unicode61 splits on everything but letters and digits; so do we.
WORD = re.compile(r"[^\W_]+")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_ENGLISH = Stemmer.Stemmer("english")
_RUSSIAN = Stemmer.Stemmer("russian")


@lru_cache(maxsize=65536)
def word_key(word: str) -> str:
    """One word as both stores compare it: folded, then stemmed for its script."""
    folded = fold(word)
    if _CYRILLIC.search(folded):
        return _RUSSIAN.stemWord(folded)
    return _ENGLISH.stemWord(folded)


_KEYS: dict[str, str] = {}
_KEYS_MAX = 200_000


def stem_text(text: str) -> str:
    """What FTS5 indexes for ``text``: its words' keys, in order, space-separated.

    Runs for every event a SQLite store writes: a plain dict remembers the
    keys of words seen (audit comments repeat a small vocabulary).
    """
    keys = _KEYS
    out = []
    for word in WORD.findall(text):
        key = keys.get(word)
        if key is None:
            if len(keys) >= _KEYS_MAX:
                keys.clear()
            key = keys[word] = word_key(word)
        out.append(key)
    return " ".join(out)


def stems_or_none(value: Any) -> str | None:
    """:func:`stem_text` as an SQL function: NULL stays NULL."""
    return None if value is None else stem_text(str(value))


def stem_node(node: TextNode) -> TextNode:
    """The search tree with words and phrases as keys; prefixes folded, not stemmed
    (as OpenSearch matches a prefix against the stemmed terms)."""
    if isinstance(node, Term):
        if node.prefix:
            return Term(fold(node.raw), prefix=True)
        keys = stem_text(node.raw)
        return Term(keys or node.raw, phrase=node.phrase or " " in keys)
    if isinstance(node, Not):
        return Not(stem_node(node.node))
    if isinstance(node, And):
        return And(tuple(stem_node(n) for n in node.nodes))
    if isinstance(node, Or):
        return Or(tuple(stem_node(n) for n in node.nodes))
    raise TypeError(node)


def _positive_terms(node: TextNode, out: list[Term]) -> list[Term]:
    if isinstance(node, Term):
        out.append(node)
    elif isinstance(node, And | Or):
        for n in node.nodes:
            _positive_terms(n, out)
    return out  # words under Not are never marked


def mark(text: str, node: TextNode) -> str:
    """``text`` with the words that match ``node`` wrapped in the highlight tags.

    A word is marked when its key is that of a search word, or starts with a
    search prefix; a phrase marks its words only where they stand in order.
    Excluded words (``-word``) are not marked.
    """
    words: set[str] = set()
    phrases: list[list[str]] = []
    prefixes: list[str] = []
    for term in _positive_terms(stem_node(node), []):
        if term.prefix:
            prefixes.append(term.raw)
        elif " " in term.raw:
            phrases.append(term.raw.split())
        else:
            words.add(term.raw)
    found = list(WORD.finditer(text))
    keys = [word_key(m.group()) for m in found]
    marked = [k in words or any(k.startswith(p) for p in prefixes) for k in keys]
    for phrase in phrases:
        n = len(phrase)
        for i in range(len(keys) - n + 1):
            if keys[i : i + n] == phrase:
                marked[i : i + n] = [True] * n
    pieces: list[str] = []
    last = 0
    for match, on in zip(found, marked, strict=True):
        if on:
            pieces += [text[last : match.start()], HIGHLIGHT_PRE, match.group(), HIGHLIGHT_POST]
            last = match.end()
    pieces.append(text[last:])
    return "".join(pieces)
