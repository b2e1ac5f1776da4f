"""The JSON API's event list against the same OpenSearch requests sent raw, same run.

    python -m bench.api                          # 1,000,000 events
    python -m bench.api --events 100000 --rounds 30 --opensearch http://127.0.0.1:9250

Seeds ``--events`` sample events (reused when the prefix already holds that
many, and shared with bench.search), serves the app with waitress (as
``useraudit web`` does) on
127.0.0.1, creates an ``events:read`` token and times ``GET /api/v1/events``
end to end over HTTP (token check, rate limit, filter parsing,
``Store.search``, JSON), for the first page of a filtered list and a page
``--depth`` deep through the cursors.

Each request is interleaved with the OpenSearch requests the API sends for
the same answer, POSTed raw over kept-alive connections and JSON-decoded
(the shared :class:`bench._ui.Raw`): ``opensearch.queries.search_body`` of
the API's own ``SearchRequest`` (``webapp.api.events_request``) to
``<alias>/_search``, and beside it on a second connection the settings read
that carries the completeness mark. Target: API/raw ≤ 1.25 at p95. Last
line: one JSON object, with the load average when each figure was taken.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

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

    from useraudit.store.opensearch.queries import search_body
    from useraudit.webapp.api import events_request
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
    raw_node = Raw(args.opensearch)
    search_path = f"/{store.alias}/_search?ignore_unavailable=true"
    settings = (f"/{store.prefix}-settings/_search", SETTINGS_READ)

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
        """The API's own store request for these parameters, sent raw, with the mark beside it."""
        f = Filters.parse(MultiDict({k: v for k, v in params.items() if k != "cursor"}))
        body = search_body(events_request(f, ACCOUNT, params.get("cursor")))
        return raw_node.time(search_path, body, beside=settings)

    first = {"period": "30d", "result": "success", "size": "100"}
    deep = dict(first)
    for _ in range(args.depth - 1):
        _, page = api(deep)
        assert page["next_cursor"], "ran out of pages before the requested depth"
        deep = {**first, "cursor": page["next_cursor"]}
    _, page = api(first)
    results: dict[str, Any] = {}
    for name, params in (("list", first), ("deep", deep)):
        r = results[name] = {
            **interleaved(lambda p=params: api(p)[0], lambda p=params: raw(p), args.rounds),
            "load": load_average(),
        }
        log(
            f"{name:<5} API p50 {r['app_ms_p50']:>7.1f} ms  p95 {r['app_ms_p95']:>7.1f} ms | "
            f"raw p50 {r['raw_ms_p50']:>7.1f} ms  p95 {r['raw_ms_p95']:>7.1f} ms | "
            f"API/raw p95 {r['ratio_p95']:.2f} (p50 {r['ratio_p50']:.2f}) | load {r['load']}"
        )
    server.stop()
    raw_node.close()
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
    print(json.dumps(out, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
