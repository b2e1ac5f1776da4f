"""An empty, installed store of either backend, for suites that run on both."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def fresh_store(kind: str, opensearch_url: str, folder: Path, prefix: str) -> Iterator[Any]:
    """``kind`` "opensearch" (the real node, a unique index prefix) or "sqlite" (a file
    in ``folder``); installed, and removed again afterwards."""
    if kind == "opensearch":
        from useraudit.store.opensearch import OpenSearchStore

        store: Any = OpenSearchStore(opensearch_url, prefix=f"{prefix}-{uuid.uuid4().hex[:8]}")
    else:
        from useraudit.store.sqlite import SQLiteStore

        store = SQLiteStore(f"sqlite:///{folder / 'audit.db'}")
    store.install()
    try:
        yield store
    finally:
        if kind == "opensearch":
            store.uninstall()
        store.close()
