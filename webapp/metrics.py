"""Prometheus metrics of the web app: search latency, served at ``/metrics``.

Off unless ``USERAUDIT_METRICS`` is true in the app's config (environment
``USERAUDIT_METRICS=1`` for ``useraudit web``): the numbers hold no tenant
data, but an operator decides who may read them (serve ``/metrics`` only on
an internal listener, or block it at the proxy).
"""

from __future__ import annotations

from flask import Flask, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)

REGISTRY = CollectorRegistry()
SEARCH_SECONDS = Histogram(
    "useraudit_search_seconds",
    "Time the store took to answer a search of the User actions page or the API.",
    labelnames=["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)


CAPTURE_TO_SEARCHABLE = Gauge(
    "useraudit_capture_to_searchable_ms",
    "Latest canary run (`useraudit canary`): capture-to-searchable latency.",
    labelnames=["quantile"],
    registry=REGISTRY,
)
COMPLETE_UP_TO = Gauge(
    "useraudit_complete_up_to_seconds",
    "The completeness mark (epoch seconds): every acknowledged event before it is searchable.",
    registry=REGISTRY,
)


def _read_integrity_figures() -> None:
    """The canary's last figures and the completeness mark, from the store, at each scrape."""
    from useraudit.store.base import StoreError
    from useraudit.store.completeness import complete_up_to, last_canary

    from . import resources

    try:
        store = resources.store()
        canary = last_canary(store)
        mark = complete_up_to(store)
    except StoreError:
        return
    for quantile, key in (("0.5", "p50_ms"), ("0.99", "p99_ms")):
        if isinstance(canary.get(key), (int, float)):
            CAPTURE_TO_SEARCHABLE.labels(quantile).set(canary[key])
    if mark is not None:
        COMPLETE_UP_TO.set(mark.timestamp())


def install(app: Flask) -> None:
    if not app.config.get("USERAUDIT_METRICS"):
        return

    def metrics() -> Response:
        _read_integrity_figures()
        return Response(generate_latest(REGISTRY), mimetype=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "useraudit_metrics", metrics)
