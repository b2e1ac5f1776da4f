"""The zone list: canonical IANA zones only, found by city; old names mapped to them."""

from __future__ import annotations

from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from useraudit.webapp.zones import canonical, datalist_options, find, offered

from .conftest import login, make_app


def _tzdata(name: str) -> str:
    return (resources.files("tzdata") / "zoneinfo" / name).read_text(encoding="utf-8")


def _table(name: str) -> set[str]:
    return {line.split("\t")[2] for line in _tzdata(name).splitlines() if line and line[0] != "#"}


# Old names (tzdata's "backward" file) and the canonical zone each became.
DEPRECATED = {
    "Europe/Kiev": "Europe/Kyiv",
    "Asia/Calcutta": "Asia/Kolkata",
    "Asia/Saigon": "Asia/Ho_Chi_Minh",
    "Asia/Rangoon": "Asia/Yangon",
    "Asia/Katmandu": "Asia/Kathmandu",
    "America/Buenos_Aires": "America/Argentina/Buenos_Aires",
    "Pacific/Enderbury": "Pacific/Kanton",
    "US/Eastern": "America/New_York",
    "Europe/Belfast": "Europe/London",
    "Etc/UTC": "UTC",
    "GMT": "UTC",
}


def test_the_list_holds_only_canonical_zones() -> None:
    names = offered()
    assert names[0] == "UTC" and len(names) == len(set(names))
    assert 300 < len(names) < 450  # not the ~600 names of available_timezones()
    zones = {line.split()[1] for line in _tzdata("tzdata.zi").splitlines() if line[:2] == "Z "}
    links = {line.split()[2] for line in _tzdata("tzdata.zi").splitlines() if line[:2] == "L "}
    by_country = _table("zone.tab")
    for name in names[1:]:
        # A zone of its own, or a country's zone in zone.tab that tzdata now
        # shares with a neighbour (Europe/Amsterdam); never a legacy alias.
        assert name in zones or (name in links and name in by_country), name
        assert "/" in name and not name.startswith(("Etc/", "US/", "SystemV/")), name
        ZoneInfo(name)
    assert not [n for n in names if n.startswith("Etc/GMT")]  # Etc/GMT+7 is UTC−7
    # Every alias that is no country's zone (the "backward" names) is left out.
    assert not (links - by_country - _table("zone1970.tab")) & set(names[1:])
    for old, new in DEPRECATED.items():
        assert old not in names and new in names, old


@pytest.mark.parametrize(
    ("typed", "zone"),
    [
        ("berlin", "Europe/Berlin"),
        ("Europe/Berlin", "Europe/Berlin"),
        ("new york", "America/New_York"),
        ("São Paulo", "America/Sao_Paulo"),
        ("sao_paulo", "America/Sao_Paulo"),
        ("ho chi minh", "Asia/Ho_Chi_Minh"),
        ("buenos aires", "America/Argentina/Buenos_Aires"),
        *DEPRECATED.items(),
    ],
)
def test_a_zone_is_found_by_city_or_old_name(typed: str, zone: str) -> None:
    assert find(typed) == zone
    if "/" in typed and typed in DEPRECATED:
        assert canonical(typed) == zone


@pytest.mark.parametrize("typed", ["nowhere", "Etc/GMT+7", "", "Europe"])
def test_nothing_is_guessed(typed: str) -> None:
    assert find(typed) is None


def test_the_datalist_offers_each_zone_with_its_offset() -> None:
    html = str(datalist_options())
    assert html.count("<option ") == len(offered())
    assert '<option value="Asia/Kolkata">UTC+05:30</option>' in html
    assert 'value="Etc/GMT+7"' not in html and 'value="Europe/Kiev"' not in html


def test_the_page_takes_a_city_or_an_old_name(seeded_store: Any, users_db: Any) -> None:
    """?tz=berlin shows Europe/Berlin (the field, its offset, the links built from it)."""
    client = make_app(seeded_store, users_db).test_client()
    login(client, "alice")
    for typed, zone in (("berlin", "Europe/Berlin"), ("Europe/Kiev", "Europe/Kyiv")):
        html = client.get(f"/a/acme/actions?tz={typed}").get_data(as_text=True)
        assert f'name="tz" value="{zone}"' in html
        assert f"tz={zone.replace('/', '%2F')}" in html
    bad = client.get("/a/acme/actions?tz=nowhere")
    assert bad.status_code == 400 and "unknown time zone" in bad.get_data(as_text=True)
