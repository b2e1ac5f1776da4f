"""docs/BENCHMARKS.md shows every benchmark once, with its command, baseline, target and result."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "BENCHMARKS.md"


def _benchmarks() -> set[str]:
    """Every ``python -m bench.NAME`` there is (helpers start with ``_``; report runs them all)."""
    return {
        p.stem
        for p in (REPO / "bench").glob("*.py")
        if not p.stem.startswith("_") and p.stem != "report"
    }


def _current_rows() -> dict[str, list[str]]:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("## Current figures", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and (m := re.search(r"python -m bench\.(\w+)", cells[1])):
            assert m.group(1) not in rows, f"{m.group(1)} has two rows"
            rows[m.group(1)] = cells
    return rows


def test_every_benchmark_has_one_current_row() -> None:
    """A benchmark added to bench/ needs its row; a row needs its benchmark."""
    assert set(_current_rows()) == _benchmarks()


def test_every_row_names_its_baseline_target_and_result() -> None:
    """No cell of a current row is left empty."""
    for name, cells in _current_rows().items():
        assert all(cells), f"{name}: an empty cell in {cells}"
