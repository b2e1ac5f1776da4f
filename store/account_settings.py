"""Per-account settings kept in the store: retention days and legal holds.

One small JSON object per account (``"*"`` holds the defaults), read by
every process that prunes, so a legal hold placed from one host stops a
prune started on another. SQLite: table ``account_settings``; OpenSearch:
index ``<prefix>-settings`` (outside the events pattern), read by id in
real time.
"""

from __future__ import annotations

from typing import Any

import orjson

from .base import Store, StoreError

DEFAULTS = "*"


class AccountSettings:
    """``get``/``put``/``all`` over one store's settings."""

    def __init__(self, store: Store) -> None:
        from .opensearch import OpenSearchStore
        from .sqlite import SQLiteStore

        self.store = store
        if isinstance(store, SQLiteStore):
            self._sqlite: SQLiteStore | None = store
            with store._errors("set up the account settings of"):
                store._con.execute(
                    "CREATE TABLE IF NOT EXISTS account_settings "
                    "(account TEXT PRIMARY KEY, body BLOB NOT NULL)"
                )
        elif isinstance(store, OpenSearchStore):
            self._sqlite = None
            self._index = f"{store.prefix}-settings"
        else:
            raise StoreError(f"{type(store).__name__} keeps no account settings")

    def get(self, account: str) -> dict[str, Any]:
        if self._sqlite is not None:
            with self._sqlite._errors("read"):
                row = self._sqlite._con.execute(
                    "SELECT body FROM account_settings WHERE account = ?", (account,)
                ).fetchone()
            return {} if row is None else orjson.loads(row[0])
        from opensearchpy import exceptions as os_exc

        from .opensearch.errors import store_error

        client = self.store.client  # type: ignore[attr-defined]
        try:
            return dict(client.get(index=self._index, id=account)["_source"])
        except os_exc.NotFoundError:
            return {}
        except os_exc.TransportError as exc:
            raise store_error(self.store.url, exc, "reading account settings") from exc

    def put(self, account: str, settings: dict[str, Any]) -> None:
        body = {**settings, "account": account}
        if self._sqlite is not None:
            with self._sqlite._write() as con:
                con.execute(
                    "INSERT INTO account_settings (account, body) VALUES (?, ?) "
                    "ON CONFLICT (account) DO UPDATE SET body = excluded.body",
                    (account, orjson.dumps(body)),
                )
            return
        from opensearchpy import exceptions as os_exc

        from .opensearch.errors import store_error

        client = self.store.client  # type: ignore[attr-defined]
        try:
            client.index(index=self._index, id=account, body=body, refresh="true")
        except os_exc.TransportError as exc:
            raise store_error(self.store.url, exc, "writing account settings") from exc

    def all(self) -> dict[str, dict[str, Any]]:
        if self._sqlite is not None:
            with self._sqlite._errors("read"):
                rows = self._sqlite._con.execute(
                    "SELECT account, body FROM account_settings"
                ).fetchall()
            return {account: orjson.loads(body) for account, body in rows}
        from opensearchpy import exceptions as os_exc

        from .opensearch.errors import store_error

        client = self.store.client  # type: ignore[attr-defined]
        try:
            hits = client.search(
                index=self._index, body={"size": 10_000, "query": {"match_all": {}}}
            )["hits"]["hits"]
        except os_exc.NotFoundError:
            return {}
        except os_exc.TransportError as exc:
            raise store_error(self.store.url, exc, "reading account settings") from exc
        return {hit["_id"]: hit["_source"] for hit in hits}

    def drop(self) -> None:
        """Forget every setting (tests)."""
        if self._sqlite is not None:
            with self._sqlite._write() as con:
                con.execute("DELETE FROM account_settings")
        else:
            self.store.client.indices.delete(  # type: ignore[attr-defined]
                index=self._index, ignore_unavailable=True
            )
