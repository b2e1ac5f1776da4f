"""The User actions page and the event details against the same OpenSearch requests sent raw.

    python -m bench.search                         # 1,000,000 events
    python -m bench.search --events 200000 --rounds 40 --opensearch http://127.0.0.1:9250

Seeds ``--events`` sample events (whole catalog; reused when the prefix
already holds that many, and shared with bench.api), serves the admin UI
with waitress (the server `useraudit web` runs) on 127.0.0.1, signs in over one
kept-alive connection, and times page loads end to end over
HTTP (session, parse the URL, build the request, ``Store.search``, render
the whole HTML page with the activity chart):

    search   full text, the last 30 days: the first page with its exact
             total, all ten facets and the chart's bars
    deep     the same filters, page ``--depth`` via the cursor stack in the URL
    details  one event's details page (the row's panel and permalink)

Each is interleaved with the OpenSearch requests the page needs for the same
answer, POSTed raw over kept-alive connections and JSON-decoded (the shared
:class:`bench._ui.Raw`):

    search, deep  ``opensearch.queries.search_body`` of the page's own
                  ``SearchRequest`` (``webapp.actions.page_request``: hits,
                  total, facets and the chart's date histogram in one body)
                  to ``<alias>/_search``, and beside it on a second
                  connection the settings read that carries the completeness mark
    details       the store's ``ids`` query for that one event to ``<alias>/_search``
                  (the read alias spans monthly indices, so a GET by id cannot name one)

Target: app/raw ≤ 1.25 at p50 for the results page (search, deep); the
details page is reported beside it (its raw request takes a few
milliseconds, so the ratio mostly shows the cost of any page round trip).
Last line: one JSON object, with the load average when each figure was taken.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from html import unescape
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ._ui import (
    ACCOUNT,
    SETTINGS_READ,
    Raw,
    Server,
    interleaved,
    load_average,
    make_app,
    open_seeded,
)

TEXT = "Reviewers"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--opensearch", default="http://127.0.0.1:9250")
    ap.add_argument("--prefix", default=None, help="index prefix (default bench-ui-<events>)")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--depth", type=int, default=50, help="page number of the deep page")
    args = ap.parse_args(argv)
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    from werkzeug.datastructures import MultiDict

    from useraudit.store.opensearch.queries import search_body
    from useraudit.webapp.actions import page_request
    from useraudit.webapp.filters import Filters, zone

    store, seed_s = open_seeded(
        args.opensearch, args.prefix or f"bench-ui-{args.events}", args.events, log=log
    )
    app, user = make_app(store)
    server = Server(app)
    server.sign_in(user)
    raw_node = Raw(args.opensearch)
    search_path = f"/{store.alias}/_search?ignore_unavailable=true"
    settings = (f"/{store.prefix}-settings/_search", SETTINGS_READ)

    def raw_page(path_qs: str) -> float:
        """The page's own store request for this URL, sent raw, with the mark read beside it."""
        f = Filters.parse(MultiDict(parse_qsl(urlsplit(path_qs).query)))
        body = search_body(page_request(f, f.query(ACCOUNT), zone(f.tz)))
        return raw_node.time(search_path, body, beside=settings)

    def ui(path_qs: str) -> tuple[float, bytes]:
        import time

        t0 = time.perf_counter()
        status, _, page = server.request("GET", path_qs)
        elapsed = time.perf_counter() - t0
        assert status == 200, (status, page[:300])
        return elapsed, page

    base = f"/a/{ACCOUNT}/actions"
    search_url = f"{base}?q={TEXT}&period=30d"
    # Walk to the deep page through the app's own Next links.
    url = search_url
    for _ in range(args.depth - 1):
        _, page = ui(url)
        nxt = re.search(rb'rel="next" data-testid="next" href="([^"]+)"', page)
        assert nxt, "ran out of pages before the requested depth"
        url = unescape(nxt.group(1).decode())
    deep_url = url
    _, first_page = ui(search_url)
    total = int(
        re.search(rb'data-testid="total"><strong>([\d,]+)', first_page).group(1).replace(b",", b"")
    )  # type: ignore[union-attr]
    assert b'data-testid="chart-bar"' in first_page, "the activity chart is not on the page"
    event_id = re.search(rb'<tr data-event="([^"]+)"', first_page).group(1).decode()  # type: ignore[union-attr]
    details_url = f"/a/{ACCOUNT}/events/{event_id}"
    ids_body = {"query": {"ids": {"values": [event_id]}}, "size": 1}

    results: dict[str, Any] = {}
    cases = (
        ("search", lambda: ui(search_url)[0], lambda: raw_page(search_url)),
        ("deep", lambda: ui(deep_url)[0], lambda: raw_page(deep_url)),
        ("details", lambda: ui(details_url)[0], lambda: raw_node.time(search_path, ids_body)),
    )
    for name, app_fn, raw_fn in cases:
        r = results[name] = {**interleaved(app_fn, raw_fn, args.rounds), "load": load_average()}
        log(
            f"{name:<8} app p50 {r['app_ms_p50']:>7.1f} ms  p95 {r['app_ms_p95']:>7.1f} ms | "
            f"raw p50 {r['raw_ms_p50']:>7.1f} ms  p95 {r['raw_ms_p95']:>7.1f} ms | "
            f"app/raw {r['ratio_p50']:.2f} (p95 {r['ratio_p95']:.2f}) | load {r['load']}"
        )
    server.stop()
    raw_node.close()
    out = {
        "bench": "search",
        "events": args.events,
        "matches": total,
        "text": TEXT,
        "depth": args.depth,
        "rounds": args.rounds,
        "seed_seconds": round(seed_s, 1) if seed_s else None,
        **results,
        "target_ratio_p50": 1.25,
        # The target is the results page's; the details page is reported beside it.
        "ok": all(results[name]["ratio_p50"] <= 1.25 for name in ("search", "deep")),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(out, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
