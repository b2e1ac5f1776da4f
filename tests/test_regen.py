"""Files derived from the schema and the catalog are current (`make regen` rewrites them)."""

from __future__ import annotations

import pytest
from support import regen


@pytest.mark.parametrize("path", list(regen.GENERATED), ids=lambda p: p.name)
def test_generated_file_is_current(path) -> None:
    """The committed file equals what `make regen` would write now."""
    fresh = regen.GENERATED[path]()
    assert path.read_text(encoding="utf-8") == fresh, f"{path} is stale: run `make regen`"


def test_a_stale_file_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A schema change that was not regenerated shows up in stale()."""
    from useraudit import schema

    table = schema.fields_markdown()
    monkeypatch.setattr(
        schema, "fields_markdown", lambda: table + "| `new.field` | keyword |  | |\n"
    )
    assert regen.stale() == [regen.FIELDS_DOC]
