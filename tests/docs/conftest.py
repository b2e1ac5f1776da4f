"""Counts of doc blocks run and not runnable here, printed at the end of the run."""

from __future__ import annotations

from typing import Any

# page -> (blocks run, [(where, reason)] not runnable here), filled by test_doc_blocks.
REPORT: dict[str, tuple[int, list[tuple[str, str]]]] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT:
        return
    ran = sum(n for n, _ in REPORT.values())
    skipped = [s for _, s in REPORT.values() for s in s]
    terminalreporter.section("doc blocks")
    terminalreporter.write_line(
        f"{ran} block(s) run, {len(skipped)} marked not-runnable-here, in {len(REPORT)} page(s)"
    )
    for where, reason in skipped:
        terminalreporter.write_line(f"  not run: {where}: {reason}")
