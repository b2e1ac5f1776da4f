"""Country (GeoIP) as a User actions filter: parsed from the URL into the store query."""

from __future__ import annotations

from datetime import UTC, datetime

from werkzeug.datastructures import MultiDict

from useraudit.webapp.filters import FACET_LABELS, Filters


def test_country_parameter_filters_by_iso_code() -> None:
    """?country=DE&country=FR becomes Query.countries, OR within."""
    args = MultiDict([("country", "DE"), ("country", "FR")])
    query = Filters.parse(args, "UTC").query("acme", datetime.now(UTC))
    assert query.countries == ("DE", "FR")
    assert FACET_LABELS["country"] == "Country"


def test_country_filter_on_the_page(as_user) -> None:  # type: ignore[no-untyped-def]
    """The page accepts the filter and shows it as a chip."""
    client = as_user("alice")
    response = client.get("/a/acme/actions?country=DE")
    assert response.status_code == 200
    assert "Country" in response.get_data(as_text=True)
