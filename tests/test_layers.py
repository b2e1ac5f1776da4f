"""The import contracts: layers depend one way, capture and the indexer stay apart, no cycles.

The contracts are in pyproject.toml (``[tool.importlinter]``) and explained
in docs/development.md; ``lint-imports`` (import-linter) checks them. The
planted-import tests copy the source into a temporary folder, add one
forbidden import there and show the same check then fails, naming it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
# Everything useraudit/ links to, and the links themselves.
SOURCES = ("useraudit", "middleware", "indexer", "store", "webapp", "index_templates")
SOURCES += ("devnode", "demo", "detect", "integrity")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first, so grimp reads the copy's `useraudit`, not the installed one.
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_contracts_hold() -> None:
    """`lint-imports` keeps every contract on the repository as it is."""
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The package sources and pyproject.toml, copied with their symlinks."""
    for name in SOURCES:
        shutil.copytree(
            REPO / name,
            tmp_path / name,
            symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__", "static", "templates"),
        )
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _plant(path: Path, line: str) -> None:
    text = path.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    assert sep, f"{path} has no `from __future__` line to plant after"
    path.write_text(f"{head}{sep}\n{line}\n{rest}")


@pytest.mark.parametrize(
    ("module", "line", "named"),
    [
        pytest.param(
            "store/base.py",
            "import useraudit.webapp.app  # noqa",
            "useraudit.store is not allowed to import useraudit.webapp",
            id="store-imports-the-ui",
        ),
        pytest.param(
            "useraudit/spool.py",
            "import useraudit.middleware.recorder  # noqa",
            "useraudit.spool is not allowed to import useraudit.middleware",
            id="spool-imports-capture",
        ),
        pytest.param(
            "useraudit/schema.py",
            "import useraudit.config  # noqa",
            None,
            id="downward-import-is-fine",
        ),
        pytest.param(
            "middleware/recorder.py",
            "import useraudit.indexer.shipper  # noqa",
            "useraudit.middleware is not allowed to import useraudit.indexer",
            id="capture-imports-the-indexer",
        ),
        pytest.param(
            "store/query.py",
            "import useraudit.store.sqlite  # noqa",
            "No cycles are allowed in useraudit.store",
            id="cycle-inside-the-store",
        ),
    ],
)
def test_a_planted_import_is_caught(copy: Path, module: str, line: str, named: str | None) -> None:
    """One import added where the layers forbid it breaks the contracts and is named."""
    before = _lint_imports(copy)
    assert before.returncode == 0, before.stdout + before.stderr
    _plant(copy / module, line)
    after = _lint_imports(copy)
    if named is None:
        assert after.returncode == 0, after.stdout + after.stderr
    else:
        assert after.returncode != 0, f"{line} in {module} was not caught:\n{after.stdout}"
        assert named in " ".join(after.stdout.split()), after.stdout


def test_a_checkout_imports_without_installing() -> None:
    """In the repository root, `import useraudit.middleware` & co. find the top-level folders
    through useraudit/'s links, with no site-packages at all (python -S: no editable install)."""
    code = (
        "import useraudit.middleware.context, useraudit.indexer, useraudit.store.query, "
        "useraudit.spool, useraudit.config; print(useraudit.store.query.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == REPO / "useraudit" / "store" / "query.py"
