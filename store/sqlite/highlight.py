"""The search words marked in a page's comments, as OpenSearch's highlighter does.

The page's comments go through FTS5 again in a scratch table of the
connection's own (same tokenizer): evaluating the search on ``events_fts``
row by row seeks through the whole index's lists each time (docs/sqlite.md).
"""

from __future__ import annotations

import html
import sqlite3

from ..query import HIGHLIGHT_POST, HIGHLIGHT_PRE, Query, parse_text, to_fts5
from .layout import TOKENIZE

# Each connection's own scratch table (temp), created when it opens.
HIGHLIGHT_DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.highlights USING fts5(audit_comments, {TOKENIZE})"
)


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
        con.execute("DELETE FROM temp.highlights")
        con.executemany(
            "INSERT INTO temp.highlights(rowid, audit_comments) VALUES (?, ?)", with_text
        )
        marked.update(
            con.execute(
                "SELECT rowid, highlight(highlights, 0, ?, ?) FROM temp.highlights "
                "WHERE highlights MATCH ?",
                [HIGHLIGHT_PRE, HIGHLIGHT_POST, to_fts5(node)],
            )
        )
    for row, hit in zip(rows, hits, strict=True):
        comments = hit.get("audit.comments")
        if comments:
            text = marked.get(row[0]) or comments
            hit["_highlight"] = (
                html.escape(text, quote=True)
                .replace(HIGHLIGHT_PRE, "<mark>")
                .replace(HIGHLIGHT_POST, "</mark>")
            )
