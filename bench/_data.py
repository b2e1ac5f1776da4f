"""Synthetic but realistic inputs shared by the benchmarks."""

from __future__ import annotations

import random

from useraudit.catalog import CATALOG

ACTIONS = [a.code for a in CATALOG.actions() if a.product in ("common", "jaicp")]

_TEMPLATES = (
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{v}.0.{b}.{p} Safari/537.36"
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_{m}) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/{m}.{b} Safari/605.1.15"
    ),
    "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.{m} Mobile/15E{p} Safari/604.1"
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel {m}) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{v}.0.{b}.{p} Mobile Safari/537.36"
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.{b}.{p}"
    ),
)


def user_agents(count: int, rnd: random.Random) -> list[str]:
    """``count`` distinct, real-looking user-agent strings."""
    out: set[str] = set()
    while len(out) < count:
        out.add(
            rnd.choice(_TEMPLATES).format(
                v=rnd.randrange(90, 131),
                b=rnd.randrange(1000, 7000),
                p=rnd.randrange(10, 250),
                m=rnd.randrange(1, 9),
            )
        )
    return sorted(out)
