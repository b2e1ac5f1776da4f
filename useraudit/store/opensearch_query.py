"""The read side of :class:`~useraudit.store.opensearch.OpenSearchStore`.

A :class:`~useraudit.store.query.Query` becomes one ``bool`` query whose
``filter`` clauses always start with ``organization.id`` (tenant isolation);
full text is a ``simple_query_string`` rendered from the parsed search box
text (:func:`~useraudit.store.query.parse_text`), never the raw input.

* Order: ``@timestamp`` desc, ``event.id`` desc; pages continue with
  ``search_after`` from an opaque cursor (no ``from``/``size`` deep paging).
* ``total`` is exact (``track_total_hits``); facets are ``terms``
  aggregations under every active filter (the cursor does not narrow them),
  with a large ``shard_size`` because every monthly index is its own shard:
  counts are exact while a field has at most FACET_SHARD_SIZE values per
  month, and may be approximate beyond (OpenSearch's usual trade-off).
* Highlighting marks matches with control characters that cannot occur in
  stored text (the indexer replaces them), then HTML-escapes and swaps them
  for ``<mark>``, so the result is safe to render.
* ``iterate`` walks a point-in-time with ``search_after``: one batch in
  memory at a time, a consistent snapshot, however many events match.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from opensearchpy import exceptions as os_exc

from useraudit.schema import flatten, picker

from .base import StoreError, StoreRefused, StoreUnavailable
from .histogram import Bucket
from .histogram import check as histogram_check
from .histogram import collect as collect_buckets
from .query import (
    FACETS,
    FOLDED_FILTERS,
    HIGHLIGHT_POST,
    HIGHLIGHT_PRE,
    PERSON_FILTERS,
    PERSON_PARTS_FOLDED,
    PIVOT_FILTERS,
    SQS_FLAGS,
    TERM_FILTERS,
    Query,
    SearchPage,
    SearchRequest,
    decode_cursor,
    encode_cursor,
    fold,
    networks,
    parse_text,
    to_ms,
    to_simple_query_string,
)

if TYPE_CHECKING:
    from .opensearch import OpenSearchStore

SORT = [{"@timestamp": {"order": "desc"}}, {"event.id": {"order": "desc"}}]
COMMENTS = "audit.comments"
PIT_KEEP_ALIVE = "2m"
FACET_SHARD_SIZE = 1000


def build_query(query: Query) -> dict[str, Any]:
    """The ``query`` clause for ``query``; tenant filter first, always."""
    filters: list[dict[str, Any]] = [{"term": {"organization.id": query.account}}]
    if query.start or query.end:
        rng: dict[str, Any] = {"format": "epoch_millis"}
        if query.start:
            rng["gte"] = to_ms(query.start)
        if query.end:
            rng["lte"] = to_ms(query.end)
        filters.append({"range": {"@timestamp": rng}})
    for attr, field in (*TERM_FILTERS.items(), *PIVOT_FILTERS.items()):
        values = getattr(query, attr)
        if not values or (attr == "actions" and query.groups):
            continue  # actions with groups: one facet, below
        if attr in FOLDED_FILTERS:
            filters.append({"terms": {f"{field}.lower": [fold(v) for v in values]}})
        else:
            filters.append({"terms": {field: list(values)}})
    for attr, prefix in PERSON_FILTERS.items():
        values = getattr(query, attr)
        if values:
            folded = [fold(v) for v in values]
            filters.append(
                {
                    "bool": {
                        "minimum_should_match": 1,
                        "should": [
                            {"terms": {f"{prefix}.id": list(values)}},
                            *(
                                {"terms": {f"{prefix}.{part}.lower": folded}}
                                for part in PERSON_PARTS_FOLDED
                            ),
                        ],
                    }
                }
            )
    if query.history:
        filters.append({"terms": {"related.user.lower": [fold(v) for v in query.history]}})
    if query.ips:
        filters.append(
            {
                "bool": {
                    "minimum_should_match": 1,
                    "should": [{"term": {"source.ip": str(networks(v))}} for v in query.ips],
                }
            }
        )
    if query.groups:
        # The action picker: any ticked group or any ticked action.
        picked: list[dict[str, Any]] = [
            {
                "bool": {
                    "filter": [
                        {"term": {"audit.product": p}},
                        {"term": {"audit.group": g}},
                    ]
                }
            }
            for p, g in query.groups
        ]
        if query.actions:
            picked.append({"terms": {"event.action": list(query.actions)}})
        filters.append({"bool": {"minimum_should_match": 1, "should": picked}})
    bool_: dict[str, Any] = {"filter": filters}
    node = parse_text(query.text)
    if node is not None:
        bool_["must"] = [
            {
                "simple_query_string": {
                    "query": to_simple_query_string(node),
                    "fields": [COMMENTS],
                    "default_operator": "and",
                    "flags": SQS_FLAGS,
                    "analyze_wildcard": False,
                    "auto_generate_synonyms_phrase_query": False,
                }
            }
        ]
    return {"bool": bool_}


def search_body(request: SearchRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "query": build_query(request.query),
        "sort": SORT,
        # One more than asked tells whether there is a next page.
        "size": request.size + 1,
        "track_total_hits": True,
    }
    if request.cursor:
        body["search_after"] = list(decode_cursor(request.cursor))
    if request.fields:
        body["_source"] = {"includes": list(request.fields)}
    if request.facets:
        # Each monthly index is a shard: a terms aggregation is exact only when
        # every shard returns every value that could make the top list, so
        # ask shards for far more than shown (cheap for audit-log cardinalities).
        shard_size = max(FACET_SHARD_SIZE, request.facet_size * 10)
        body["aggs"] = {
            name: {
                "terms": {
                    "field": FACETS[name],
                    "size": request.facet_size,
                    "shard_size": shard_size,
                }
            }
            for name in request.facets
        }
    if request.highlight:
        body["highlight"] = {
            "pre_tags": [HIGHLIGHT_PRE],
            "post_tags": [HIGHLIGHT_POST],
            "fields": {COMMENTS: {"number_of_fragments": 0}},
            "require_field_match": True,
        }
    return body


def mark(marked: str, original: str) -> str:
    """Comments marked with the control tags → escaped HTML with ``<mark>``.

    OpenSearch trims characters below U+0021 off both ends of a highlighted
    field, which eats a tag on a match at the very start or end (and any
    surrounding whitespace): both are restored from the stored text.
    """
    first_pre, first_post = marked.find(HIGHLIGHT_PRE), marked.find(HIGHLIGHT_POST)
    if first_post >= 0 and (first_pre < 0 or first_post < first_pre):
        marked = HIGHLIGHT_PRE + marked
    if marked.rfind(HIGHLIGHT_PRE) > marked.rfind(HIGHLIGHT_POST):
        marked += HIGHLIGHT_POST
    plain = marked.replace(HIGHLIGHT_PRE, "").replace(HIGHLIGHT_POST, "")
    if plain != original:
        at = original.find(plain)
        if at < 0:  # not what was stored: do not guess where the marks go
            return html.escape(original, quote=True)
        marked = original[:at] + marked + original[at + len(plain) :]
    return (
        html.escape(marked, quote=True)
        .replace(HIGHLIGHT_PRE, "<mark>")
        .replace(HIGHLIGHT_POST, "</mark>")
    )


def search(store: OpenSearchStore, request: SearchRequest) -> SearchPage:
    resp = guarded_call(
        store,
        store.client.search,
        index=store.alias,
        body=search_body(request),
        ignore_unavailable=True,
    )
    raw_hits = resp["hits"]["hits"]
    more = len(raw_hits) > request.size
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
    next_cursor = None
    if more and raw_hits:
        ts, event_id = raw_hits[-1]["sort"]
        next_cursor = encode_cursor(int(ts), str(event_id))
    aggs = resp.get("aggregations") or {}
    facets = {
        name: [(str(b["key"]), int(b["doc_count"])) for b in aggs.get(name, {}).get("buckets", [])]
        for name in request.facets
    }
    return SearchPage(
        hits=hits, total=int(resp["hits"]["total"]["value"]), next_cursor=next_cursor, facets=facets
    )


def count(store: OpenSearchStore, query: Query) -> int:
    resp = guarded_call(
        store,
        store.client.count,
        index=store.alias,
        body={"query": build_query(query)},
        ignore_unavailable=True,
    )
    return int(resp.get("count", 0))


def histogram(
    store: OpenSearchStore, query: Query, interval_ms: int, offset_ms: int = 0
) -> list[Bucket]:
    """A date_histogram of the matches with an outcome split (see :mod:`.histogram`)."""
    offset = histogram_check(interval_ms, offset_ms)
    agg: dict[str, Any] = {
        "field": "@timestamp",
        "fixed_interval": f"{interval_ms}ms",
        "min_doc_count": 1,
    }
    if offset:
        agg["offset"] = f"{offset}ms"
    resp = guarded_call(
        store,
        store.client.search,
        index=store.alias,
        body={
            "size": 0,
            "track_total_hits": False,
            "query": build_query(query),
            "aggs": {
                "t": {
                    "date_histogram": agg,
                    "aggs": {"o": {"terms": {"field": "event.outcome", "size": 10, "missing": ""}}},
                }
            },
        },
        ignore_unavailable=True,
    )
    rows: list[tuple[int, str | None, int]] = []
    for b in resp.get("aggregations", {}).get("t", {}).get("buckets", []):
        for o in b["o"]["buckets"]:
            rows.append((int(b["key"]), o["key"] or None, int(o["doc_count"])))
    return collect_buckets(rows)


def iterate(
    store: OpenSearchStore,
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
        pit = store.client.create_pit(index=store.alias, keep_alive=PIT_KEEP_ALIVE)["pit_id"]
    except os_exc.NotFoundError:
        return
    except os_exc.TransportError as exc:
        raise store_error(store.url, exc, "the export") from exc
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
            resp = guarded_call(store, store.client.search, body=body)
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
            store.client.delete_pit(body={"pit_id": [body["pit"]["id"]]})
        except os_exc.OpenSearchException:
            pass


def guarded_call(store: OpenSearchStore, fn: Any, **kwargs: Any) -> dict:
    """``fn(**kwargs)`` with OpenSearch's failures as store errors (see :func:`store_error`).

    No index yet → an empty answer.
    """
    try:
        return fn(**kwargs)
    except os_exc.NotFoundError:
        return {"hits": {"hits": [], "total": {"value": 0}}, "count": 0}
    except os_exc.TransportError as exc:
        raise store_error(store.url, exc, "the search") from exc


def store_error(url: str, exc: os_exc.TransportError, doing: str) -> StoreError:
    """The store error for a failed request (``doing``: "the search", "the bulk request"...).

    * unreachable, overloaded (429) or shards not started (5xx, e.g. an index
      created a moment ago) → :class:`StoreUnavailable`: retry, or "try again";
    * wrong or missing credentials (401), a missing permission (403), or a
      certificate the CA bundle does not vouch for → :class:`StoreRefused`,
      saying what to fix;
    * any other refusal → :class:`StoreError`.
    """
    if isinstance(exc, os_exc.ConnectionError):  # timeouts and TLS failures too
        text = str(exc)
        if isinstance(exc, os_exc.SSLError) or "SSL" in text:
            if "CERTIFICATE_VERIFY_FAILED" in text:
                return StoreRefused(
                    f"the TLS certificate of OpenSearch at {url} is not trusted "
                    f"({_ssl_reason(text)}): give the CA that signed it as "
                    "?ca_certs=/path/ca.pem in the store URL, or ?verify_certs=false to skip "
                    "the check"
                )
            return StoreRefused(
                f"TLS with OpenSearch at {url} failed ({_ssl_reason(text)}): is it serving "
                "HTTPS on that port (or plain HTTP: use an http:// URL)?"
            )
        return StoreUnavailable(f"OpenSearch at {url} unreachable: {exc}")
    status = exc.status_code if isinstance(exc.status_code, int) else 0
    if status == 401:
        return StoreRefused(
            f"OpenSearch at {url} refused the credentials for {doing} (401 Unauthorized): "
            "check the user and password in the store URL (https://user:password@host:9200)"
        )
    if status == 403:
        return StoreRefused(
            f"OpenSearch at {url} denied {doing} (403 Forbidden), a permission the user "
            f"lacks: {_reason(exc)}"
        )
    if status == 429 or status >= 500 or status == 0:
        return StoreUnavailable(f"OpenSearch at {url} answered {status}: {_reason(exc)}")
    return StoreError(f"OpenSearch at {url} refused {doing} ({status}): {_reason(exc)}")


def _ssl_reason(text: str) -> str:
    """OpenSSL's reason inside urllib3's nested message, e.g. "[SSL: ...] certificate verify
    failed: unable to get local issuer certificate"."""
    start = text.find("[SSL")
    if start < 0:
        return text[:200]
    end = min(i for i in (text.find(" (_ssl.c", start), text.find(")", start), len(text)) if i > 0)
    return text[start:end].strip()


def _reason(exc: os_exc.TransportError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    found = info.get("error")
    error = found if isinstance(found, dict) else {}
    root = (error.get("root_cause") or [{}])[0] if error else {}
    return str(root.get("reason") or error.get("reason") or exc.error)
