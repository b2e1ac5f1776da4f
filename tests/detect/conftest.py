"""Detection fixtures: events made like record() makes them, an engine on a real store."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from useraudit.detect import DetectionEngine, DetectionSettings
from useraudit.indexer.enrich import Enricher
from useraudit.store.alerts import Alert, DetectionStore
from useraudit.store.sqlite.alerts import SQLiteDetectionStore

CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
_ids = itertools.count()


def event(
    action: str,
    user: str = "alice",
    *,
    at: timedelta = timedelta(0),
    outcome: str = "success",
    ip: str = "10.0.0.5",
    ua: str = CHROME_WIN,
    account: str = "acme",
    **extra: Any,
) -> dict:
    """A raw event as record() spools it."""
    ts = (T0 + at).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    raw = {
        "event.id": f"ev{next(_ids):08d}",
        "@timestamp": ts,
        "event.action": action,
        "event.outcome": outcome,
        "organization.id": account,
        "user.id": f"u-{user}",
        "user.name": user,
        "source.address": ip,
        "user_agent.original": ua,
    }
    raw.update({k.replace("__", "."): v for k, v in extra.items()})
    return raw


@pytest.fixture(scope="session")
def enrich() -> Enricher:
    return Enricher()


@pytest.fixture
def sqlite_alerts(tmp_path: Path) -> Iterator[SQLiteDetectionStore]:
    store = SQLiteDetectionStore(tmp_path / "audit.db")
    store.install()
    yield store
    store.close()


class Harness:
    """Runs raw events through enrichment and the engine, batch by batch."""

    def __init__(self, store: DetectionStore, enrich: Enricher, **engine: Any) -> None:
        self.store = store
        self.enrich = enrich
        self.engine = DetectionEngine(store, **engine)

    def feed(self, *raws: dict) -> list[dict]:
        docs = [self.enrich(r) for r in raws]
        self.engine.delivered(docs)
        return docs

    def alerts(self, account: str = "acme", rule: str | None = None) -> list[Alert]:
        self.store.refresh()
        found = self.store.list_alerts(account)
        return [a for a in found if rule is None or a.rule == rule]


@pytest.fixture
def harness(sqlite_alerts: SQLiteDetectionStore, enrich: Enricher) -> Harness:
    return Harness(sqlite_alerts, enrich)


def make_harness(
    store: DetectionStore, enrich: Enricher, settings: dict | None = None, **kw: Any
) -> Harness:
    return Harness(store, enrich, settings=DetectionSettings.from_dict(settings or {}), **kw)
