"""GeoIP enrichment: ECS ``source.geo.*`` and ``source.as.*`` from MaxMind-format MMDB files.

An indexer stage (``prepare``): each event with a ``source.ip`` is looked up
in a City or Country database (GeoLite2 or commercial, any MMDB of that
layout) and an ASN database, configured by path::

    useraudit indexer run --geoip-city /var/lib/GeoIP/GeoLite2-City.mmdb \\
                          --geoip-asn /var/lib/GeoIP/GeoLite2-ASN.mmdb

Fields written when the database has them: ``source.geo.country_iso_code``,
``source.geo.country_name``, ``source.geo.continent_name``,
``source.geo.region_name``, ``source.geo.city_name``,
``source.geo.location.lat``/``lon``, ``source.as.number``,
``source.as.organization.name``. Private and unknown addresses get none.

Files are read with MaxMind's ``maxminddb`` reader (memory-mapped, C
extension when built), and lookups are cached per address. What the
databases provide decides which geo rules can run (:attr:`levels`):
``country`` for new-country, ``city`` (locations) for impossible travel.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import maxminddb

from useraudit.stages import Stage

GEO_FIELDS = (
    "source.geo.country_iso_code",
    "source.geo.country_name",
    "source.geo.continent_name",
    "source.geo.region_name",
    "source.geo.city_name",
    "source.geo.location.lat",
    "source.geo.location.lon",
    "source.as.number",
    "source.as.organization.name",
)


class GeoIPError(ValueError):
    """A GeoIP database that cannot be used; the message says which and why."""


def _open(path: Path, what: str) -> Any:
    try:
        return maxminddb.open_database(str(path))
    except (OSError, maxminddb.InvalidDatabaseError, ValueError) as exc:
        raise GeoIPError(f"cannot open the GeoIP {what} database {path}: {exc}") from exc


class GeoIPStage(Stage):
    name = "geoip"

    def __init__(
        self, city: Path | str | None = None, asn: Path | str | None = None, cache: int = 50_000
    ) -> None:
        self.city_path = Path(city) if city else None
        self.asn_path = Path(asn) if asn else None
        self.city = _open(self.city_path, "city/country") if self.city_path else None
        self.asn = _open(self.asn_path, "ASN") if self.asn_path else None
        self.levels: set[str] = set()
        if self.city is not None:
            kind = str(self.city.metadata().database_type)
            self.levels.add("country")
            if "City" in kind or "city" in kind:
                self.levels.add("city")
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._cache_size = cache

    def describe(self) -> str:
        parts = []
        if self.city is not None:
            parts.append(f"{self.city_path} ({self.city.metadata().database_type})")
        if self.asn is not None:
            parts.append(f"{self.asn_path} ({self.asn.metadata().database_type})")
        return ", ".join(parts) or "no database"

    def lookup(self, ip: str) -> dict[str, Any]:
        """ECS fields for one address ({} when the databases know nothing of it)."""
        hit = self._cache.get(ip)
        if hit is not None:
            self._cache.move_to_end(ip)
            return hit
        out: dict[str, Any] = {}
        try:
            if self.city is not None:
                _city_fields(self.city.get(ip), out)
            if self.asn is not None:
                _asn_fields(self.asn.get(ip), out)
        except ValueError:
            out = {}  # not an address the database can look up
        self._cache[ip] = out
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def prepare(self, doc: dict) -> None:
        ip = doc.get("source.ip")
        if ip:
            doc.update(self.lookup(ip))

    def delivered(self, docs: Any, results: Any) -> None:
        pass

    def close(self) -> None:
        for reader in (self.city, self.asn):
            if reader is not None:
                reader.close()


def _name(record: Any) -> str | None:
    if isinstance(record, dict):
        names = record.get("names")
        if isinstance(names, dict):
            return names.get("en") or next(iter(names.values()), None)
    return None


def _city_fields(record: Any, out: dict[str, Any]) -> None:
    if not isinstance(record, dict):
        return
    country = record.get("country") or record.get("registered_country")
    if isinstance(country, dict):
        if country.get("iso_code"):
            out["source.geo.country_iso_code"] = str(country["iso_code"])
        if _name(country):
            out["source.geo.country_name"] = _name(country)
    if _name(record.get("continent")):
        out["source.geo.continent_name"] = _name(record.get("continent"))
    subdivisions = record.get("subdivisions")
    if isinstance(subdivisions, list) and subdivisions and _name(subdivisions[0]):
        out["source.geo.region_name"] = _name(subdivisions[0])
    if _name(record.get("city")):
        out["source.geo.city_name"] = _name(record.get("city"))
    location = record.get("location")
    if isinstance(location, dict) and location.get("latitude") is not None:
        out["source.geo.location.lat"] = float(location["latitude"])
        out["source.geo.location.lon"] = float(location["longitude"])


def _asn_fields(record: Any, out: dict[str, Any]) -> None:
    if not isinstance(record, dict):
        return
    if record.get("autonomous_system_number") is not None:
        out["source.as.number"] = int(record["autonomous_system_number"])
    if record.get("autonomous_system_organization"):
        out["source.as.organization.name"] = str(record["autonomous_system_organization"])
