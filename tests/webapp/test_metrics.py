"""The web app's Prometheus endpoint: off by default, search latency when on."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from .conftest import login, make_app


def search_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == "useraudit_search_seconds":
            for sample in family.samples:
                if sample.name.endswith("_count") and sample.labels == {"route": "actions"}:
                    return sample.value
    return 0.0


def test_metrics_are_off_unless_configured(app: Any) -> None:
    assert app.test_client().get("/metrics").status_code == 404


def test_search_latency_is_measured(seeded_store: Any, users_db: Any, audit_spool: Any) -> None:
    app = make_app(seeded_store, users_db, USERAUDIT_METRICS=True)
    client = app.test_client()
    before = search_count(client.get("/metrics").get_data(as_text=True))
    assert login(client, "alice").status_code == 302
    for _ in range(3):
        assert client.get("/a/acme/actions?period=30d").status_code == 200
    after = client.get("/metrics")
    assert after.status_code == 200 and after.mimetype == "text/plain"
    assert search_count(after.get_data(as_text=True)) == before + 3
