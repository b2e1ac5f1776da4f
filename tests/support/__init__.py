"""Test helpers shared across suites (importable as ``support``)."""

import re
import socket
from pathlib import Path

# The product page the catalog and the table's columns come from; CI checks
# the repository out with ../shared beside it, so a missing file is an error.
SEED_PAGE = Path(__file__).resolve().parents[3] / "shared" / "seed" / "user-actions-audit.txt"

# The sign-in form's CSRF token, as the admin UI renders it.
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
