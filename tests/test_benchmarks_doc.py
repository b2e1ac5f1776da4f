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


def _current_rows() -> list[tuple[str, list[str]]]:
    """(benchmark, cells) of each row; a benchmark measuring several things has a row each."""
    text = DOC.read_text(encoding="utf-8")
    table = text.split("## Current figures", 1)[1].split("\n## ", 1)[0]
    rows: list[tuple[str, list[str]]] = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and (m := re.search(r"python -m bench\.(\w+)", cells[1])):
            rows.append((m.group(1), cells))
    return rows


def test_every_benchmark_has_a_current_row() -> None:
    """A benchmark added to bench/ needs its row; a row needs its benchmark."""
    assert {name for name, _cells in _current_rows()} == _benchmarks()


def test_every_row_names_its_baseline_target_and_result() -> None:
    """No cell of a current row is left empty."""
    for name, cells in _current_rows():
        assert all(cells), f"{name}: an empty cell in {cells}"
