"""The project's own linters pass on the whole repository, so CI (`make test`) keeps it so.

The same three checks as ``make lint``, each with the venv's own tool on the
repository root; a failure shows the tool's findings.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)


def _report(done: subprocess.CompletedProcess[str]) -> str:
    command = " ".join(map(str, done.args))
    return f"`{command}` exited {done.returncode}:\n{done.stdout}{done.stderr}"


def test_ruff_check_finds_nothing() -> None:
    """`ruff check .` reports no finding under the rules selected in pyproject.toml."""
    done = _run([str(BIN / "ruff"), "check", "--no-cache", "."])
    assert done.returncode == 0, _report(done)


def test_ruff_format_would_change_nothing() -> None:
    """`ruff format --check .` finds every file already formatted."""
    done = _run([str(BIN / "ruff"), "format", "--check", "--no-cache", "."])
    assert done.returncode == 0, _report(done)


def test_mypy_finds_no_type_error(tmp_path: Path) -> None:
    """mypy finds no error in the useraudit package, top-level folders included (symlinks)."""
    done = _run([str(BIN / "mypy"), "--cache-dir", str(tmp_path / "cache"), "-p", "useraudit"])
    assert done.returncode == 0, _report(done)
