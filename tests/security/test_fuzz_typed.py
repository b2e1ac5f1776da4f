"""Every parameter of every route, with strategies typed to what it holds.

Zones (real ones, folders of the zone database, long and odd names),
local datetimes from year 1 to 9999, periods, page sizes and cursors with
huge integers, IP addresses and networks (v4, v6, v4-mapped), search text
with control characters, filter values, and the sign-in ``next``; on the
page and every export, on both stores. Only 200 or 400 may come back, and
no query may be logged as a store outage.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import zoneinfo
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import csrf_token, make_app, signed_in

ZONES = sorted(zoneinfo.available_timezones())
FOLDERS = sorted({z.split("/")[0] for z in ZONES if "/" in z})

zones = st.one_of(
    st.sampled_from(ZONES),
    st.sampled_from(FOLDERS),
    st.text(max_size=300),
    st.text(alphabet="A/._-", min_size=1, max_size=300),
)
local_times = st.one_of(
    st.datetimes().map(
        lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}"
    ),
    st.text(max_size=40),
)
integers = st.integers(min_value=-(2**80), max_value=2**80)
cursors = st.one_of(
    st.tuples(integers, st.text(max_size=70)).map(
        lambda t: base64.urlsafe_b64encode(json.dumps(list(t)).encode()).decode().rstrip("=")
    ),
    st.text(max_size=100),
)
addresses = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}"),
    st.tuples(st.ip_addresses(), st.integers(0, 140)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.tuples(st.ip_addresses(v=4), st.integers(0, 140)).map(lambda t: f"::ffff:{t[0]}/{t[1]}"),
    st.text(max_size=50),
)
TYPED: dict[str, Any] = {
    "tz": zones,
    "from": local_times,
    "to": local_times,
    "period": st.one_of(
        st.sampled_from(["1h", "24h", "7d", "30d", "custom"]), st.text(max_size=20)
    ),
    "size": st.one_of(integers.map(str), st.text(max_size=20)),
    "c": cursors,
    "ip": addresses,
    "q": st.text(max_size=80),
    **{
        name: st.text(max_size=60)
        for name in (
            "product",
            "group",
            "action",
            "user",
            "target",
            "impersonator",
            "history",
            "project",
            "token",
            "result",
            "browser",
            "os",
            "device",
        )
    },
}
params = st.lists(
    st.sampled_from(sorted(TYPED)).flatmap(lambda n: st.tuples(st.just(n), TYPED[n])),
    min_size=1,
    max_size=6,
)
ROUTES = ("actions", "actions.xlsx", "actions.csv", "actions.ndjson")


def test_every_parameter_typed_gets_200_or_400_on_every_route(
    any_store: Any,
    security_users: Any,
    ui_spool: Any,
    caplog: Any,
) -> None:
    client = signed_in(make_app(any_store, security_users), "ann")
    caplog.set_level(logging.WARNING)

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(pairs=params, route=st.sampled_from(ROUTES))
    def check(pairs: list[tuple[str, str]], route: str) -> None:
        qs = urlencode(pairs, encoding="utf-8", errors="surrogatepass")
        response = client.get(f"/a/tenant-a/{route}?{qs}")
        assert response.status_code in (200, 400), (qs, route, response.status_code)
        response.close()

    check()
    outages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [m for m in outages if "store error" in m or "search failed" in m], outages[:3]


@pytest.mark.parametrize("next_value", ["/accounts\r\nX: y", "/a\nb", "/\x00", "/" + "a" * 5000])
def test_sign_in_next_with_odd_values_is_ignored(
    any_store: Any,
    security_users: Any,
    ui_spool: Any,
    next_value: str,
) -> None:
    app = make_app(any_store, security_users)
    client = app.test_client()
    assert client.get("/login?" + urlencode({"next": next_value})).status_code == 200
    response = client.post(
        "/login",
        data={
            "username": "ann",
            "password": "correct horse battery",
            "next": next_value,
            "csrf_token": csrf_token(client),
        },
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/accounts")


def test_ip_strategies_cover_mapped_networks() -> None:
    assert ipaddress.ip_network("::ffff:10.0.0.0/104", strict=False).prefixlen == 104
