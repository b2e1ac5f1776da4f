"""The suite keeps its state out of the developer's ~/.useraudit (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

from useraudit.config import home
from useraudit.spool import SpoolWriter
from useraudit.spool_watch import registry_dir


def test_a_spool_opened_by_a_test_registers_in_the_suites_own_home(tmp_path: Path) -> None:
    assert home() != Path.home() / ".useraudit"
    writer = SpoolWriter(tmp_path / "spool", durability="sync")
    try:
        writer.append(b"{}")
    finally:
        writer.close()
    registered = [p.read_text() for p in registry_dir().glob("*.json")]
    assert any(str((tmp_path / "spool").resolve()) in text for text in registered)
    assert registry_dir().is_relative_to(home())
