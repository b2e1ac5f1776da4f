"""Prometheus metrics of the web app: search latency, served at ``/metrics``.

Off unless ``USERAUDIT_METRICS`` is true in the app's config (environment
``USERAUDIT_METRICS=1`` for ``useraudit web``): the numbers hold no tenant
data, but an operator decides who may read them (serve ``/metrics`` only on
an internal listener, or block it at the proxy).
"""

from __future__ import annotations

from datetime import datetime

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
    "Canaries (`useraudit canary`, --every: the latest window): capture-to-searchable latency.",
    labelnames=["quantile"],
    registry=REGISTRY,
)
CANARY_PUBLISHED = Gauge(
    "useraudit_canary_published_seconds",
    "When the canary figures were last published (epoch seconds): a stalled schedule shows.",
    registry=REGISTRY,
)
COMPLETE_UP_TO = Gauge(
    "useraudit_complete_up_to_seconds",
    "The completeness mark (epoch seconds): every acknowledged event before it is searchable.",
    registry=REGISTRY,
)
ACCOUNT_COMPLETE_UP_TO = Gauge(
    "useraudit_account_complete_up_to_seconds",
    "Per account (epoch seconds): every acknowledged event of it before this is searchable.",
    labelnames=["account"],
    registry=REGISTRY,
)


def _read_integrity_figures() -> None:
    """The canary's last figures and the completeness mark, from the store, at each scrape."""
    from useraudit.store.base import StoreError
    from useraudit.store.completeness import last_canary, oldest, published

    from . import resources

    try:
        store = resources.store()
        canary = last_canary(store)
        marks = published(store)
        accounts = store.accounts() if marks else []
    except StoreError:
        return
    mark = oldest(marks)
    for quantile, key in (("0.5", "p50_ms"), ("0.99", "p99_ms")):
        if isinstance(canary.get(key), (int, float)):
            CAPTURE_TO_SEARCHABLE.labels(quantile).set(canary[key])
    if isinstance(canary.get("at"), str):
        CANARY_PUBLISHED.set(datetime.fromisoformat(canary["at"]).timestamp())
    if mark is not None:
        COMPLETE_UP_TO.set(mark.timestamp())
    ACCOUNT_COMPLETE_UP_TO.clear()  # accounts come and go between scrapes
    for account in accounts:
        of_account = oldest(marks, account)
        if of_account is not None:
            ACCOUNT_COMPLETE_UP_TO.labels(account).set(of_account.timestamp())


def install(app: Flask) -> None:
    if not app.config.get("USERAUDIT_METRICS"):
        return

    def metrics() -> Response:
        _read_integrity_figures()
        return Response(generate_latest(REGISTRY), mimetype=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "useraudit_metrics", metrics)
