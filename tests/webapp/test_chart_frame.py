"""The activity chart is drawn in two steps: its bars' periods while the store searches,
their counts once it answered. Nothing the answer holds may be lost between the two."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

from useraudit.store import Query
from useraudit.store.histogram import Bucket
from useraudit.store.sqlite import SQLiteStore
from useraudit.webapp import chart

from .conftest import make_app

HOUR_MS = 3_600_000
NOW = datetime(2026, 3, 5, 10, 59, 59, 990000, tzinfo=UTC)


@pytest.fixture
def app(tmp_path: Path, users_db: Any) -> Iterator[Flask]:
    """The admin UI (its language and date formats), on a store this test never reads."""
    store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    yield make_app(store, users_db)
    store.close()


def _frame_and_answer(app: Flask) -> tuple[chart.Frame, list[Bucket], Query, tuple[int, int]]:
    now = NOW
    query = Query("acme", start=now - timedelta(hours=24))
    tz = ZoneInfo("UTC")
    spec = chart.plan(query, tz, now)
    assert spec is not None and spec[0] == HOUR_MS
    with app.test_request_context("/"):
        shape = chart.frame(query, spec, tz, "/a/acme/actions", [], now)
    last = shape.first_ms + (len(shape.bars) - 1) * shape.step
    # The store answered a few milliseconds later: an event in the hour that began meanwhile.
    found = [Bucket(shape.first_ms, {"success": 2}), Bucket(last + HOUR_MS, {"failure": 1})]
    return shape, found, query, spec


def test_a_bucket_that_began_while_the_store_searched_is_not_covered(app: Flask) -> None:
    shape, found, _query, _spec = _frame_and_answer(app)
    assert chart.covers(shape, found[:1])
    assert not chart.covers(shape, found)


def test_filling_a_frame_keeps_every_count_of_the_answer(app: Flask) -> None:
    shape, found, query, spec = _frame_and_answer(app)
    with app.test_request_context("/"):
        drawn = chart.fill(found[:1], shape)
        later = chart.frame(
            query, spec, ZoneInfo("UTC"), "/a/acme/actions", [], NOW + timedelta(milliseconds=20)
        )
        assert chart.covers(later, found)
        redrawn = chart.fill(found, later)
    assert drawn["total"] == 2 and redrawn["total"] == 3
    assert len(redrawn["bars"]) == len(shape.bars) + 1
    assert redrawn["bars"][-1].failure == 1 and 'data-failure="1"' in str(redrawn["svg"])
