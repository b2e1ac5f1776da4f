"""Searches, counts and exports of one OpenSearch store, sent and read back.

* ``iterate`` walks a point-in-time with ``search_after``: one batch in
  memory at a time, a consistent snapshot, however many events match.
* A missing index (nothing written yet) is an empty answer, not an error.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy import exceptions as os_exc

from useraudit.schema import flatten, picker

from ..histogram import Bucket
from ..query import Query, QueryError, SearchPage, SearchRequest, backward_page, encode_cursor
from .errors import store_error
from .queries import (
    COMMENTS,
    HISTOGRAM_AGG,
    PIT_KEEP_ALIVE,
    SORT,
    build_query,
    histogram_agg,
    histogram_buckets,
    mark,
    search_body,
)


class Reads:
    """Searches, counts and exports of one store: its client, read alias and URL.

    The URL only names the store in error messages.
    """

    def __init__(self, client: OpenSearch, alias: str, url: str) -> None:
        self.client = client
        self.alias = alias
        self.url = url

    def search(self, request: SearchRequest) -> SearchPage:
        resp = self.call(
            self.client.search,
            index=self.alias,
            body=search_body(request),
            ignore_unavailable=True,
        )
        raw_hits = resp["hits"]["hits"]
        total = int(resp["hits"]["total"]["value"])
        more, newer = len(raw_hits) > request.size, bool(request.cursor)
        if request.backward:
            raw_hits, newer = backward_page(raw_hits, total, request)
            more = request.before is not None  # the ``before`` event itself is older
        else:
            raw_hits = raw_hits[: request.size]
        hits: list[dict] = []
        pick = picker(tuple(request.fields)) if request.fields else flatten
        for hit in raw_hits:
            doc = pick(hit["_source"])
            if request.highlight and doc.get(COMMENTS):
                fragments = (hit.get("highlight") or {}).get(COMMENTS)
                doc["_highlight"] = (
                    mark(fragments[0], doc[COMMENTS])
                    if fragments
                    else html.escape(doc[COMMENTS], quote=True)
                )
            hits.append(doc)
        next_cursor = prev_cursor = None
        if more and raw_hits:
            ts, event_id = raw_hits[-1]["sort"]
            next_cursor = encode_cursor(int(ts), str(event_id))
        if newer and raw_hits:
            ts, event_id = raw_hits[0]["sort"]
            prev_cursor = encode_cursor(int(ts), str(event_id))
        aggs = resp.get("aggregations") or {}
        facets = {
            name: [
                (str(b["key"]), int(b["doc_count"])) for b in aggs.get(name, {}).get("buckets", [])
            ]
            for name in request.facets
        }
        page = SearchPage(
            hits=hits,
            total=total,
            next_cursor=next_cursor,
            facets=facets,
            prev_cursor=prev_cursor,
        )
        if request.histogram is not None:
            page.histogram = histogram_buckets(aggs.get(HISTOGRAM_AGG, {}))
        return page

    def count(self, query: Query) -> int:
        resp = self.call(
            self.client.count,
            index=self.alias,
            body={"query": build_query(query)},
            ignore_unavailable=True,
        )
        return int(resp.get("count", 0))

    def histogram(self, query: Query, interval_ms: int, offset_ms: int = 0) -> list[Bucket]:
        """A date_histogram of the matches with an outcome split (see :mod:`..histogram`)."""
        resp = self.call(
            self.client.search,
            index=self.alias,
            body={
                "size": 0,
                "track_total_hits": False,
                "query": build_query(query),
                "aggs": {"t": histogram_agg(interval_ms, offset_ms)},
            },
            ignore_unavailable=True,
        )
        return histogram_buckets(resp.get("aggregations", {}).get("t", {}))

    def iterate(
        self,
        query: Query,
        batch_size: int = 1000,
        fields: Sequence[str] | None = None,
    ) -> Iterator[dict]:
        """Every match newest first through a point-in-time; one batch in memory.

        ``fields`` limits ``_source`` to those fields: less for the node to read
        and send, and for us to parse.
        """
        batch_size = max(1, min(int(batch_size), 10_000))
        try:
            pit = self.client.create_pit(index=self.alias, keep_alive=PIT_KEEP_ALIVE)["pit_id"]
        except os_exc.NotFoundError:
            return
        except os_exc.TransportError as exc:
            raise store_error(self.url, exc, "the export") from exc
        body: dict[str, Any] = {
            "query": build_query(query),
            "sort": SORT,
            "size": batch_size,
            "track_total_hits": False,
            "pit": {"id": pit, "keep_alive": PIT_KEEP_ALIVE},
        }
        pick: Callable[[dict], dict] = flatten
        if fields:
            body["_source"] = {"includes": list(fields)}
            pick = picker(tuple(fields))
        try:
            while True:
                resp = self.call(self.client.search, body=body)
                hits = resp["hits"]["hits"]
                for hit in hits:
                    yield pick(hit["_source"])
                if len(hits) < batch_size:
                    return
                body["search_after"] = hits[-1]["sort"]
                # The PIT id may change between calls; always use the latest.
                body["pit"]["id"] = resp.get("pit_id") or body["pit"]["id"]
        finally:
            try:
                self.client.delete_pit(body={"pit_id": [body["pit"]["id"]]})
            except os_exc.OpenSearchException:
                pass

    def call(self, fn: Any, **kwargs: Any) -> dict:
        """``fn(**kwargs)`` with OpenSearch's failures as store errors (see :func:`store_error`).

        No index yet → an empty answer.
        """
        try:
            return fn(**kwargs)
        except os_exc.NotFoundError:
            return {"hits": {"hits": [], "total": {"value": 0}}, "count": 0}
        except os_exc.RequestError as exc:
            # 400: the node understood us and refused this query (an odd date,
            # address or value): the user's to change, not an outage.
            reason = (
                str(exc.info.get("error", {}).get("reason", ""))
                if isinstance(exc.info, dict)
                else ""
            )
            raise QueryError(
                "the audit log cannot run this search: %(reason)s", reason=reason[:200]
            ) from exc
        except os_exc.TransportError as exc:
            raise store_error(self.url, exc, "the search") from exc
