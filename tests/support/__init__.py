"""Test helpers shared across suites (importable as ``support``)."""

from pathlib import Path

# The product page the catalog and the table's columns come from; CI checks
# the repository out with ../shared beside it, so a missing file is an error.
SEED_PAGE = Path(__file__).resolve().parents[3] / "shared" / "seed" / "user-actions-audit.txt"
