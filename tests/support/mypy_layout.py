"""The installed package layout, as symlinks, so mypy checks what gets installed.

pyproject's ``package-dir`` installs the top-level folders ``middleware/``,
``indexer/``, ``webapp/`` and ``index_templates/`` as ``useraudit.middleware``
and so on. mypy has no such mapping (python/mypy#10564): given the folders,
it checks them as unrelated top-level packages, cannot resolve
``from useraudit import index_templates``, and leaves every import of
``useraudit.middleware...`` untyped. This builds a ``useraudit/`` folder of
symlinks, one per entry of ``useraudit/`` and one per mapped folder under its
installed name, to put on MYPYPATH::

    MYPYPATH=$(python tests/support/mypy_layout.py) mypy -p useraudit

(``make lint`` does that; tests/test_lint.py too, in a temporary folder).
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = REPO / ".useraudit" / "mypy-layout"


def build(root: Path = DEFAULT_ROOT, repo: Path = REPO) -> Path:
    """(Re)build the layout under ``root``; returns ``root`` for MYPYPATH."""
    setuptools = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dir: dict[str, str] = setuptools["package-dir"]
    shutil.rmtree(root, ignore_errors=True)  # removes the links, never what they point to
    for name, folder in sorted(package_dir.items(), key=lambda item: item[0].count(".")):
        target = root.joinpath(*name.split("."))
        if "." not in name:
            # A top-level package: a real folder whose entries are links, so
            # the mapped subpackages can be linked in beside them.
            target.mkdir(parents=True)
            for entry in (repo / folder).iterdir():
                if entry.name != "__pycache__":
                    (target / entry.name).symlink_to(entry)
        else:
            # Only beside links, never inside a linked (real) folder.
            if not target.parent.resolve().is_relative_to(root.resolve()):
                raise RuntimeError(f"cannot link {name}: its parent is not a layout folder")
            if target.exists() or target.is_symlink():
                raise RuntimeError(f"{name} is both mapped to {folder}/ and found in its parent")
            target.symlink_to(repo / folder, target_is_directory=True)
    return root


if __name__ == "__main__":
    print(build(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else DEFAULT_ROOT))
