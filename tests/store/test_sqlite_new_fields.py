"""A field added to the schema gets its SQLite column on open, with no file-version bump.

Features add fields to ``useraudit/schema.py`` independently; each new
field's column is added to existing files (nullable) when they are opened,
so no two features need the same next file version.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from useraudit.store.sqlite import FILE_VERSION, SQLiteStore

from .conftest import DATASET


def _columns(path: Path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {row[1] for row in con.execute("PRAGMA table_info(events)")}
    finally:
        con.close()


def test_a_file_without_a_fields_column_gets_it_on_open(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """A file made before a field existed (its column dropped here) gains the column on open."""
    path = tmp_path / "a.db"
    store = SQLiteStore(f"sqlite:///{path}")
    old = enricher(DATASET[0])
    store.write([old])
    store.close()
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE events DROP COLUMN audit_params")
    con.commit()
    con.close()
    assert "audit_params" not in _columns(path)

    store = SQLiteStore(f"sqlite:///{path}")
    new = {**enricher(DATASET[1]), "audit.params": {"plan": "pro"}}
    assert [r.status for r in store.write([new])] == ["created"]
    got = store.get([old["event.id"], new["event.id"]])
    assert got[new["event.id"]]["audit.params"] == {"plan": "pro"}
    assert "audit.params" not in got[old["event.id"]]  # NULL: as if the event had none
    store.close()
    assert "audit_params" in _columns(path)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == FILE_VERSION
    con.close()


NEW_FIELD_SCRIPT = textwrap.dedent(
    """
    import sys
    from useraudit import schema

    # What a feature branch does: one more field in FIELDS.
    extra = schema.Field("audit.risk.level", schema.Kind.KEYWORD, "A new field.")
    schema.FIELDS = (*schema.FIELDS, extra)
    schema.FIELD_BY_NAME[extra.name] = extra

    from useraudit.store.sqlite import SQLiteStore

    store = SQLiteStore("sqlite:///" + sys.argv[1])
    doc = {"event.id": "new-1", "@timestamp": "2026-01-02T00:00:00Z",
           "organization.id": "acme", "audit.risk.level": "high"}
    print([r.status for r in store.write([doc])])
    print(store.get(["new-1"])["new-1"]["audit.risk.level"])
    store.close()
    """
)


def test_a_new_schema_field_is_stored_in_a_file_made_without_it(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """A file written by this schema opens under a schema with one more field, which is stored."""
    path = tmp_path / "a.db"
    store = SQLiteStore(f"sqlite:///{path}")
    store.write([enricher(DATASET[0])])
    store.close()
    assert "audit_risk_level" not in _columns(path)

    done = subprocess.run(
        [sys.executable, "-c", NEW_FIELD_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["['created']", "high"]
    assert "audit_risk_level" in _columns(path)

    # And the file still opens, reads and writes under the schema without the field.
    store = SQLiteStore(f"sqlite:///{path}")
    assert store.count_all() == 2
    assert [r.status for r in store.write([enricher(DATASET[2])])] == ["created"]
    store.close()
