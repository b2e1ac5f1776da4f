"""The events index template the OpenSearch store installs, rendered from :mod:`useraudit.schema`.

Indices are time-based, named from each event's own ``@timestamp``
(``useraudit-events-2026.11`` monthly, or ``…-2026.11.27`` daily), and all
join the read alias ``useraudit-events``. The target index is a pure
function of the event, so a redelivered event meets its first copy in the
same index and ``op_type=create`` turns it into a no-op. We deliberately use
no rollover write alias or data stream: after a rollover a retry would land
in the new index and duplicate.

``index_templates/events.json`` is this template for prefix ``useraudit``,
committed for reviewers and Dashboards users (``make regen`` rewrites it).
"""

from __future__ import annotations

import copy
from typing import Any

from useraudit.schema import FIELDS, SCHEMA_VERSION, Field, Kind

DEFAULT_PREFIX = "useraudit"
NORMALIZER = "useraudit_lowercase"
# Full text: words lowercased and stemmed, English then Russian Snowball (each
# stemmer leaves the other script's words alone). The SQLite store stems the
# same way with the same algorithms (store/sqlite/stems.py).
TEXT_ANALYZER = "useraudit_text"
ANALYSIS: dict[str, Any] = {
    "normalizer": {NORMALIZER: {"type": "custom", "filter": ["lowercase", "asciifolding"]}},
    "filter": {
        "useraudit_english": {"type": "snowball", "language": "English"},
        "useraudit_russian": {"type": "snowball", "language": "Russian"},
    },
    "analyzer": {
        TEXT_ANALYZER: {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["lowercase", "useraudit_english", "useraudit_russian"],
        }
    },
}


def template_name(prefix: str) -> str:
    return f"{prefix}-events"


def index_pattern(prefix: str) -> str:
    return f"{prefix}-events-*"


def read_alias(prefix: str) -> str:
    return f"{prefix}-events"


def _mapping(field: Field) -> dict[str, Any]:
    kind = field.kind
    if kind is Kind.KEYWORD:
        return {"type": "keyword", "ignore_above": field.max_chars}
    if kind is Kind.NAME:
        # Exact value for display and facets; `.lower` for case-insensitive search.
        return {
            "type": "keyword",
            "ignore_above": field.max_chars,
            "fields": {
                "lower": {
                    "type": "keyword",
                    "normalizer": NORMALIZER,
                    "ignore_above": field.max_chars,
                }
            },
        }
    if kind is Kind.TEXT:
        return {
            "type": "text",
            "analyzer": TEXT_ANALYZER,
            "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}},
        }
    if kind is Kind.IP:
        return {"type": "ip"}
    if kind is Kind.DATE:
        return {"type": "date", "format": "strict_date_optional_time||epoch_millis"}
    if kind is Kind.INTEGER:
        return {"type": "integer"}
    if kind is Kind.BOOLEAN:
        return {"type": "boolean"}
    if kind is Kind.FLAT:
        # Any shape of params, one mapping entry: cannot blow up the mapping.
        return {"type": "flat_object"}
    raise ValueError(f"no mapping for {kind}")


def properties() -> dict[str, Any]:
    """Nested ``properties`` for every schema field."""
    root: dict[str, Any] = {}
    for field in FIELDS:
        node = root
        parts = [field.name] if field.name == "@timestamp" else field.name.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[parts[-1]] = _mapping(field)
    return root


def render(
    prefix: str = DEFAULT_PREFIX, *, replicas: str = "0-1", refresh_interval: str = "5s"
) -> dict[str, Any]:
    """The composable index template body for ``PUT _index_template/<prefix>-events``."""
    return {
        "index_patterns": [index_pattern(prefix)],
        "priority": 200,
        "version": SCHEMA_VERSION,
        "_meta": {"managed_by": "useraudit", "schema_version": SCHEMA_VERSION},
        "template": {
            "aliases": {read_alias(prefix): {}},
            "settings": {
                "index": {
                    "number_of_shards": 1,
                    # One replica where there is a second node, none on a single node.
                    "auto_expand_replicas": replicas,
                    "refresh_interval": refresh_interval,
                    "mapping": {"total_fields": {"limit": 200}},
                },
                "analysis": copy.deepcopy(ANALYSIS),
            },
            "mappings": {
                # Unknown fields stay in _source but never create mappings.
                "dynamic": "false",
                "date_detection": False,
                "properties": properties(),
            },
        },
    }
