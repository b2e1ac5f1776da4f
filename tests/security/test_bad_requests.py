"""Odd values are the user's 400, never a 500 and never a false outage (503).

Each request goes to the User actions page and to every export, on both
stores (the real OpenSearch node and SQLite): time zones naming a folder or
300 characters long, custom periods at year 1 or 9999 in zones that push
them past the calendar, cursors holding huge integers, a NUL byte in the
search text, a CIDR on IPv4-mapped IPv6. The answer is 400 (or 200 where
the value is simply a search that finds nothing), with a message, and the
UI does not log an outage.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any
from urllib.parse import quote

import pytest

from .conftest import make_app, signed_in


def _cursor(ts: Any, eid: Any = "0" * 32) -> str:
    return base64.urlsafe_b64encode(json.dumps([ts, eid]).encode()).decode().rstrip("=")


ODD = [
    pytest.param("tz=America", id="tz-folder"),
    pytest.param("tz=Europe", id="tz-folder-2"),
    pytest.param("tz=" + "A" * 300, id="tz-300-chars"),
    pytest.param("tz=" + quote("Europe/../../etc/passwd"), id="tz-traversal"),
    pytest.param("tz=" + quote("/etc/localtime"), id="tz-absolute"),
    pytest.param("tz=%00", id="tz-nul"),
    pytest.param("period=custom&from=0001-01-01T00:00&tz=Asia/Tokyo", id="year-1-east"),
    pytest.param("period=custom&to=9999-12-31T23:59&tz=America/New_York", id="year-9999-west"),
    pytest.param("period=custom&from=0001-01-01T00:00", id="year-1-utc"),
    pytest.param("period=custom&to=9999-12-31T23:59", id="year-9999-utc"),
    pytest.param("c=" + _cursor(10**30), id="cursor-huge-int"),
    pytest.param("c=" + _cursor(-(10**30)), id="cursor-huge-negative"),
    pytest.param("c=" + _cursor(2**63), id="cursor-2-63"),
    pytest.param("c=" + _cursor(1, "x" * 64), id="cursor-odd-id"),
    pytest.param("q=" + quote("abc\x00def"), id="q-nul"),
    pytest.param("q=%00", id="q-only-nul"),
    pytest.param("ip=" + quote("::ffff:10.0.0.0/104"), id="cidr-v4-mapped"),
    pytest.param("ip=" + quote("::ffff:10.0.0.1"), id="ip-v4-mapped"),
    pytest.param("ip=" + quote("10.0.0.0/33"), id="cidr-bad-prefix"),
    pytest.param("size=" + "9" * 400, id="size-huge"),
]


@pytest.mark.parametrize("args", ODD)
def test_odd_values_are_a_400_with_a_message_never_500_or_503(
    any_store: Any, security_users: Any, ui_spool: Any, args: str, caplog: Any
) -> None:
    app = make_app(any_store, security_users)
    client = signed_in(app, "ann")
    caplog.set_level(logging.WARNING)
    for path in ("actions", "actions.xlsx", "actions.csv", "actions.ndjson"):
        response = client.get(f"/a/tenant-a/{path}?{args}")
        assert response.status_code in (200, 400), (path, response.status_code)
        if response.status_code == 400:
            body = response.get_data(as_text=True)
            assert "unavailable" not in body.lower() and len(body) > 20, (path, body[:200])
        response.close()
    outages = [r for r in caplog.records if "store error" in r.getMessage()]
    assert not outages, [r.getMessage() for r in outages]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
