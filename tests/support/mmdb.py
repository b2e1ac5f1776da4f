"""Small MaxMind-format databases for tests, written with mmdb-writer (no downloaded data).

The networks are documentation and test ranges placed in real cities, so
tests read like the world: 198.51.100.0/24 is Berlin, 203.0.113.0/24 Sydney...
"""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MmdbF64, MmdbU32, MMDBWriter
from netaddr import IPSet

# network → (country iso, country name, continent, city, lat, lon, asn, as org)
PLACES: dict[str, tuple[str, str, str, str, float, float, int, str]] = {
    "198.51.100.0/24": ("DE", "Germany", "Europe", "Berlin", 52.52, 13.405, 64500, "Spree Net"),
    "203.0.113.0/24": (
        "AU",
        "Australia",
        "Oceania",
        "Sydney",
        -33.8688,
        151.2093,
        64501,
        "Harbour",
    ),
    "192.0.2.0/24": ("DE", "Germany", "Europe", "Kehl", 48.5722, 7.8156, 64502, "Rhein Net"),
    "100.64.1.0/24": ("FR", "France", "Europe", "Strasbourg", 48.5734, 7.7521, 64503, "Alsace"),
    "100.64.2.0/24": (
        "BR",
        "Brazil",
        "South America",
        "São Paulo",
        -23.55,
        -46.63,
        64504,
        "Paulista",
    ),
    "2001:db8:1::/48": ("DE", "Germany", "Europe", "Berlin", 52.52, 13.405, 64500, "Spree Net"),
}


def _both(network: str) -> IPSet:
    return IPSet([network])


def write_city(path: Path, country_only: bool = False) -> Path:
    """A GeoIP2-City (or -Country) layout database of :data:`PLACES`."""
    kind = "GeoIP2-Country" if country_only else "GeoIP2-City"
    writer = MMDBWriter(ip_version=6, database_type=kind, languages=["en"], ipv4_compatible=True)
    for network, (iso, country, continent, city, lat, lon, _asn, _org) in PLACES.items():
        record: dict = {
            "country": {"iso_code": iso, "names": {"en": country}},
            "continent": {"names": {"en": continent}},
        }
        if not country_only:
            record["city"] = {"names": {"en": city}}
            record["location"] = {"latitude": MmdbF64(lat), "longitude": MmdbF64(lon)}
        writer.insert_network(_both(network), record)
    writer.to_db_file(str(path))
    return path


def write_asn(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True)
    for network, (*_rest, asn, org) in PLACES.items():
        writer.insert_network(
            _both(network),
            {"autonomous_system_number": MmdbU32(asn), "autonomous_system_organization": org},
        )
    writer.to_db_file(str(path))
    return path
