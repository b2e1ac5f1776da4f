"""The search words marked in a page's comments, as OpenSearch's highlighter does.

``events_fts`` holds stems (:mod:`.stems`), so FTS5's ``highlight()`` would
see stems, not the words as written: the page's comments are marked word by
word in Python with the same keys the index and the search use.
"""

from __future__ import annotations

import html
import sqlite3

from ..query import HIGHLIGHT_POST, HIGHLIGHT_PRE, Query, parse_text
from .stems import mark


def highlight(con: sqlite3.Connection, query: Query, rows: list, hits: list[dict]) -> None:
    """Set ``_highlight`` on each hit with comments: escaped HTML, search words in ``<mark>``."""
    node = parse_text(query.text)
    marked: dict[int, str] = {}
    with_text = [
        (r[0], h["audit.comments"])
        for r, h in zip(rows, hits, strict=True)
        if h.get("audit.comments")
    ]
    if node is not None and with_text:
        marked.update((rid, mark(text, node)) for rid, text in with_text)
    for row, hit in zip(rows, hits, strict=True):
        comments = hit.get("audit.comments")
        if comments:
            text = marked.get(row[0]) or comments
            hit["_highlight"] = (
                html.escape(text, quote=True)
                .replace(HIGHLIGHT_PRE, "<mark>")
                .replace(HIGHLIGHT_POST, "</mark>")
            )
