"""The JSON API's event list against the same OpenSearch query sent raw, same run.

    python -m bench.api                          # 1,000,000 events
    python -m bench.api --events 100000 --rounds 30 --opensearch http://127.0.0.1:9250

Seeds ``--events`` sample events (reused when the prefix already holds that
many), serves the app with werkzeug on 127.0.0.1, creates an ``events:read``
token and times ``GET /api/v1/events`` end to end over HTTP (token check,
rate limit, filter parsing, ``Store.search``, JSON), for the first page of a
filtered list and a page ``--depth`` deep through the cursors. Each request
is interleaved with the identical OpenSearch request body POSTed raw to
``/_search`` over a kept-alive connection and JSON-decoded. Target: API/raw
≤ 1.25 at p95. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ._ui import ACCOUNT, Server, make_app, open_seeded, pct


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--opensearch", default="http://127.0.0.1:9250")
    ap.add_argument("--prefix", default=None, help="index prefix (default bench-ui-<events>)")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--depth", type=int, default=20, help="page number of the deep page")
    args = ap.parse_args(argv)
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    from werkzeug.datastructures import MultiDict

    from useraudit.store import SearchRequest
    from useraudit.store.opensearch.queries import search_body
    from useraudit.webapp.api_tokens import TokenStore
    from useraudit.webapp.filters import Filters

    store, seed_s = open_seeded(
        args.opensearch, args.prefix or f"bench-ui-{args.events}", args.events, log=log
    )
    tokens_db = Path(tempfile.mkdtemp(prefix="useraudit-bench-api-")) / "tokens.db"
    app, _ = make_app(
        store, USERAUDIT_API_TOKENS=str(tokens_db), USERAUDIT_API_RATE="1000000 per minute"
    )
    _, secret = TokenStore(tokens_db).create(
        ACCOUNT, "bench", ("events:read",), created_by={"id": "bench", "name": "bench"}
    )
    server = Server(app)
    os_url = urlsplit(args.opensearch)
    raw_conn = http.client.HTTPConnection(os_url.hostname, os_url.port or 9200, timeout=120)

    def api(params: dict[str, str]) -> tuple[float, dict]:
        t0 = time.perf_counter()
        server.conn.request(
            "GET",
            f"/api/v1/events?{urlencode(params)}",
            headers={"Authorization": f"Bearer {secret}"},
        )
        resp = server.conn.getresponse()
        data = json.loads(resp.read())
        elapsed = time.perf_counter() - t0
        assert resp.status == 200, data
        return elapsed, data

    def raw(params: dict[str, str]) -> float:
        """The API's exact OpenSearch request, sent raw."""
        query = {k: v for k, v in params.items() if k != "cursor"}
        f = Filters.parse(MultiDict(parse_qsl(urlencode(query))))
        req = SearchRequest(
            f.query(ACCOUNT), size=f.size, cursor=params.get("cursor"), facets=(), highlight=False
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
        assert resp.status == 200, data
        return elapsed

    first = {"period": "30d", "result": "success", "size": "100"}
    deep = dict(first)
    for _ in range(args.depth - 1):
        _, page = api(deep)
        assert page["next_cursor"], "ran out of pages before the requested depth"
        deep = {**first, "cursor": page["next_cursor"]}
    _, page = api(first)
    results: dict[str, Any] = {}
    for name, params in (("list", first), ("deep", deep)):
        for _ in range(3):
            api(params)
            raw(params)
        api_t: list[float] = []
        raw_t: list[float] = []
        for i in range(args.rounds):
            if i % 2:
                api_t.append(api(params)[0])
                raw_t.append(raw(params))
            else:
                raw_t.append(raw(params))
                api_t.append(api(params)[0])
        results[name] = {
            "api_ms_p50": round(pct(api_t, 0.5) * 1000, 1),
            "api_ms_p95": round(pct(api_t, 0.95) * 1000, 1),
            "raw_ms_p50": round(pct(raw_t, 0.5) * 1000, 1),
            "raw_ms_p95": round(pct(raw_t, 0.95) * 1000, 1),
            "ratio_p50": round(pct(api_t, 0.5) / pct(raw_t, 0.5), 3),
            "ratio_p95": round(pct(api_t, 0.95) / pct(raw_t, 0.95), 3),
        }
        log(name, results[name])
    server.stop()
    raw_conn.close()
    out = {
        "bench": "api",
        "events": args.events,
        "matches": page["total"],
        "depth": args.depth,
        "rounds": args.rounds,
        "seed_seconds": round(seed_s, 1) if seed_s else None,
        **results,
        "target_ratio_p95": 1.25,
        "ok": all(r["ratio_p95"] <= 1.25 for r in results.values()),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
