"""Shared set-up for the admin UI and API benchmarks: a seeded index, a signed-in
client, a server, and the raw baseline they are measured against.

bench.search and bench.api seed the same index (``bench-ui-<events>`` unless
``--prefix`` says otherwise): whichever runs first seeds it, the other reuses it.
"""

from __future__ import annotations

import http.client
import json
import re
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

PASSWORD = "bench-password-1"
ACCOUNT = "acme"


def open_seeded(
    url: str, prefix: str, events: int, *, log: Any = print
) -> tuple[Any, float | None]:
    """The store under ``prefix`` holding ``events`` sample events (seeded unless already there).

    Nearly all events belong to ``acme``; 2 % to ``globex`` so the tenant
    filter has something to exclude. Returns (store, seconds spent seeding or None).
    """
    from tests.support.sample import seed_store
    from useraudit.store.opensearch import OpenSearchStore

    store = OpenSearchStore(url, prefix=prefix, timeout=120)
    if store.count_all() == events:
        log(f"reusing {events:,} events under prefix {prefix!r}")
        return store, None
    store.uninstall()
    store.install()
    # Bulk-load settings: no refresh while seeding (restored afterwards).
    t0 = time.perf_counter()
    accounts = tuple([ACCOUNT] * 49 + ["globex"])
    done = 0
    step = 100_000
    while done < events:
        n = min(step, events - done)
        seed_store(store, n, accounts=accounts, seed=done + 1, days=30, chunk=5000)
        done += n
        log(f"  seeded {done:,}/{events:,} ({time.perf_counter() - t0:.0f} s)")
    store.client.indices.forcemerge(
        index=f"{prefix}-events-*", max_num_segments=1, request_timeout=600
    )
    store.refresh()
    return store, time.perf_counter() - t0


def make_app(store: Any, **config: Any) -> tuple[Any, str]:
    """An admin UI app on ``store`` with one USER_ADMIN of acme; returns (app, username)."""
    from useraudit.webapp.app import create_app
    from useraudit.webapp.users import UserStore

    home = Path(tempfile.mkdtemp(prefix="useraudit-bench-"))
    import useraudit

    useraudit.configure(spool_dir=home / "spool")
    users = UserStore(home / "webusers.db")
    users.add("bench", PASSWORD)
    users.grant("bench", ACCOUNT)
    app = create_app(
        {
            "SECRET_KEY": "bench",
            "SESSION_COOKIE_SECURE": False,
            "USERAUDIT_STORE": store,
            "USERAUDIT_USERS": users,
            # As `useraudit web` runs it: rate limits counted in one SQLite file.
            "USERAUDIT_LIMITS_STORAGE": f"sqlite:///{home / 'limits.db'}",
            **config,
        }
    )
    return app, "bench"


class Server:
    """The app in the server ``useraudit web`` runs (waitress) on 127.0.0.1, and a
    signed-in HTTP client keeping its connection alive, like a browser."""

    def __init__(self, app: Any) -> None:
        from useraudit.webapp.serve import make_server

        self.httpd = make_server(app, host="127.0.0.1", port=0)
        self.port = self.httpd.effective_port
        self.thread = threading.Thread(target=self.httpd.run, daemon=True)
        self.thread.start()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        self.cookie = ""

    def request(
        self, method: str, path: str, body: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Cookie": self.cookie}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        for name, value in resp.getheaders():
            if name.lower() == "set-cookie" and value.startswith("useraudit_session="):
                self.cookie = value.split(";", 1)[0]
        return resp.status, dict(resp.getheaders()), data

    def sign_in(self, username: str) -> None:
        _, _, page = self.request("GET", "/login")
        token = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page).group(1).decode()  # type: ignore[union-attr]
        status, headers, _ = self.request(
            "POST",
            "/login",
            urlencode({"username": username, "password": PASSWORD, "csrf_token": token}),
        )
        assert status == 302, status

    def stop(self) -> None:
        self.conn.close()
        self.httpd.close()
        self.thread.join(timeout=10)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


# What AccountSettings.all() sends to read the completeness mark (the page and
# the API read it beside their search).
SETTINGS_READ = {"size": 10_000, "query": {"match_all": {}}}


class Raw:
    """The baseline: the same OpenSearch requests the app sends, POSTed straight
    to the node over kept-alive connections and JSON-decoded, no app in between.

    ``time(path, body, beside=...)`` sends ``body`` and, concurrently on a
    second connection, the ``beside`` request (as the app reads the
    completeness mark beside its search); returns the seconds until both answered.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or 9200
        self.conns = [http.client.HTTPConnection(host, port, timeout=120) for _ in range(2)]
        self.pool = ThreadPoolExecutor(max_workers=1)

    @staticmethod
    def post(conn: http.client.HTTPConnection, path: str, body: bytes) -> Any:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = json.loads(resp.read())
        # 404: an index not created yet (no completeness mark published), as the store reads it.
        assert resp.status in (200, 404), (resp.status, data)
        return data

    def time(self, path: str, body: dict, beside: tuple[str, dict] | None = None) -> float:
        main = json.dumps(body).encode()
        side = (beside[0], json.dumps(beside[1]).encode()) if beside else None
        t0 = time.perf_counter()
        job = self.pool.submit(self.post, self.conns[1], *side) if side else None
        data = self.post(self.conns[0], path, main)
        if job is not None:
            job.result()
        elapsed = time.perf_counter() - t0
        assert data["hits"]["hits"] is not None
        return elapsed

    def close(self) -> None:
        self.pool.shutdown()
        for conn in self.conns:
            conn.close()


def interleaved(
    app: Callable[[], float], raw: Callable[[], float], rounds: int, warm: int = 3
) -> dict[str, float]:
    """p50/p95 of ``app`` and ``raw`` timed in turns (ABBA: neither always on the
    warmer cache), and their ratios."""
    for _ in range(warm):
        app()
        raw()
    app_t: list[float] = []
    raw_t: list[float] = []
    for i in range(rounds):
        if i % 2:
            app_t.append(app())
            raw_t.append(raw())
        else:
            raw_t.append(raw())
            app_t.append(app())
    return {
        "app_ms_p50": round(pct(app_t, 0.5) * 1000, 1),
        "app_ms_p95": round(pct(app_t, 0.95) * 1000, 1),
        "raw_ms_p50": round(pct(raw_t, 0.5) * 1000, 1),
        "raw_ms_p95": round(pct(raw_t, 0.95) * 1000, 1),
        "ratio_p50": round(pct(app_t, 0.5) / pct(raw_t, 0.5), 3),
        "ratio_p95": round(pct(app_t, 0.95) / pct(raw_t, 0.95), 3),
    }


def load_average() -> float:
    """The 1-minute load average (printed beside every figure)."""
    import os

    return round(os.getloadavg()[0], 2)
