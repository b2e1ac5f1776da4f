"""Storage behind one interface: OpenSearch for scale, SQLite embedded.

``open_store(url)`` picks the backend from a URL:

* ``sqlite:///var/lib/useraudit/audit.db`` (the default, ``$USERAUDIT_HOME/audit.db``)
* ``http://127.0.0.1:9200`` or ``https://user:pass@host:9200`` (OpenSearch),
  with ``?ca_certs=/path/ca.pem``, ``?verify_certs=false`` and
  ``?prefix=useraudit`` (index name prefix) as query parameters.

``USERAUDIT_STORE`` sets the URL for every command.
"""

from __future__ import annotations

from useraudit import config

from .base import Store, StoreError, StoreRefused, StoreUnavailable, WriteResult
from .query import Query, QueryError, SearchPage, SearchRequest

__all__ = [
    "Query",
    "QueryError",
    "SearchPage",
    "SearchRequest",
    "Store",
    "StoreError",
    "StoreRefused",
    "StoreUnavailable",
    "WriteResult",
    "default_url",
    "open_store",
]


def default_url() -> str:
    return config.default_store_url()


def open_store(url: str | None = None) -> Store:
    url = url or default_url()
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore(url)
    if scheme in ("http", "https", "opensearch"):
        from .opensearch import OpenSearchStore

        return OpenSearchStore(url)
    raise StoreError(f"unsupported store URL {url!r}: use sqlite:///path or http(s)://host:9200")
