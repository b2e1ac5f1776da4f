"""Notices every admin sees on every page: today, events filed under no account.

The account contract (docs/capture.md, "Which account an event belongs to")
files events that arrive without a usable account under
``schema.UNASSIGNED_ACCOUNT`` rather than storing them where no account page
shows them. An integration that forgot ``account=`` therefore shows up here
at once, with what to do about it. The count is cached briefly per app so
the notice costs one store request a minute, not one per page.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from flask_login import current_user

from useraudit.schema import UNASSIGNED_ACCOUNT
from useraudit.store import StoreError
from useraudit.store.query import Query

log = logging.getLogger("useraudit.webapp")

# How far back the notice looks, and how long a count is reused.
WINDOW = timedelta(days=7)
CACHE_SECONDS = 60.0


def unassigned_count() -> int:
    """Events filed under the unassigned account in the last WINDOW (cached)."""
    from .resources import store

    ext = current_app.extensions["useraudit"]
    cached = ext.get("unassigned_count")
    now = time.monotonic()
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return int(cached[1])
    try:
        count = store().count(Query(UNASSIGNED_ACCOUNT, start=datetime.now(UTC) - WINDOW))
    except StoreError as exc:  # the page itself says when the store is down
        log.warning("unassigned-account notice: %s", exc)
        return 0
    ext["unassigned_count"] = (now, count)
    return count


def notices() -> dict[str, Any]:
    """Template context: ``unassigned_notice`` (count, account, whether you may open it)."""
    if not current_user.is_authenticated:
        return {"unassigned_notice": None}
    count = unassigned_count()
    if not count:
        return {"unassigned_notice": None}
    return {
        "unassigned_notice": {
            "count": count,
            "account": UNASSIGNED_ACCOUNT,
            "days": WINDOW.days,
            "can_open": current_user.is_admin_of(UNASSIGNED_ACCOUNT),
        }
    }
