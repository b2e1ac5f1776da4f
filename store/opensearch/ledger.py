"""The integrity ledger on OpenSearch: index ``<prefix>-ledger`` (see :mod:`.ledger`).

Outside the ``<prefix>-events-*`` pattern and the read alias, so searches,
exports and Dashboards never see checkpoints as events. Documents are
created by id ``account/seq`` (``op_type=create``); reads by id are
real-time, searches refresh the index first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from opensearchpy import exceptions as os_exc

from useraudit._json import dumps

from ..base import StoreUnavailable
from ..ledger import Ledger
from .errors import store_error
from .store import OpenSearchStore

_MAPPING = {
    "dynamic": False,
    "properties": {
        "account": {"type": "keyword"},
        "seq": {"type": "long"},
        "kind": {"type": "keyword"},
        "time": {"type": "date"},
        # Kept in _source only: never parsed field by field (most of a checkpoint's bytes).
        "leaves": {"type": "object", "enabled": False},
    },
}


class OpenSearchLedger(Ledger):
    def __init__(self, store: OpenSearchStore) -> None:
        self.store = store
        self.client = store.client
        self.index = f"{store.prefix}-ledger"
        # Created on the first checkpoint written: reading a store that never
        # sealed anything (prune, verify) must not leave an empty index behind.
        self._ready = False

    def _ensure(self) -> None:
        if self._ready:
            return
        try:
            if not self.client.indices.exists(index=self.index):
                self.client.indices.create(
                    index=self.index,
                    body={
                        "settings": {"index": {"auto_expand_replicas": "0-1"}},
                        "mappings": _MAPPING,
                    },
                )
        except os_exc.RequestError as exc:
            if "resource_already_exists" not in str(exc):
                raise store_error(self.store.url, exc, "creating the ledger index") from exc
        except os_exc.TransportError as exc:
            raise store_error(self.store.url, exc, "creating the ledger index") from exc
        self._ready = True

    def create(self, doc: dict[str, Any]) -> bool:
        self._ensure()
        try:
            self.client.index(
                index=self.index,
                id=f"{doc['account']}/{int(doc['seq'])}",
                body=doc,
                op_type="create",
            )
        except os_exc.ConflictError:
            return False
        except os_exc.TransportError as exc:
            raise store_error(self.store.url, exc, "writing a checkpoint") from exc
        return True

    def create_many(self, docs: Sequence[dict[str, Any]]) -> list[bool]:
        # One bulk request for every account of a flush, instead of one round trip each.
        if not docs:
            return []
        self._ensure()
        lines: list[bytes] = []
        for doc in docs:
            checkpoint_id = f"{doc['account']}/{int(doc['seq'])}"
            lines += [dumps({"create": {"_index": self.index, "_id": checkpoint_id}}), dumps(doc)]
        lines.append(b"")
        try:
            items = self.client.bulk(body=b"\n".join(lines))["items"]
        except os_exc.TransportError as exc:
            raise store_error(self.store.url, exc, "writing checkpoints") from exc
        if len(items) != len(docs):
            raise StoreUnavailable(f"bulk answered {len(items)} items for {len(docs)} checkpoints")
        created: list[bool] = []
        for item in items:
            status = int(item["create"].get("status", 0))
            if status == 409:
                created.append(False)
            elif 200 <= status < 300:
                created.append(True)
            else:
                # Those before it may be written: the sealer reads them back as theirs.
                error = item["create"].get("error") or {}
                raise StoreUnavailable(
                    f"writing checkpoint {item['create'].get('_id')}: {status} "
                    f"{error.get('type', '')}: {error.get('reason', '')}"
                )
        return created

    def get(self, account: str, seq: int) -> dict[str, Any] | None:
        try:
            return self.client.get(index=self.index, id=f"{account}/{seq}")["_source"]
        except os_exc.NotFoundError:
            return None
        except os_exc.TransportError as exc:
            raise store_error(self.store.url, exc, "reading a checkpoint") from exc

    def head(self, account: str) -> int:
        try:
            self.client.indices.refresh(index=self.index)  # once per account and process
            resp = self.client.search(
                index=self.index,
                body={
                    "size": 1,
                    "_source": ["seq"],
                    "query": {"term": {"account": account}},
                    "sort": [{"seq": "desc"}],
                },
            )
        except os_exc.NotFoundError:
            return 0
        except os_exc.TransportError as exc:
            raise store_error(self.store.url, exc, "reading the ledger") from exc
        hits = resp["hits"]["hits"]
        return int(hits[0]["_source"]["seq"]) if hits else 0

    def iterate(self, account: str | None = None) -> Iterator[dict[str, Any]]:
        try:
            self.client.indices.refresh(index=self.index)
            after: list[Any] | None = None
            query = {"term": {"account": account}} if account is not None else {"match_all": {}}
            while True:
                body: dict[str, Any] = {
                    "size": 500,
                    "query": query,
                    "sort": [{"account": "asc"}, {"seq": "asc"}],
                }
                if after:
                    body["search_after"] = after
                hits = self.client.search(index=self.index, body=body)["hits"]["hits"]
                if not hits:
                    return
                for hit in hits:
                    yield hit["_source"]
                after = hits[-1]["sort"]
        except os_exc.NotFoundError:
            return
        except os_exc.TransportError as exc:
            raise store_error(self.store.url, exc, "reading the ledger") from exc

    def accounts(self) -> list[str]:
        try:
            self.client.indices.refresh(index=self.index)
            resp = self.client.search(
                index=self.index,
                body={"size": 0, "aggs": {"a": {"terms": {"field": "account", "size": 10000}}}},
            )
        except os_exc.NotFoundError:
            return []
        except os_exc.TransportError as exc:
            raise store_error(self.store.url, exc, "reading the ledger") from exc
        return sorted(b["key"] for b in resp["aggregations"]["a"]["buckets"])

    def drop(self) -> None:
        self.client.indices.delete(index=self.index, ignore_unavailable=True)
