"""The User actions page against the same OpenSearch queries sent raw.

    python -m bench.search                         # 1,000,000 events
    python -m bench.search --events 200000 --rounds 40 --opensearch http://127.0.0.1:9250

Seeds ``--events`` sample events (whole catalog; reused when the prefix
already holds that many), serves the admin UI with werkzeug on 127.0.0.1,
signs in, and times two page loads end to end over HTTP (parse URL, build
the Query, ``Store.search``, render the full HTML page):

    search   full text + all ten facets + exact total + the first page
    deep     the same filters, page ``--depth`` via the cursor stack in the URL

Each is interleaved with the identical OpenSearch request body
(``opensearch.queries.search_body`` for the same SearchRequest) POSTed raw to
``/_search`` over a kept-alive connection and JSON-decoded. The target is
UI/raw ≤ 1.25 at p50. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import sys
import time
from datetime import UTC, datetime
from html import unescape
from typing import Any
from urllib.parse import urlsplit

from ._ui import ACCOUNT, Server, make_app, open_seeded, pct

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

    from useraudit.store import SearchRequest
    from useraudit.store.opensearch.queries import search_body
    from useraudit.store.query import FACETS
    from useraudit.webapp.actions import FACET_SIZE, PAGE_FIELDS
    from useraudit.webapp.filters import Filters

    store, seed_s = open_seeded(
        args.opensearch, args.prefix or f"bench-ui-{args.events}", args.events, log=log
    )
    app, user = make_app(store)
    server = Server(app)
    server.sign_in(user)
    os_url = urlsplit(args.opensearch)
    raw_conn = http.client.HTTPConnection(os_url.hostname, os_url.port or 9200, timeout=120)

    def raw(path_qs: str) -> float:
        """The page's exact OpenSearch request, sent raw."""
        from urllib.parse import parse_qsl

        from werkzeug.datastructures import MultiDict

        f = Filters.parse(MultiDict(parse_qsl(urlsplit(path_qs).query)))
        req = SearchRequest(
            f.query(ACCOUNT),
            size=f.size,
            cursor=f.cursor,
            facets=tuple(FACETS),
            facet_size=FACET_SIZE,
            highlight=bool(f.text),
            fields=PAGE_FIELDS,
        )
        body = json.dumps(search_body(req)).encode()
        t0 = time.perf_counter()
        raw_conn.request(
            "POST",
            f"/{store.alias}/_search?ignore_unavailable=true",
            body=body,
            headers={"Content-Type": "application/json"},
        )
        resp = raw_conn.getresponse()
        data = json.loads(resp.read())
        elapsed = time.perf_counter() - t0
        assert resp.status == 200 and data["hits"]["hits"] is not None, data
        return elapsed

    def ui(path_qs: str) -> tuple[float, bytes]:
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

    results: dict[str, Any] = {}
    for name, target in (("search", search_url), ("deep", deep_url)):
        for _ in range(3):  # warm caches on both paths
            ui(target)
            raw(target)
        ui_t: list[float] = []
        raw_t: list[float] = []
        for i in range(args.rounds):
            # ABBA order so neither path always runs on the warmer cache.
            if i % 2:
                ui_t.append(ui(target)[0])
                raw_t.append(raw(target))
            else:
                raw_t.append(raw(target))
                ui_t.append(ui(target)[0])
        results[name] = {
            "ui_ms_p50": round(pct(ui_t, 0.5) * 1000, 1),
            "ui_ms_p95": round(pct(ui_t, 0.95) * 1000, 1),
            "raw_ms_p50": round(pct(raw_t, 0.5) * 1000, 1),
            "raw_ms_p95": round(pct(raw_t, 0.95) * 1000, 1),
            "ratio_p50": round(pct(ui_t, 0.5) / pct(raw_t, 0.5), 3),
            "ratio_p95": round(pct(ui_t, 0.95) / pct(raw_t, 0.95), 3),
        }
        r = results[name]
        log(
            f"{name:<7} UI p50 {r['ui_ms_p50']:>7.1f} ms  p95 {r['ui_ms_p95']:>7.1f} ms | "
            f"raw p50 {r['raw_ms_p50']:>7.1f} ms  p95 {r['raw_ms_p95']:>7.1f} ms | "
            f"UI/raw {r['ratio_p50']:.2f} (p95 {r['ratio_p95']:.2f})"
        )
    server.stop()
    raw_conn.close()
    out = {
        "bench": "search",
        "events": args.events,
        "matches": total,
        "text": TEXT,
        "depth": args.depth,
        "rounds": args.rounds,
        "seed_seconds": round(seed_s, 1) if seed_s else None,
        **results,
        "target_ratio": 1.25,
        "ok": all(r["ratio_p50"] <= 1.25 for r in results.values()),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(out, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
