"""bench.instructions: counts that repeat and see the middleware; a clear stop without valgrind."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import instructions
from bench import middleware as bench_mw


def test_without_valgrind_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="apt-get install valgrind"):
        instructions.main(["-n", "10"])


def test_counts_repeat_and_see_what_a_quiet_request_adds(tmp_path: Path) -> None:
    """Two bare servers count the same to within a fraction of what useraudit's quiet path adds.

    Under gunicorn a quiet request adds some 2 % to the bare hello world's
    instructions (docs/BENCHMARKS.md); two bare runs differ by far less.
    """
    targets = bench_mw.targets("gunicorn", floor=False)
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


def test_the_quickstart_app_is_measured_against_the_same_app_bare() -> None:
    counts = {"instructions": 0.0, "i1_misses": 0.0, "d1_misses": 0.0}
    figures = {
        "bare": {**counts, "instructions": 100_000.0, "cycles": 200_000.0},
        "quiet": {**counts, "instructions": 110_000.0, "cycles": 220_000.0},
        "app_bare": {**counts, "instructions": 600_000.0, "cycles": 1_000_000.0},
        "app_quiet": {**counts, "instructions": 612_000.0, "cycles": 1_025_000.0},
    }
    instructions.relate(figures)
    assert figures["quiet"]["ratio"] == round(100 / 110, 4)
    assert figures["app_bare"]["baseline"] == "bare" and figures["app_bare"]["ratio"] == 0.1667
    assert figures["app_quiet"]["baseline"] == "app_bare"
    assert figures["app_quiet"]["ratio"] == round(600 / 612, 4)
    assert figures["app_quiet"]["overhead"] == 0.02
    assert figures["app_quiet"]["cycle_ratio"] == round(1000 / 1025, 4)
