"""Real servers under load: concurrent workers, and kill -9 with sync durability."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from .conftest import CHROME_UA, ship, spool_events, stored


def test_four_gunicorn_workers_lose_and_interleave_nothing(live_app: Any, os_store: Any) -> None:
    """800 requests over gunicorn -w 4 give exactly 800 intact events, one per request id."""
    app = live_app("flask", workers=4, trusted_proxies=0)
    sent: list[str] = []
    lock = threading.Lock()

    def user_session(n: int) -> None:
        with app.client(headers={"User-Agent": CHROME_UA}) as c:
            assert (
                c.post("/login", json={"username": "carol", "password": "carol-pass"}).status_code
                == 200
            )
            for i in range(50):
                rid = f"w{n}-{i}-{uuid.uuid4().hex[:8]}"
                r = c.post(
                    "/profile",
                    json={"full_name": f"Carol {n}/{i} " + "x" * (i * 20)},
                    headers={"X-Request-ID": rid},
                )
                assert r.status_code == 200
                with lock:
                    sent.append(rid)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(user_session, range(16)))
    app.stop()
    events = spool_events(app.spool)
    updates = [e for e in events if e["event.action"] == "user.profile_updated"]
    assert sorted(e["http.request.id"] for e in updates) == sorted(sent)
    assert len({e["event.id"] for e in events}) == len(events) == 800 + 16
    pids = {seg.name.split("-")[1] for seg in app.spool.glob("*.seg")}
    assert len(pids) >= 2, "the workers should have written their own segments"

    stats = ship(app.spool, os_store)
    assert (stats.shipped, stats.duplicates, stats.dead_lettered, stats.damaged) == (816, 0, 0, 0)
    docs = stored(os_store)
    assert {
        d["http.request.id"] for d in docs if d["event.action"] == "user.profile_updated"
    } == set(sent)
    assert all(d["user.name"] == "carol" for d in docs)


def test_sync_durability_survives_kill_9(live_app: Any, os_store: Any) -> None:
    """durability=sync: every request the client saw answered has its event stored after kill -9."""
    app = live_app("fastapi", durability="sync", trusted_proxies=0)
    with app.client() as c:
        token = c.post("/login", json={"username": "alice", "password": "alice-pass"}).json()[
            "token"
        ]
        c.headers["Authorization"] = f"Bearer {token}"
        api_token = c.post("/tokens", json={"project": "p-1"}).json()["token"]
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def hammer(n: int) -> None:
        # /profile spools inside the view; /late holds its event until the
        # response starts (the user is bound after it was recorded).
        with httpx.Client(base_url=app.url, timeout=5) as c:
            i = 0
            while not stop.is_set():
                rid = f"k{n}-{i}"
                i += 1
                try:
                    if i % 2:
                        r = c.post(
                            "/profile",
                            json={"full_name": rid},
                            headers={"Authorization": f"Bearer {token}", "X-Request-ID": rid},
                        )
                    else:
                        r = c.get(
                            "/late",
                            headers={"Authorization": f"Bearer {api_token}", "X-Request-ID": rid},
                        )
                except httpx.TransportError:
                    return  # the server died under us: not acknowledged
                if r.status_code == 200:
                    with lock:
                        acknowledged.append(rid)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    app.stop(signal.SIGKILL)  # while requests are in flight
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acknowledged) > 50
    assert app.proc.returncode == -signal.SIGKILL

    stats = ship(app.spool, os_store)
    assert stats.dead_lettered == 0
    docs = stored(os_store)
    have = {d.get("http.request.id") for d in docs}
    missing = [rid for rid in acknowledged if rid not in have]
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
    late = [d for d in docs if d["event.action"] == "message_log.downloaded"]
    assert late and all(d["user.name"] == "alice" for d in late), "held events lost their user"


def test_sync_rule_events_survive_kill_9_under_gunicorn(live_app: Any, os_store: Any) -> None:
    """gunicorn -w 2, sync: rule events of answered requests (sized, streamed) survive kill -9."""
    app = live_app("flask", workers=2, durability="sync", trusted_proxies=0)
    with app.client() as c:
        assert (
            c.post("/login", json={"username": "alice", "password": "alice-pass"}).status_code
            == 200
        )
        cookies = dict(c.cookies)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def hammer(n: int) -> None:
        with httpx.Client(base_url=app.url, timeout=5, cookies=cookies) as c:
            i = 0
            while not stop.is_set():
                rid = f"g{n}-{i}"
                i += 1
                try:
                    if i % 2:  # JSON body with Content-Length → token.deleted rule
                        r = c.delete(f"/tokens/tok-{rid}", headers={"X-Request-ID": rid})
                    else:  # streamed CSV → bot_project.exported rule
                        r = c.get(f"/projects/p-{n}/export", headers={"X-Request-ID": rid})
                        r.read()
                except httpx.TransportError:
                    return
                if r.status_code == 200:
                    with lock:
                        acknowledged.append(rid)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    app.stop(signal.SIGKILL)  # master and workers, while requests are in flight
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acknowledged) > 30

    stats = ship(app.spool, os_store)
    assert stats.dead_lettered == 0
    docs = stored(os_store)
    have = {d.get("http.request.id") for d in docs}
    missing = [rid for rid in acknowledged if rid not in have]
    assert not missing, f"{len(missing)} acknowledged rule events lost, e.g. {missing[:5]}"
    assert {d["event.action"] for d in docs} >= {"token.deleted", "bot_project.exported"}
