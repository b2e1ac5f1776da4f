"""The shipped saved objects: well-formed, self-consistent, in sync, and on real fields."""

from __future__ import annotations

import json
from collections import Counter

from click.testing import CliRunner

from useraudit.cli import COMMANDS, main
from useraudit.index_templates import GOLDEN
from useraudit.index_templates import saved_objects as dc
from useraudit.schema import FIELD_BY_NAME

from .dql import parse
from .objects import (
    field_uses,
    flatten_mapping,
    kuery,
    lines,
    search_source,
    type_problems,
    vis_state,
)

NESTED_JSON = ("visState", "uiStateJSON", "panelsJSON", "optionsJSON", "fields", "fieldFormatMap")


def committed() -> list[dict]:
    return lines(dc.GOLDEN_NDJSON.read_text(encoding="utf-8"))


def template_mapping() -> dict[str, str]:
    body = json.loads(GOLDEN.read_text())
    return flatten_mapping(body["template"]["mappings"]["properties"])


def test_committed_ndjson_is_the_rendering() -> None:
    """The committed NDJSON equals what the generator renders from the schema."""
    assert dc.GOLDEN_NDJSON.read_text(encoding="utf-8") == dc.render_ndjson(), (
        "run: useraudit dashboards export-ndjson > index_templates/dashboards/useraudit.ndjson"
    )


def test_every_line_round_trips() -> None:
    """Each NDJSON line parses, re-serialises to the identical line, and is one object per line."""
    text = dc.GOLDEN_NDJSON.read_text(encoding="utf-8")
    assert text.endswith("\n") and "\n\n" not in text
    for line in text.splitlines():
        obj = json.loads(line)
        assert isinstance(obj, dict)
        assert json.loads(json.dumps(obj)) == obj
        assert dc.dumps_line(obj) == line


def test_nested_json_strings_parse_and_round_trip() -> None:
    """visState, searchSourceJSON, panelsJSON, fields etc. are valid JSON strings."""
    for obj in committed():
        attrs = obj["attributes"]
        nested = {k: attrs[k] for k in NESTED_JSON if k in attrs}
        if "kibanaSavedObjectMeta" in attrs:
            nested["searchSourceJSON"] = attrs["kibanaSavedObjectMeta"]["searchSourceJSON"]
        assert nested, obj["id"]
        for key, value in nested.items():
            assert isinstance(value, str), (obj["id"], key)
            parsed = json.loads(value)
            assert json.loads(json.dumps(parsed)) == parsed


def test_object_shapes() -> None:
    """Every object has the saved-object envelope and the attributes its type needs."""
    required = {
        "index-pattern": {"title", "timeFieldName", "fields", "fieldFormatMap"},
        "search": {"title", "columns", "sort", "kibanaSavedObjectMeta"},
        "visualization": {"title", "visState", "uiStateJSON", "kibanaSavedObjectMeta"},
        "dashboard": {"title", "panelsJSON", "optionsJSON", "timeRestore", "kibanaSavedObjectMeta"},
    }
    objects = committed()
    assert Counter(o["type"] for o in objects) == {
        "index-pattern": 1,
        "search": 5,
        "visualization": 4,
        "dashboard": 1,
    }
    for obj in objects:
        assert set(obj) == {"type", "id", "attributes", "references", "migrationVersion"}, obj["id"]
        assert required[obj["type"]] <= set(obj["attributes"]), obj["id"]
        assert obj["migrationVersion"] == {obj["type"]: dc.MIGRATION_VERSION[obj["type"]]}
        if obj["type"] == "visualization":
            assert vis_state(obj)["title"] == obj["attributes"]["title"]


def test_ids_unique_stable_and_prefixed() -> None:
    """Ids are unique, carry the index prefix, and are the documented stable ones."""
    objects = committed()
    ids = [o["id"] for o in objects]
    assert len(ids) == len(set(ids))
    assert all(i.startswith("useraudit-") for i in ids)
    assert {
        "useraudit-events",
        "useraudit-search-failed-sign-ins",
        "useraudit-dashboard-user-actions",
    } <= set(ids)


def test_titles_are_the_requested_ones() -> None:
    """The saved searches, visualisations and dashboard carry the titles the issue asked for."""
    titles = {o["type"]: set() for o in committed()}
    for o in committed():
        titles[o["type"]].add(o["attributes"]["title"])
    assert titles["search"] == {
        "Failed sign-ins",
        "Role and permission changes",
        "API token activity",
        "Actions by impersonators",
        "Exports and downloads",
    }
    assert titles["visualization"] == {
        "Sign-ins over time by outcome",
        "Top users by failed sign-ins",
        "Actions by product and group",
        "Top source IPs",
    }
    assert titles["dashboard"] == {"User actions"}
    assert titles["index-pattern"] == {"useraudit-events"}


def test_references_resolve_within_the_file() -> None:
    """Every reference points at an object in the file, and every ref name used is declared."""
    objects = committed()
    present = {(o["type"], o["id"]) for o in objects}
    for obj in objects:
        names = {r["name"] for r in obj["references"]}
        assert len(names) == len(obj["references"]), obj["id"]
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in present, (obj["id"], ref)
        used: set[str] = set()
        source = search_source(obj)
        if "indexRefName" in source:
            used.add(source["indexRefName"])
        assert "index" not in source, "a raw index id would bypass references"
        if "savedSearchRefName" in obj["attributes"]:
            used.add(obj["attributes"]["savedSearchRefName"])
        if obj["type"] == "dashboard":
            used |= {p["panelRefName"] for p in json.loads(obj["attributes"]["panelsJSON"])}
        assert used == names, obj["id"]
        # A search or visualisation must reach the index pattern, directly or via a search.
        if obj["type"] in ("search", "visualization"):
            assert len(obj["references"]) == 1 and obj["references"][0]["type"] in (
                "index-pattern",
                "search",
            )


def test_dashboard_shows_every_visualisation_and_search_without_overlap() -> None:
    """The dashboard has one panel per visualisation and search, none overlapping."""
    objects = committed()
    board = next(o for o in objects if o["type"] == "dashboard")
    panel_ids = {(r["type"], r["id"]) for r in board["references"]}
    assert panel_ids == {
        (o["type"], o["id"]) for o in objects if o["type"] in ("visualization", "search")
    }
    cells: set[tuple[int, int]] = set()
    for panel in json.loads(board["attributes"]["panelsJSON"]):
        g = panel["gridData"]
        assert g["i"] == panel["panelIndex"] and 0 <= g["x"] and g["x"] + g["w"] <= 48
        area = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & area, panel
        cells |= area


def test_every_referenced_field_is_in_the_template_with_a_usable_type() -> None:
    """Fields in queries, aggs, columns, sort, formats exist in events.json with usable types."""
    objects = committed()
    assert type_problems(objects, template_mapping()) == []
    uses = {use for o in objects for _name, use in field_uses(o)}
    # The check really covered every kind of reference.
    assert {
        "query",
        "column",
        "sort",
        "time",
        "index-pattern-field",
        "format:ip",
        "format:date",
        "agg:terms",
        "agg:date_histogram",
        "agg:cardinality",
    } <= uses


def test_index_pattern_field_specs_agree_with_the_template() -> None:
    """Each index-pattern field's esTypes and aggregatable flag agree with the template mapping."""
    mapping = template_mapping()
    pattern = committed()[0]
    assert pattern["type"] == "index-pattern"
    specs = json.loads(pattern["attributes"]["fields"])
    names = [s["name"] for s in specs]
    assert len(names) == len(set(names))
    for spec in specs:
        if spec["name"].startswith("_"):
            continue
        es_type = mapping[spec["name"]]
        assert spec["esTypes"] == [es_type], spec
        assert spec["aggregatable"] is (es_type != "text"), spec
    # Everything in the mapping is listed, except the flat_object Dashboards 2.19 cannot type.
    assert set(mapping) - set(names) == {"audit.params"}
    formats = json.loads(pattern["attributes"]["fieldFormatMap"])
    assert formats["source.ip"] == {"id": "ip"} and formats["related.ip"] == {"id": "ip"}
    assert formats["@timestamp"]["id"] == "date"


def test_saved_search_dql_parses_and_uses_schema_fields() -> None:
    """Each saved search's DQL parses and names only schema fields; its DSL sibling is attached."""
    by_title = {s.title: s for s in dc.SEARCHES}
    for obj in committed():
        if obj["type"] != "search":
            continue
        text = kuery(obj)
        assert text == by_title[obj["attributes"]["title"]].kuery
        assert parse(text).fields <= set(FIELD_BY_NAME)


def test_export_ndjson_for_another_prefix() -> None:
    """`dashboards export-ndjson --prefix acme` prints objects that read acme-events only."""
    result = CliRunner().invoke(main, ["dashboards", "export-ndjson", "--prefix", "acme"])
    assert result.exit_code == 0, result.output
    objects = lines(result.output)
    assert [o["type"] for o in objects] == [o["type"] for o in committed()]
    assert all(o["id"].startswith("acme-") for o in objects)
    assert objects[0]["attributes"]["title"] == "acme-events"
    assert "useraudit" not in result.output
    refs = {r["id"] for o in objects for r in o["references"]}
    assert refs <= {o["id"] for o in objects}


def test_export_ndjson_default_prefix_is_the_committed_file() -> None:
    """`dashboards export-ndjson` without options prints exactly the committed file."""
    result = CliRunner().invoke(main, ["dashboards", "export-ndjson"])
    assert result.exit_code == 0
    assert result.output == dc.GOLDEN_NDJSON.read_text(encoding="utf-8")


def test_cli_registers_dashboards() -> None:
    """The CLI registry lists the dashboards command group."""
    assert COMMANDS["dashboards"] == ("useraudit.index_templates.dashboards_commands", "dashboards")
    result = CliRunner().invoke(main, ["dashboards", "--help"])
    assert result.exit_code == 0 and "import" in result.output and "export-ndjson" in result.output


def test_field_helper_rejects_unknown_fields() -> None:
    """The generator's field helper refuses a name the schema does not have."""
    try:
        dc.f("user.nmae")
    except KeyError:
        pass
    else:
        raise AssertionError("f() accepted a typo")
    assert dc.f("user.name.lower") == "user.name.lower"
