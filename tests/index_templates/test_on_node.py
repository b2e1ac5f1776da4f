"""The saved objects against the real OpenSearch node: fields, field caps, queries, aggregations."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from useraudit.index_templates import saved_objects as dc

from .conftest import EXPECTED, ids
from .dql import parse
from .objects import aggregation_request, flatten_mapping, kuery, lines, type_problems

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dashboards.md"


def objects_for(prefix: str) -> list[dict[str, Any]]:
    return lines(dc.render_ndjson(prefix))


def live_mapping(store: Any) -> dict[str, str]:
    """The merged field → type mapping of every index behind the read alias."""
    merged: dict[str, str] = {}
    for body in store.client.indices.get_mapping(index=store.alias).values():
        for name, es_type in flatten_mapping(body["mappings"]["properties"]).items():
            assert merged.setdefault(name, es_type) == es_type, name
    return merged


def search(store: Any, query: dict[str, Any]) -> set[str]:
    return ids(store.client.search(index=store.alias, body={"query": query, "size": 100}))


def test_every_referenced_field_is_in_the_live_mapping(seeded_os: Any) -> None:
    """Every field the objects use is in the node's live alias mapping, with a usable type."""
    mapping = live_mapping(seeded_os)
    assert type_problems(objects_for(seeded_os.prefix), mapping) == []


def test_index_pattern_fields_match_field_caps(seeded_os: Any) -> None:
    """The index pattern's field list agrees with _field_caps (Dashboards' source for it)."""
    caps = seeded_os.client.field_caps(index=seeded_os.alias, fields="*")["fields"]
    pattern = objects_for(seeded_os.prefix)[0]
    assert pattern["attributes"]["title"] == seeded_os.alias
    for spec in json.loads(pattern["attributes"]["fields"]):
        if spec["name"] in ("_score", "_source"):
            continue
        cap = caps[spec["name"]]
        assert len(cap) == 1, (spec["name"], cap)
        ((es_type, info),) = cap.items()
        assert spec["esTypes"] == [es_type], spec
        assert spec["searchable"] is info["searchable"], spec
        assert spec["aggregatable"] is info["aggregatable"], spec
    # Nothing searchable is missing but the flat_object.
    ours = {s["name"] for s in json.loads(pattern["attributes"]["fields"])}
    missing = {
        n for n, c in caps.items() if not n.startswith("_") and n not in ours and "object" not in c
    }
    assert missing and {n for n in missing if not n.startswith("audit.params")} == set(), missing


@pytest.mark.parametrize("saved", dc.SEARCHES, ids=[s.slug for s in dc.SEARCHES])
def test_saved_search_finds_exactly_its_events(seeded_os: Any, saved: dc.SavedSearch) -> None:
    """The search's DQL (translated as Dashboards does) and its DSL twin find exactly its events."""
    obj = next(
        o
        for o in objects_for(seeded_os.prefix)
        if o["id"] == dc.search_id(saved.slug, seeded_os.prefix)
    )
    by_dql = search(seeded_os, parse(kuery(obj)).dsl)
    by_dsl = search(seeded_os, saved.dsl)
    assert by_dql == EXPECTED[saved.slug]
    assert by_dsl == EXPECTED[saved.slug]


def _vis(prefix: str, slug: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A visualisation and the query it runs (its own DQL, or its saved search's)."""
    objects = {o["id"]: o for o in objects_for(prefix)}
    vis = objects[dc.vis_id(slug, prefix)]
    source = vis["attributes"]
    if "savedSearchRefName" in source:
        search_obj = objects[vis["references"][0]["id"]]
        text = kuery(search_obj)
        assert kuery(vis) == ""
    else:
        text = kuery(vis)
    return vis, parse(text).dsl


def _run(store: Any, slug: str) -> dict[str, Any]:
    vis, query = _vis(store.prefix, slug)
    return store.client.search(index=store.alias, body=aggregation_request(vis, query))[
        "aggregations"
    ]


def test_sign_ins_over_time_splits_by_outcome(seeded_os: Any) -> None:
    """The sign-ins histogram buckets sign-ins per day and splits them by outcome."""
    aggs = _run(seeded_os, "sign-ins-over-time")
    per_day = {
        b["key_as_string"][:10]: {o["key"]: o["doc_count"] for o in b["3"]["buckets"]}
        for b in aggs["2"]["buckets"]
    }
    assert per_day == {
        "2026-11-20": {"success": 1, "failure": 1},
        "2026-11-21": {"failure": 1},
        "2026-11-26": {"failure": 1},
    }


def test_top_users_by_failed_sign_ins(seeded_os: Any) -> None:
    """The failed sign-in ranking, built on the saved search, puts the most-failing login first."""
    buckets = _run(seeded_os, "top-failed-sign-in-users")["2"]["buckets"]
    assert [(b["key"], b["doc_count"]) for b in buckets] == [("mallory", 2), ("bob", 1)]


def test_actions_by_product_and_group(seeded_os: Any) -> None:
    """The product/group table counts actions per catalog product and group."""
    buckets = _run(seeded_os, "actions-by-product-group")["2"]["buckets"]
    table = {(p["key"], g["key"]): g["doc_count"] for p in buckets for g in p["3"]["buckets"]}
    assert table[("common", "Users")] == 6
    assert table[("common", "Custom role")] == 2
    assert table[("jaicp", "API tokens")] == 2
    assert table[("useraudit", "User actions")] == 1
    assert sum(table.values()) == 16


def test_top_source_ips_with_distinct_users(seeded_os: Any) -> None:
    """The source IP table aggregates IPv4 and IPv6 and counts distinct users per IP."""
    buckets = _run(seeded_os, "top-source-ips")["2"]["buckets"]
    rows = {b["key"]: (b["doc_count"], b["3"]["value"]) for b in buckets}
    assert rows["10.1.2.3"][0] == 4
    assert rows["203.0.113.7"] == (2, 1)  # mallory, by name only
    assert "2001:db8::5" in rows


# Questions docs/dashboards.md answers in DQL → the seeded events each must find.
DOC_EXAMPLES = {
    'event.action:user.signed_in and event.outcome:failure and user.name.lower:"Bob"': {"s03"},
    "audit.impersonator.name:root": {"s08", "s12"},
    "audit.impersonator.id:* or audit.impersonator.name:*": {"s08", "s12", "s14"},
    'source.ip:"10.0.0.0/8"': {"s01", "s03", "s04", "s05", "s07", "s09", "s11", "s12", "s13"},
    'source.ip:"203.0.113.0/24" and event.outcome:failure': {"s02", "s16"},
    "audit.project.id:p-weather": {"s09", "s11"},
    'related.user:"bob"': {"s03", "s07", "s09", "s11", "s13"},
    'related.user.lower:"BOB@example.com"': {"s03", "s07", "s09", "s11", "s13"},
    "user.target.name:bob": {"s07"},
    "event.category:iam and event.outcome:failure": {"s07"},
    "event.action:token.* and not event.action:token.created": {"s10"},
}


@pytest.mark.parametrize("text", list(DOC_EXAMPLES))
def test_docs_dql_examples_are_documented_and_find_the_right_events(
    seeded_os: Any, text: str
) -> None:
    """Each DQL example is in docs/dashboards.md verbatim and finds exactly its events."""
    assert text in DOCS.read_text(encoding="utf-8")
    assert search(seeded_os, parse(text).dsl) == DOC_EXAMPLES[text]


def test_docs_dql_blocks_are_all_checked() -> None:
    """The docs' DQL blocks hold exactly the checked examples and the searches' DQL."""
    blocks = re.findall(r"```dql\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    documented = {line.strip() for block in blocks for line in block.splitlines() if line.strip()}
    searches = {s.kuery for s in dc.SEARCHES}
    assert documented == searches | set(DOC_EXAMPLES)


def test_every_dql_field_is_in_the_index_pattern() -> None:
    """Dashboards resolves DQL fields via the index pattern: each one used must be listed."""
    pattern = objects_for("useraudit")[0]
    listed = {spec["name"] for spec in json.loads(pattern["attributes"]["fields"])}
    used = {
        name
        for text in [*DOC_EXAMPLES, *(s.kuery for s in dc.SEARCHES)]
        for name in parse(text).fields
    }
    assert used and used <= listed, used - listed
