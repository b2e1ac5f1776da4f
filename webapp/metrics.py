"""Prometheus metrics of the web app: search latency, served at ``/metrics``.

Off unless ``USERAUDIT_METRICS`` is true in the app's config (environment
``USERAUDIT_METRICS=1`` for ``useraudit web``): the numbers hold no tenant
data, but an operator decides who may read them (serve ``/metrics`` only on
an internal listener, or block it at the proxy).
"""

from __future__ import annotations

from flask import Flask, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest

REGISTRY = CollectorRegistry()
SEARCH_SECONDS = Histogram(
    "useraudit_search_seconds",
    "Time the store took to answer a search of the User actions page or the API.",
    labelnames=["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)


def install(app: Flask) -> None:
    if not app.config.get("USERAUDIT_METRICS"):
        return

    def metrics() -> Response:
        return Response(generate_latest(REGISTRY), mimetype=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "useraudit_metrics", metrics)
