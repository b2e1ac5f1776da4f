"""The OpenSearch store: time-based indices behind a read alias, written idempotently.

* :mod:`.store`: :class:`OpenSearchStore`, URLs, writes, retention;
* :mod:`.queries`: a Query or SearchRequest as an OpenSearch request body;
* :mod:`.reads`: searches, counts and exports sent and read back;
* :mod:`.errors`: OpenSearch's failures as store errors;
* :mod:`.template`: the events index template the store installs.
"""

from __future__ import annotations

from .store import OpenSearchStore

__all__ = ["OpenSearchStore"]
