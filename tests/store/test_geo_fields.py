"""GeoIP fields on both backends: country as a filter and a facet; old SQLite files upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from useraudit.store.base import Store
from useraudit.store.query import Query, SearchRequest
from useraudit.store.sqlite import FILE_VERSION, SQLiteStore

from .conftest import ACCOUNT, DATASET, write_all

GEO = {
    "a01": ("DE", "Germany", "Berlin", 64500, "Spree Net"),
    "a02": ("FR", "France", "Strasbourg", 64503, "Alsace"),
    "a05": ("DE", "Germany", "Berlin", 64500, "Spree Net"),
}


def with_geo(enricher, events: list[dict]) -> list[dict]:  # type: ignore[no-untyped-def]
    docs = []
    for e in events:
        doc = enricher(e)
        if doc["event.id"] in GEO:
            iso, country, city, asn, org = GEO[doc["event.id"]]
            doc.update(
                {
                    "source.geo.country_iso_code": iso,
                    "source.geo.country_name": country,
                    "source.geo.city_name": city,
                    "source.as.number": asn,
                    "source.as.organization.name": org,
                }
            )
        docs.append(doc)
    return docs


def test_country_filter_and_facet(store: Store, enricher) -> None:  # type: ignore[no-untyped-def]
    """countries= filters by ISO code (OR within); the country facet counts; fields come back."""
    write_all(store, with_geo(enricher, DATASET))
    found = store.search(SearchRequest(Query(ACCOUNT, countries=("DE",)), facets=("country",)))
    assert sorted(h["event.id"] for h in found.hits) == ["a01", "a05"]
    assert found.hits[0]["source.geo.city_name"] == "Berlin"
    assert found.hits[0]["source.as.number"] == 64500
    both = store.count(Query(ACCOUNT, countries=("DE", "FR")))
    assert both == 3
    facets = store.search(SearchRequest(Query(ACCOUNT), facets=("country",))).facets["country"]
    assert dict(facets) == {"DE": 2, "FR": 1}


def test_a_version_7_file_gains_the_geo_columns(tmp_path: Path, enricher) -> None:  # type: ignore[no-untyped-def]
    """A pre-GeoIP file upgrades in place: old answers stay, new events filter by country."""
    path = tmp_path / "audit.db"
    store = SQLiteStore(f"sqlite:///{path}")
    write_all(store, [enricher(e) for e in DATASET[:8]])
    store.close()
    with sqlite3.connect(path) as con:  # turn it back into a version 7 file
        con.execute("DROP INDEX events_hot")
        for col in (
            "source_geo_country_iso_code",
            "source_geo_country_name",
            "source_geo_city_name",
            "source_as_number",
            "source_as_organization_name",
        ):
            con.execute(f"ALTER TABLE events DROP COLUMN {col}")
        con.execute("ALTER TABLE facet_combos DROP COLUMN source_geo_country_iso_code")
        con.execute("UPDATE facet_combos SET key = json_remove(key, '$[#-1]')")
        con.execute("PRAGMA user_version = 7")
    upgraded = SQLiteStore(f"sqlite:///{path}")
    try:
        assert f"file version {FILE_VERSION}" in upgraded.install()[0]
        assert upgraded.count(Query(ACCOUNT)) == 8
        write_all(upgraded, [enricher(e) for e in DATASET[8:]])
        assert upgraded.write(with_geo(enricher, DATASET[:1]))[0].status == "duplicate"
        late = with_geo(enricher, DATASET[:2])
        for doc in late:
            doc["event.id"] = "x" + doc["event.id"]
        write_all(upgraded, late)
        assert sorted(
            h["event.id"]
            for h in upgraded.search(SearchRequest(Query(ACCOUNT, countries=("FR",)))).hits
        ) == ["xa02"]
        facets = upgraded.search(SearchRequest(Query(ACCOUNT), facets=("country", "result"))).facets
        assert dict(facets["country"]) == {"DE": 1, "FR": 1}
        assert sum(n for _v, n in facets["result"]) == upgraded.count(Query(ACCOUNT))
    finally:
        upgraded.close()
