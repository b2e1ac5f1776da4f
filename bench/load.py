"""Concurrent searches through the admin UI under gunicorn: errors and latency percentiles.

    python -m bench.load [--events 1000000] [--clients 50] [--seconds 60] [--opensearch URL]

The UI runs under gunicorn (4 workers x 4 threads) on 127.0.0.1 over an
OpenSearch index of ``--events`` sample events (seeded once under the same
prefix ``bench.search`` uses, and reused). ``--clients`` signed-in clients
each loop over a mix of page loads — full text, filters, user history,
facets, deeper pages — for ``--seconds``. Every answer other than 200 is an
error.

Baseline, same run: the same queries sent by the same number of threads
straight to the store (``OpenSearchStore.search``, no HTTP, no UI), so the
ratio shows what the UI adds under load. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from ._ui import ACCOUNT, PASSWORD, open_seeded, pct

REPO = Path(__file__).resolve().parents[1]
TEXTS = [
    "",
    "",
    "webhook",
    "timeout fallback",
    '"production"',
    "escalation -staging",
    "retention | masking",
    "gree*",
]
FILTERS = [
    {},
    {"result": "failure"},
    {"product": "jaicp"},
    {"action": "user.signed_in"},
    {"period": "7d"},
    {"period": "24h"},
    {"browser": "Chrome"},
    {"os": "Windows"},
]


def page_queries(rnd: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        params = dict(rnd.choice(FILTERS))
        text = rnd.choice(TEXTS)
        if text:
            params["q"] = text
        params.setdefault("period", "30d")
        out.append(urlencode(params))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port: int, cookie: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.cookie = cookie

    def get(self, path: str) -> tuple[int, bytes]:
        self.conn.request("GET", path, headers={"Cookie": self.cookie, "User-Agent": "bench.load"})
        resp = self.conn.getresponse()
        return resp.status, resp.read()


def sign_in(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"User-Agent": "bench.load"}
    conn.request("GET", "/login", headers=headers)
    resp = conn.getresponse()
    page = resp.read()
    cookie = next(v.split(";", 1)[0] for k, v in resp.getheaders() if k.lower() == "set-cookie")
    token = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page).group(1).decode()  # type: ignore[union-attr]
    body = urlencode({"username": "bench", "password": PASSWORD, "csrf_token": token})
    conn.request(
        "POST",
        "/login",
        body=body,
        headers={**headers, "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
    )
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 302, resp.status
    cookie = next(v.split(";", 1)[0] for k, v in resp.getheaders() if k.lower() == "set-cookie")
    conn.close()
    return cookie


def hammer(
    worker, queries: list[str], seconds: float, clients: int
) -> tuple[list[float], int, int]:
    """Run ``worker(query) -> ok`` from ``clients`` threads for ``seconds``;
    (latencies, requests, errors)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop(n: int) -> None:
        rnd = random.Random(n)
        mine: list[float] = []
        bad = 0
        state = worker.start() if hasattr(worker, "start") else None
        while time.monotonic() < deadline:
            q = rnd.choice(queries)
            t0 = time.perf_counter()
            try:
                ok = worker(q, state)
            except Exception:  # noqa: BLE001 - counted as an error
                ok = False
            mine.append(time.perf_counter() - t0)
            bad += not ok
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, len(latencies), errors[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--opensearch", default="http://127.0.0.1:9250")
    args = ap.parse_args()

    store, _ = open_seeded(args.opensearch, f"bench-ui-{args.events}", args.events)
    queries = page_queries(random.Random(1), 400)
    home = Path(tempfile.mkdtemp(prefix="useraudit-load-"))
    from useraudit.webapp.users import UserStore

    users = UserStore(home / "webusers.db")
    users.add("bench", PASSWORD)
    users.grant("bench", ACCOUNT)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "USERAUDIT_SPOOL": str(home / "spool"),
        "BENCH_SECRET_KEY": secrets.token_hex(16),
        "USERAUDIT_USERS": str(home / "webusers.db"),
        "USERAUDIT_STORE": f"{args.opensearch}/?prefix={store.prefix}",
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    log = open(home / "gunicorn.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            str(gunicorn),
            "-w",
            "4",
            "--threads",
            "4",
            "-b",
            f"127.0.0.1:{port}",
            "--timeout",
            "120",
            "bench._load_app:app()",
        ],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(
                        f"gunicorn did not start; see {home / 'gunicorn.log'}"
                    ) from None
                time.sleep(0.2)
        cookie = sign_in(port)
        failures: list[str] = []
        base = f"/a/{ACCOUNT}/actions?"

        class UI:
            def start(self) -> Client:
                return Client(port, cookie)

            def __call__(self, q: str, client: Client) -> bool:
                status, body = client.get(base + q)
                ok = status == 200 and b"<title>User actions" in body  # results or the empty state
                if not ok:
                    failures.append(f"{status} {q} {body[:200]!r}")
                return ok

        from werkzeug.datastructures import MultiDict

        from useraudit.store.query import FACETS, SearchRequest
        from useraudit.webapp.filters import Filters

        def direct(q: str, _state: object) -> bool:
            f = Filters.parse(MultiDict(parse_qsl(q)))
            store.search(
                SearchRequest(
                    f.query(ACCOUNT), size=f.size, facets=tuple(FACETS), highlight=bool(f.text)
                )
            )
            return True

        ui_lat, ui_n, ui_err = hammer(UI(), queries, args.seconds, args.clients)
        raw_lat, raw_n, raw_err = hammer(direct, queries, min(args.seconds, 30), args.clients)
        for failure in failures[:5]:
            print("failed:", failure)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
    result = {
        "bench": "load",
        "events": args.events,
        "clients": args.clients,
        "seconds": args.seconds,
        "ui_requests": ui_n,
        "ui_errors": ui_err,
        "ui_requests_per_s": round(ui_n / args.seconds, 1),
        "ui_p50_ms": round(pct(ui_lat, 0.50) * 1000, 1),
        "ui_p95_ms": round(pct(ui_lat, 0.95) * 1000, 1),
        "ui_p99_ms": round(pct(ui_lat, 0.99) * 1000, 1),
        "direct_p50_ms": round(pct(raw_lat, 0.50) * 1000, 1),
        "direct_p95_ms": round(pct(raw_lat, 0.95) * 1000, 1),
        "direct_errors": raw_err,
        "ratio_ui_vs_direct_p95": round(pct(ui_lat, 0.95) / pct(raw_lat, 0.95), 3),
    }
    print(json.dumps(result))
    sys.exit(0 if ui_err == 0 else 1)


if __name__ == "__main__":
    main()
