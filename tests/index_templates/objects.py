"""Reading saved objects the way Dashboards does: nested JSON strings, field uses, mappings."""

from __future__ import annotations

import json
from typing import Any

from .dql import parse

# Which mapping types each use of a field needs (what Dashboards would offer
# the field for: terms on keyword/ip/numbers, date_histogram on dates, ...).
NEEDS: dict[str, set[str]] = {
    "agg:terms": {"keyword", "ip", "integer", "long", "boolean"},
    "agg:date_histogram": {"date"},
    "agg:cardinality": {"keyword", "ip", "integer", "long", "date", "boolean"},
    "sort": {"date", "keyword", "ip", "integer", "long"},
    "time": {"date"},
    "format:ip": {"ip"},
    "format:date": {"date"},
}


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def search_source(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["attributes"].get("kibanaSavedObjectMeta") or {}
    return json.loads(meta.get("searchSourceJSON") or "{}")


def kuery(obj: dict[str, Any]) -> str:
    query = search_source(obj).get("query") or {}
    assert query.get("language", "kuery") == "kuery", obj["id"]
    return query.get("query") or ""


def vis_state(obj: dict[str, Any]) -> dict[str, Any]:
    return json.loads(obj["attributes"]["visState"])


def field_uses(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (field, use) a saved object refers to."""
    uses: list[tuple[str, str]] = []
    attrs = obj["attributes"]
    if "kibanaSavedObjectMeta" in attrs:
        uses += [(name, "query") for name in sorted(parse(kuery(obj)).fields)]
        for flt in search_source(obj).get("filter") or []:
            key = (flt.get("meta") or {}).get("key")
            if key:
                uses.append((key, "filter"))
    if obj["type"] == "index-pattern":
        uses.append((attrs["timeFieldName"], "time"))
        uses += [
            (spec["name"], "index-pattern-field")
            for spec in json.loads(attrs["fields"])
            if not spec["name"].startswith("_")
        ]
        uses += [
            (name, f"format:{fmt['id']}")
            for name, fmt in json.loads(attrs["fieldFormatMap"]).items()
        ]
    if obj["type"] == "search":
        uses += [(c, "column") for c in attrs["columns"]]
        uses += [(s[0], "sort") for s in attrs["sort"]]
    if obj["type"] == "visualization":
        for agg in vis_state(obj)["aggs"]:
            if "field" in agg["params"]:
                uses.append((agg["params"]["field"], f"agg:{agg['type']}"))
    return uses


def flatten_mapping(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Mapping ``properties`` → {dotted field name: type}, multi-fields included."""
    out: dict[str, str] = {}
    for key, spec in properties.items():
        name = f"{prefix}{key}"
        if "properties" in spec:
            out.update(flatten_mapping(spec["properties"], f"{name}."))
            continue
        out[name] = spec["type"]
        for sub, sub_spec in (spec.get("fields") or {}).items():
            out[f"{name}.{sub}"] = sub_spec["type"]
    return out


def type_problems(objects: list[dict[str, Any]], mapping: dict[str, str]) -> list[str]:
    """Fields missing from ``mapping`` or of a type their use cannot work with."""
    problems = []
    for obj in objects:
        for name, use in field_uses(obj):
            if name not in mapping:
                problems.append(f"{obj['id']}: {name} ({use}) is not in the mapping")
            elif use in NEEDS and mapping[name] not in NEEDS[use]:
                problems.append(
                    f"{obj['id']}: {name} is {mapping[name]}, {use} needs {sorted(NEEDS[use])}"
                )
    return problems


def aggregation_request(vis: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
    """The search body a standard visualisation's aggs amount to (buckets nested in order)."""
    metrics: dict[str, Any] = {}
    buckets: list[tuple[str, dict[str, Any]]] = []
    for agg in vis_state(vis)["aggs"]:
        params = agg["params"]
        if agg["type"] == "count":
            continue
        if agg["type"] == "cardinality":
            metrics[agg["id"]] = {"cardinality": {"field": params["field"]}}
        elif agg["type"] == "terms":
            buckets.append(
                (
                    agg["id"],
                    {
                        "terms": {
                            "field": params["field"],
                            "size": params["size"],
                            "order": {"_count": params["order"]},
                        }
                    },
                )
            )
        elif agg["type"] == "date_histogram":
            buckets.append(
                (
                    agg["id"],
                    {
                        "date_histogram": {
                            "field": params["field"],
                            "fixed_interval": "1d",
                            "min_doc_count": params["min_doc_count"],
                        }
                    },
                )
            )
        else:
            raise AssertionError(f"no translation for agg type {agg['type']}")
    inner: dict[str, Any] = dict(metrics)
    for agg_id, body in reversed(buckets):
        if inner:
            body = {**body, "aggs": inner}
        inner = {agg_id: body}
    return {"size": 0, "query": query, "aggs": inner}
