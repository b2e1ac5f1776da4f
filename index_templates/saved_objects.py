"""OpenSearch Dashboards saved objects for the events, rendered from the schema and the catalog.

The saved objects (one index pattern, five saved searches, four
visualisations and the "User actions" dashboard) are rendered here from
:mod:`useraudit.schema` and :mod:`useraudit.catalog`, so a field or action
renamed there either follows automatically or fails at import time.
``dashboards/useraudit.ndjson`` beside this file is the rendering for the
default prefix, committed for people who import through the Dashboards UI;
a test keeps it equal to :func:`render_ndjson` (regenerate with ``make regen``).

Format: the Dashboards 2.x saved-objects export format (Kibana 7.10 lineage):
``type``, ``id``, ``attributes`` whose nested JSON (``visState``,
``kibanaSavedObjectMeta.searchSourceJSON``, ``panelsJSON``, the index
pattern's ``fields``/``fieldFormatMap``) is stored as JSON *strings*, and
``references`` by name (``indexRefName``, ``savedSearchRefName``,
``panelRefName``). ``migrationVersion`` says the objects are already in the
newest shape, so Dashboards imports them without running migrations.

Ids are stable and carry the index prefix (``useraudit-events``,
``useraudit-search-failed-sign-ins``, ...): re-importing with
``--overwrite`` updates in place, and two prefixes can live side by side.

:mod:`.dashboards_client` imports them into Dashboards, and
:mod:`.dashboards_commands` is ``useraudit dashboards``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from useraudit.catalog import CATALOG
from useraudit.schema import FIELD_BY_NAME, FIELDS, Kind

from . import DEFAULT_PREFIX, read_alias

HERE = Path(__file__).parent
DASHBOARDS_DIR = HERE / "dashboards"
GOLDEN_NDJSON = DASHBOARDS_DIR / "useraudit.ndjson"

# Dashboards stamps these; "newest shape" for 2.x (forked from Kibana 7.10).
MIGRATION_VERSION = {
    "index-pattern": "7.6.0",
    "search": "7.9.3",
    "visualization": "7.10.0",
    "dashboard": "7.9.3",
}
PANEL_VERSION = "2.19.0"
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
DATE_PATTERN = "YYYY-MM-DD HH:mm:ss.SSS"


def f(name: str) -> str:
    """A schema field name, checked: a typo or rename fails at import time."""
    base = name.rsplit(".", 1)[0] if name.endswith((".lower", ".keyword")) else name
    if base not in FIELD_BY_NAME:
        raise KeyError(f"{name!r} is not a field of useraudit.schema")
    return name


def _codes(predicate: Any) -> list[str]:
    return sorted(a.code for a in CATALOG.actions() if predicate(a))


def _dql_any(field: str, values: list[str]) -> str:
    if len(values) == 1:
        return f"{field}:{values[0]}"
    return f"{field}:({' or '.join(values)})"


# -- saved searches ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SavedSearch:
    """A saved search: its DQL for Discover and the same query as OpenSearch DSL.

    ``dsl`` is what the DQL means, for use outside Dashboards (alerting
    monitors, scripts); tests run both against a real node.
    """

    slug: str
    title: str
    description: str
    kuery: str
    dsl: dict[str, Any]
    columns: tuple[str, ...]


_SIGN_IN = "user.signed_in"
_ROLE_CODES = _codes(lambda a: a.group == "Custom role") + ["user.roles_updated"]
_TOKEN_CODES = _codes(lambda a: a.group == "API tokens")
_EXPORT_CODES = _codes(lambda a: a.code.endswith((".exported", ".downloaded")))

_USER_COLUMNS = (f("user.name"), f("user.email"))
SEARCHES: tuple[SavedSearch, ...] = (
    SavedSearch(
        "failed-sign-ins",
        "Failed sign-ins",
        "Sign-in attempts that failed; user.name is the login that was tried.",
        f"{f('event.action')}:{_SIGN_IN} and {f('event.outcome')}:failure",
        {
            "bool": {
                "filter": [
                    {"term": {"event.action": _SIGN_IN}},
                    {"term": {"event.outcome": "failure"}},
                ]
            }
        },
        (*_USER_COLUMNS, f("source.ip"), f("user_agent.name"), f("event.reason")),
    ),
    SavedSearch(
        "role-changes",
        "Role and permission changes",
        "Custom roles created, updated, renamed or deleted, and users' roles changed.",
        _dql_any(f("event.action"), _ROLE_CODES),
        {"terms": {"event.action": _ROLE_CODES}},
        (
            f("event.action"),
            *_USER_COLUMNS,
            f("user.target.name"),
            f("audit.comments"),
            f("audit.impersonator.name"),
            f("event.outcome"),
        ),
    ),
    SavedSearch(
        "api-token-activity",
        "API token activity",
        "API tokens (the host's and the audit log's own) created, changed, deleted or revoked, "
        "and every action done with a token.",
        f"{_dql_any(f('event.action'), _TOKEN_CODES)} or {f('audit.token.id')}:*",
        {
            "bool": {
                "should": [
                    {"terms": {"event.action": _TOKEN_CODES}},
                    {"exists": {"field": "audit.token.id"}},
                ],
                "minimum_should_match": 1,
            }
        },
        (
            f("event.action"),
            f("audit.token.id"),
            *_USER_COLUMNS,
            f("audit.project.name"),
            f("source.ip"),
            f("event.outcome"),
        ),
    ),
    SavedSearch(
        "impersonated-actions",
        "Actions by impersonators",
        "Everything an administrator did on a user's behalf (audit.impersonator.* is set).",
        f"{f('audit.impersonator.id')}:* or {f('audit.impersonator.name')}:*",
        {
            "bool": {
                "should": [
                    {"exists": {"field": "audit.impersonator.id"}},
                    {"exists": {"field": "audit.impersonator.name"}},
                ],
                "minimum_should_match": 1,
            }
        },
        (
            f("audit.impersonator.name"),
            f("event.action"),
            f("user.name"),
            f("audit.comments"),
            f("source.ip"),
            f("event.outcome"),
        ),
    ),
    SavedSearch(
        "exports-downloads",
        "Exports and downloads",
        "Data leaving the product: project exports, log and report downloads, audit log exports.",
        _dql_any(f("event.action"), _EXPORT_CODES),
        {"terms": {"event.action": _EXPORT_CODES}},
        (
            f("event.action"),
            *_USER_COLUMNS,
            f("audit.project.name"),
            f("audit.comments"),
            f("source.ip"),
        ),
    ),
)


# -- visualisations ---------------------------------------------------------------


def _count(agg_id: str = "1", label: str | None = None) -> dict[str, Any]:
    params = {"customLabel": label} if label else {}
    return {"id": agg_id, "enabled": True, "type": "count", "schema": "metric", "params": params}


def _terms(agg_id: str, field: str, size: int, schema: str, label: str) -> dict[str, Any]:
    return {
        "id": agg_id,
        "enabled": True,
        "type": "terms",
        "schema": schema,
        "params": {
            "field": f(field),
            "orderBy": "1",
            "order": "desc",
            "size": size,
            "otherBucket": False,
            "otherBucketLabel": "Other",
            "missingBucket": False,
            "missingBucketLabel": "Missing",
            "customLabel": label,
        },
    }


def _table_params(per_page: int = 10) -> dict[str, Any]:
    return {
        "perPage": per_page,
        "showPartialRows": False,
        "showMetricsAtAllLevels": False,
        "sort": {"columnIndex": None, "direction": None},
        "showTotal": False,
        "totalFunc": "sum",
        "percentageCol": "",
    }


def _bar_params(kind: str, category_position: str, value_position: str) -> dict[str, Any]:
    return {
        "type": kind,
        "grid": {"categoryLines": False},
        "categoryAxes": [
            {
                "id": "CategoryAxis-1",
                "type": "category",
                "position": category_position,
                "show": True,
                "style": {},
                "scale": {"type": "linear"},
                "labels": {"show": True, "filter": True, "truncate": 100},
                "title": {},
            }
        ],
        "valueAxes": [
            {
                "id": "ValueAxis-1",
                "name": "LeftAxis-1",
                "type": "value",
                "position": value_position,
                "show": True,
                "style": {},
                "scale": {"type": "linear", "mode": "normal"},
                "labels": {"show": True, "rotate": 0, "filter": False, "truncate": 100},
                "title": {"text": "Count"},
            }
        ],
        "seriesParams": [
            {
                "show": True,
                "type": "histogram",
                "mode": "stacked",
                "data": {"label": "Count", "id": "1"},
                "valueAxis": "ValueAxis-1",
                "drawLinesBetweenPoints": True,
                "lineWidth": 2,
                "showCircles": True,
            }
        ],
        "addTooltip": True,
        "addLegend": True,
        "legendPosition": "right",
        "times": [],
        "addTimeMarker": False,
        "labels": {"show": False},
        "thresholdLine": {
            "show": False,
            "value": 10,
            "width": 1,
            "style": "full",
            "color": "#E7664C",
        },
    }


@dataclass(frozen=True, slots=True)
class Visualisation:
    """A standard (aggregation-based) visualisation."""

    slug: str
    title: str
    description: str
    vis_type: str
    params: dict[str, Any]
    aggs: tuple[dict[str, Any], ...]
    # Either its own DQL, or the slug of a saved search it is built on.
    kuery: str = ""
    search: str | None = None


VISUALISATIONS: tuple[Visualisation, ...] = (
    Visualisation(
        "sign-ins-over-time",
        "Sign-ins over time by outcome",
        "Sign-in attempts per interval, stacked by event.outcome (success, failure, unknown).",
        "histogram",
        _bar_params("histogram", "bottom", "left"),
        (
            _count(),
            {
                "id": "2",
                "enabled": True,
                "type": "date_histogram",
                "schema": "segment",
                "params": {
                    "field": f("@timestamp"),
                    "useNormalizedOpenSearchInterval": True,
                    "scaleMetricValues": False,
                    "interval": "auto",
                    "drop_partials": False,
                    "min_doc_count": 1,
                    "extended_bounds": {},
                    "customLabel": "Time",
                },
            },
            _terms("3", "event.outcome", 3, "group", "Outcome"),
        ),
        kuery=f"{f('event.action')}:{_SIGN_IN}",
    ),
    Visualisation(
        "top-failed-sign-in-users",
        "Top users by failed sign-ins",
        "The logins with the most failed sign-in attempts (built on the Failed sign-ins search).",
        "horizontal_bar",
        _bar_params("histogram", "left", "bottom"),
        (_count(label="Failed sign-ins"), _terms("2", "user.name", 10, "segment", "User")),
        search="failed-sign-ins",
    ),
    Visualisation(
        "actions-by-product-group",
        "Actions by product and group",
        "How many actions each product and catalog group produced.",
        "table",
        _table_params(20),
        (
            _count(label="Actions"),
            _terms("2", "audit.product", 10, "bucket", "Product"),
            _terms("3", "audit.group", 50, "bucket", "Group"),
        ),
    ),
    Visualisation(
        "top-source-ips",
        "Top source IPs",
        "Client IPs with the most actions, and how many distinct users acted from each.",
        "table",
        _table_params(20),
        (
            _count(label="Actions"),
            {
                "id": "3",
                "enabled": True,
                "type": "cardinality",
                "schema": "metric",
                "params": {"field": f("related.user"), "customLabel": "Distinct users"},
            },
            _terms("2", "source.ip", 20, "bucket", "Source IP"),
        ),
    ),
)

DASHBOARD_TITLE = "User actions"


# -- ids ------------------------------------------------------------------------------


def index_pattern_id(prefix: str = DEFAULT_PREFIX) -> str:
    return read_alias(prefix)


def search_id(slug: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}-search-{slug}"


def vis_id(slug: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}-vis-{slug}"


def dashboard_id(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}-dashboard-user-actions"


# -- rendering ------------------------------------------------------------------------

_OSD_TYPE = {
    Kind.KEYWORD: "string",
    Kind.NAME: "string",
    Kind.TEXT: "string",
    Kind.IP: "ip",
    Kind.DATE: "date",
    Kind.INTEGER: "number",
    Kind.BOOLEAN: "boolean",
}
_ES_TYPE = {
    Kind.KEYWORD: "keyword",
    Kind.NAME: "keyword",
    Kind.TEXT: "text",
    Kind.IP: "ip",
    Kind.DATE: "date",
    Kind.INTEGER: "integer",
    Kind.BOOLEAN: "boolean",
}


def _field_spec(
    name: str, osd_type: str, es_type: str, *, aggregatable: bool, parent: str | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "type": osd_type,
        "esTypes": [es_type],
        "count": 0,
        "scripted": False,
        "searchable": True,
        "aggregatable": aggregatable,
        "readFromDocValues": aggregatable,
    }
    if parent:
        spec["subType"] = {"multi": {"parent": parent}}
    return spec


def index_pattern_fields() -> list[dict[str, Any]]:
    """The index pattern's field list, as Dashboards would build it from ``_field_caps``.

    ``audit.params`` (flat_object) is left out: Dashboards 2.19 has no field
    type for it. It still shows in every document; "Refresh field list" adds it.
    """
    specs = [
        {
            "name": "_id",
            "type": "string",
            "esTypes": ["_id"],
            "count": 0,
            "scripted": False,
            "searchable": True,
            "aggregatable": True,
            "readFromDocValues": False,
        },
        {
            "name": "_index",
            "type": "string",
            "esTypes": ["_index"],
            "count": 0,
            "scripted": False,
            "searchable": True,
            "aggregatable": True,
            "readFromDocValues": False,
        },
        {
            "name": "_score",
            "type": "number",
            "count": 0,
            "scripted": False,
            "searchable": False,
            "aggregatable": False,
            "readFromDocValues": False,
        },
        {
            "name": "_source",
            "type": "_source",
            "esTypes": ["_source"],
            "count": 0,
            "scripted": False,
            "searchable": False,
            "aggregatable": False,
            "readFromDocValues": False,
        },
    ]
    for field in FIELDS:
        if field.kind is Kind.FLAT:
            continue
        text = field.kind is Kind.TEXT
        specs.append(
            _field_spec(
                field.name, _OSD_TYPE[field.kind], _ES_TYPE[field.kind], aggregatable=not text
            )
        )
        if field.kind is Kind.NAME:
            specs.append(
                _field_spec(
                    f"{field.name}.lower", "string", "keyword", aggregatable=True, parent=field.name
                )
            )
        elif text:
            specs.append(
                _field_spec(
                    f"{field.name}.keyword",
                    "string",
                    "keyword",
                    aggregatable=True,
                    parent=field.name,
                )
            )
    return sorted(specs, key=lambda s: s["name"])


def field_format_map() -> dict[str, Any]:
    """IPs shown as IPs, dates to the millisecond (audit trails need the order)."""
    formats: dict[str, Any] = {}
    for field in FIELDS:
        if field.kind is Kind.IP:
            formats[field.name] = {"id": "ip"}
        elif field.kind is Kind.DATE:
            formats[field.name] = {"id": "date", "params": {"pattern": DATE_PATTERN}}
    return formats


def _search_source(kuery: str, *, with_index: bool = True) -> str:
    source: dict[str, Any] = {"query": {"query": kuery, "language": "kuery"}, "filter": []}
    if with_index:
        source["indexRefName"] = INDEX_REF
    return json.dumps(source, sort_keys=True)


def _index_ref(prefix: str) -> dict[str, str]:
    return {"name": INDEX_REF, "type": "index-pattern", "id": index_pattern_id(prefix)}


def render_objects(prefix: str = DEFAULT_PREFIX) -> list[dict[str, Any]]:
    """Every saved object for ``prefix``, dependencies first."""
    objects: list[dict[str, Any]] = [
        {
            "type": "index-pattern",
            "id": index_pattern_id(prefix),
            "attributes": {
                "title": read_alias(prefix),
                "timeFieldName": f("@timestamp"),
                "fields": json.dumps(index_pattern_fields(), sort_keys=True),
                "fieldFormatMap": json.dumps(field_format_map(), sort_keys=True),
            },
            "references": [],
            "migrationVersion": {"index-pattern": MIGRATION_VERSION["index-pattern"]},
        }
    ]
    for s in SEARCHES:
        objects.append(
            {
                "type": "search",
                "id": search_id(s.slug, prefix),
                "attributes": {
                    "title": s.title,
                    "description": s.description,
                    "hits": 0,
                    "columns": list(s.columns),
                    "sort": [[f("@timestamp"), "desc"]],
                    "version": 1,
                    "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(s.kuery)},
                },
                "references": [_index_ref(prefix)],
                "migrationVersion": {"search": MIGRATION_VERSION["search"]},
            }
        )
    for v in VISUALISATIONS:
        vis_state = {"title": v.title, "type": v.vis_type, "params": v.params, "aggs": list(v.aggs)}
        attributes: dict[str, Any] = {
            "title": v.title,
            "description": v.description,
            "visState": json.dumps(vis_state, sort_keys=True),
            "uiStateJSON": "{}",
            "version": 1,
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": _search_source(v.kuery, with_index=v.search is None)
            },
        }
        if v.search is not None:
            attributes["savedSearchRefName"] = "search_0"
            references = [{"name": "search_0", "type": "search", "id": search_id(v.search, prefix)}]
        else:
            references = [_index_ref(prefix)]
        objects.append(
            {
                "type": "visualization",
                "id": vis_id(v.slug, prefix),
                "attributes": attributes,
                "references": references,
                "migrationVersion": {"visualization": MIGRATION_VERSION["visualization"]},
            }
        )
    objects.append(_dashboard(prefix))
    return objects


def _dashboard(prefix: str) -> dict[str, Any]:
    # A 48-column grid: visualisations two per row, then the searches full width.
    panels: list[tuple[str, str, int, int, int, int]] = []  # (type, id, x, y, w, h)
    for i, v in enumerate(VISUALISATIONS):
        panels.append(
            ("visualization", vis_id(v.slug, prefix), (i % 2) * 24, (i // 2) * 15, 24, 15)
        )
    y = ((len(VISUALISATIONS) + 1) // 2) * 15
    for s in SEARCHES:
        panels.append(("search", search_id(s.slug, prefix), 0, y, 48, 15))
        y += 15
    panels_json = []
    references = []
    for n, (kind, obj_id, x, py, w, h) in enumerate(panels):
        index = str(n + 1)
        panels_json.append(
            {
                "embeddableConfig": {},
                "gridData": {"x": x, "y": py, "w": w, "h": h, "i": index},
                "panelIndex": index,
                "version": PANEL_VERSION,
                "panelRefName": f"panel_{n}",
            }
        )
        references.append({"name": f"panel_{n}", "type": kind, "id": obj_id})
    return {
        "type": "dashboard",
        "id": dashboard_id(prefix),
        "attributes": {
            "title": DASHBOARD_TITLE,
            "description": "Who did what: sign-ins, role and token changes, impersonation, exports",
            "hits": 0,
            "panelsJSON": json.dumps(panels_json, sort_keys=True),
            "optionsJSON": json.dumps(
                {"hidePanelTitles": False, "useMargins": True}, sort_keys=True
            ),
            "version": 1,
            "timeRestore": True,
            "timeFrom": "now-7d",
            "timeTo": "now",
            "refreshInterval": {"pause": True, "value": 0},
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": json.dumps(
                    {"query": {"query": "", "language": "kuery"}, "filter": []}, sort_keys=True
                )
            },
        },
        "references": references,
        "migrationVersion": {"dashboard": MIGRATION_VERSION["dashboard"]},
    }


def dumps_line(obj: dict[str, Any]) -> str:
    """One NDJSON line, in the canonical form the committed file uses."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


def render_ndjson(prefix: str = DEFAULT_PREFIX) -> str:
    return "".join(dumps_line(o) + "\n" for o in render_objects(prefix))


def ndjson(prefix: str = DEFAULT_PREFIX) -> str:
    """What ``import`` sends: the committed file for the default prefix, else a rendering."""
    if prefix == DEFAULT_PREFIX:
        return GOLDEN_NDJSON.read_text(encoding="utf-8")
    return render_ndjson(prefix)


def write_golden() -> None:
    GOLDEN_NDJSON.write_text(render_ndjson(), encoding="utf-8")
