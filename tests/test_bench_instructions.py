"""bench.instructions: counts that repeat and see the middleware; a clear stop without valgrind."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import instructions


def test_without_valgrind_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="apt-get install valgrind"):
        instructions.main(["-n", "10"])


def test_counts_repeat_and_see_what_a_quiet_request_adds(tmp_path: Path) -> None:
    """Two bare servers count the same to within a fraction of what useraudit's quiet path adds.

    Under gunicorn a quiet request adds some 2 % to the bare hello world's
    instructions (docs/BENCHMARKS.md); two bare runs differ by far less.
    """
    targets = instructions.targets("gunicorn", floor=False)
    bare = instructions.measure("gunicorn", targets["bare"], 150, 30, tmp_path / "bare")
    again = instructions.measure("gunicorn", targets["bare"], 150, 30, tmp_path / "again")
    quiet = instructions.measure("gunicorn", targets["quiet"], 150, 30, tmp_path / "quiet")
    assert bare["instructions"] > 10_000
    assert abs(again["instructions"] / bare["instructions"] - 1) < 0.004
    assert quiet["instructions"] / bare["instructions"] - 1 > 0.008
    # Cache misses weigh in: more cycles than instructions, as steady as them.
    assert bare["cycles"] > bare["instructions"]
    assert abs(again["cycles"] / bare["cycles"] - 1) < 0.004
    assert quiet["cycles"] / bare["cycles"] - 1 > 0.008


def test_estimated_cycles_weigh_each_access_by_the_cache_that_served_it() -> None:
    counts = {"Ir": 100, "Dr": 50, "Dw": 20, "I1mr": 5, "D1mr": 4, "D1mw": 1}
    # 170 accesses, 10 first-level misses, 2 of them missed the last level too.
    counts |= {"ILmr": 1, "DLmr": 1, "DLmw": 0}
    assert instructions.estimated_cycles(counts) == 160 * 1 + 8 * 5 + 2 * 35
    counts |= {"ILmr": 0, "DLmr": 0}
    assert instructions.estimated_cycles(counts) == 160 * 1 + 10 * 5
