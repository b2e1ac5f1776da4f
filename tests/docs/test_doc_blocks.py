"""Every block of README.md and docs/*.md that a reader is told to run is run (see
tests/docs/runner.py for the marking convention); quickstarts run in tests/e2e."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import REPORT
from .runner import ROOT, blocks, pages, start_page

KNOWN_MARKS = {"", "not-runnable-here", "file", "background"}
# Run end to end, with traffic and the UI checked, by tests/e2e/test_quickstarts.py.
QUICKSTARTS = ("quickstart-",)


def _id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", pages(), ids=_id)
def test_marks_follow_the_convention(page: Path) -> None:
    """Every doc-test mark is one of the known ones, with what it needs."""
    for block in blocks(page):
        assert block.mark in KNOWN_MARKS, f"{block.where}: unknown mark {block.mark!r}"
        if block.mark == "file":
            assert block.arg, f"{block.where}: `doc-test: file` needs a file name"
        if block.mark == "not-runnable-here":
            assert block.arg, f"{block.where}: say why the block cannot run here"


@pytest.mark.parametrize(
    "page", [p for p in pages() if not p.name.startswith(QUICKSTARTS)], ids=_id
)
def test_page_blocks_run(page: Path, tmp_path: Path) -> None:
    """The page's runnable blocks all succeed, in order, in a fresh directory."""
    with start_page(page, tmp_path / "page") as run:
        run.run_all()
    REPORT[_id(page)] = (
        len(run.ran),
        [(b.where, b.arg) for b in run.skipped],
    )
    print(f"{_id(page)}: {len(run.ran)} run, {len(run.skipped)} not runnable here")
    for block in run.skipped:
        print(f"  not run: {block.where}: {block.arg}")
