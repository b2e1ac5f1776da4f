"""The files derived from the schema and the catalog, rendered afresh: ``make regen``.

Each entry maps a committed file to the text it should hold; ``main()``
rewrites those that differ, and ``tests/test_regen.py`` fails on any that
is out of date. A developer tool: not part of the installed package.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIELDS_DOC = REPO / "docs" / "fields.md"
# The field table follows this marker, up to the first blank line.
FIELDS_MARKER = "<!-- generated: make regen -->\n"


def _events_template() -> str:
    from useraudit.store.opensearch.template import render

    return json.dumps(render(), indent=2, sort_keys=True) + "\n"


def _dashboards() -> str:
    from useraudit.index_templates.saved_objects import render_ndjson

    return render_ndjson()


def _fields_doc() -> str:
    from useraudit.schema import fields_markdown

    text = FIELDS_DOC.read_text(encoding="utf-8")
    start = text.index(FIELDS_MARKER) + len(FIELDS_MARKER)
    end = re.compile(r"\n\n|\n?\Z").search(text, start)
    assert end is not None
    return text[:start] + fields_markdown().rstrip("\n") + text[end.start() :]


GENERATED: dict[Path, Callable[[], str]] = {
    REPO / "index_templates" / "events.json": _events_template,
    REPO / "index_templates" / "dashboards" / "useraudit.ndjson": _dashboards,
    FIELDS_DOC: _fields_doc,
}


def stale() -> list[Path]:
    """The generated files whose committed text differs from a fresh rendering."""
    return [p for p, render in GENERATED.items() if p.read_text(encoding="utf-8") != render()]


def main() -> int:
    for path, render in GENERATED.items():
        text = render()
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"rewrote {path.relative_to(REPO)}")
        else:
            print(f"current {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
