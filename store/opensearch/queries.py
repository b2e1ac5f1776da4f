"""Query building for :class:`~useraudit.store.opensearch.OpenSearchStore`: request bodies.

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

Sending them and reading the answers is :mod:`.reads`; OpenSearch's
failures become store errors in :mod:`.errors`.
"""

from __future__ import annotations

import html
from typing import Any

from .. import histogram
from ..histogram import Bucket
from ..query import (
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
    SearchRequest,
    decode_cursor,
    fold,
    networks,
    parse_text,
    to_ms,
    to_simple_query_string,
)

SORT = [{"@timestamp": {"order": "desc"}}, {"event.id": {"order": "desc"}}]
# Backward pages (``before``, ``last``) read oldest first and are turned round.
SORT_BACKWARD = [{"@timestamp": {"order": "asc"}}, {"event.id": {"order": "asc"}}]
COMMENTS = "audit.comments"
PIT_KEEP_ALIVE = "2m"
FACET_SHARD_SIZE = 1000
# Not a facet name: facets are plain words.
HISTOGRAM_AGG = "~histogram"


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
    for attr, field in TERM_FILTERS.items():
        values = getattr(query, attr)
        if not values or (attr == "actions" and query.groups):
            continue  # actions with groups: one facet, below
        if attr in FOLDED_FILTERS:
            filters.append({"terms": {f"{field}.lower": [fold(v) for v in values]}})
        else:
            filters.append({"terms": {field: list(values)}})
    for attr, field in PIVOT_FILTERS.items():
        values = getattr(query, attr)
        if values:
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
        "sort": SORT_BACKWARD if request.backward else SORT,
        # One more than asked tells whether there is a next page.
        "size": request.size + 1,
        "track_total_hits": True,
    }
    position = request.cursor or request.before
    if position:
        body["search_after"] = list(decode_cursor(position))
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
    if request.histogram is not None:
        # The chart's counts ride on the page's own query: one round trip,
        # the text matched once for hits, facets and bars.
        body.setdefault("aggs", {})[HISTOGRAM_AGG] = histogram_agg(*request.histogram)
    if request.highlight:
        body["highlight"] = {
            "pre_tags": [HIGHLIGHT_PRE],
            "post_tags": [HIGHLIGHT_POST],
            "fields": {COMMENTS: {"number_of_fragments": 0}},
            "require_field_match": True,
        }
    return body


def histogram_agg(interval_ms: int, offset_ms: int) -> dict[str, Any]:
    """A date_histogram with an outcome split per bucket (see :mod:`..histogram`)."""
    offset = histogram.check(interval_ms, offset_ms)
    agg: dict[str, Any] = {
        "field": "@timestamp",
        "fixed_interval": f"{interval_ms}ms",
        "min_doc_count": 1,
    }
    if offset:
        agg["offset"] = f"{offset}ms"
    outcomes = {"terms": {"field": "event.outcome", "size": 10, "missing": ""}}
    return {"date_histogram": agg, "aggs": {"o": outcomes}}


def histogram_buckets(answer: dict[str, Any]) -> list[Bucket]:
    """:func:`histogram_agg`'s answer as buckets, oldest first."""
    rows: list[tuple[int, str | None, int]] = []
    for b in answer.get("buckets", []):
        for o in b["o"]["buckets"]:
            rows.append((int(b["key"]), o["key"] or None, int(o["doc_count"])))
    return histogram.collect(rows)


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
