"""Sign-in throttle across threads and processes; sessions that end server-side.

* 30 wrong-password attempts fired at once, by threads of one app and by
  several processes sharing the SQLite limits storage (as the workers of
  ``useraudit web`` do): at most 5 are judged, the rest get 429.
* A session cookie saved before sign-out, before "sign out everywhere" or
  before a password or rights change is replayed from a fresh client: it
  must be anonymous (sent to sign-in), not a signed-in admin.
"""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest

from .conftest import PASSWORD, csrf_token, login, make_app

COOKIE = "useraudit_session"


@pytest.fixture
def users(tmp_path: Path) -> Any:
    from useraudit.webapp.users import UserStore

    store = UserStore(tmp_path / "webusers.db")
    store.add("ann", PASSWORD, email="ann@example.com")
    store.grant("ann", "tenant-a")
    return store


def _attempts(app: Any, n: int, username: str = "ann") -> list[int]:
    """n prepared wrong-password attempts released at the same moment."""
    clients = [app.test_client() for _ in range(n)]
    tokens = [csrf_token(c) for c in clients]
    barrier = threading.Barrier(n)
    codes: list[int] = []
    lock = threading.Lock()

    def attempt(client: Any, token: str) -> None:
        barrier.wait()
        response = client.post(
            "/login", data={"username": username, "password": "wrong", "csrf_token": token}
        )
        with lock:
            codes.append(response.status_code)

    threads = [
        threading.Thread(target=attempt, args=ct) for ct in zip(clients, tokens, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return codes


def test_thirty_parallel_attempts_get_at_most_five_judged(
    tenants_store: Any, users: Any, ui_spool: Any
) -> None:
    app = make_app(tenants_store, users)
    codes = _attempts(app, 30)
    assert len(codes) == 30
    assert codes.count(401) <= 5, codes
    assert codes.count(401) + codes.count(429) == 30, codes


def _worker(args: tuple[str, str, int, Any]) -> list[int]:
    limits_db, users_db, n, start = args
    from useraudit.webapp.app import create_app
    from useraudit.webapp.users import UserStore

    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SESSION_COOKIE_SECURE": False,
            "USERAUDIT_STORE": "sqlite:///" + str(Path(limits_db).parent / "unused.db"),
            "USERAUDIT_USERS": UserStore(users_db),
            "USERAUDIT_LIMITS_STORAGE": f"sqlite:///{limits_db}",
        }
    )
    clients = [app.test_client() for _ in range(n)]
    tokens = [csrf_token(c) for c in clients]
    start.wait()
    return [
        c.post("/login", data={"username": "ann", "password": "wrong", "csrf_token": t}).status_code
        for c, t in zip(clients, tokens, strict=True)
    ]


def test_the_limit_holds_across_worker_processes(users: Any, tmp_path: Path) -> None:
    """Three processes, ten attempts each, one shared SQLite limits storage."""
    limits_db = tmp_path / "limits.db"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(3) as pool:
            pending = pool.map_async(_worker, [(str(limits_db), str(users.path), 10, start)] * 3)
            import time

            time.sleep(8)  # all three apps built and their forms fetched
            start.set()
            results = pending.get(240)
    codes = [c for r in results for c in r]
    assert len(codes) == 30
    assert codes.count(401) <= 5, codes
    assert codes.count(401) + codes.count(429) == 30, codes


def test_the_sqlite_limits_storage_adds_atomically(tmp_path: Path) -> None:
    from limits import parse
    from limits.storage import storage_from_string
    from limits.strategies import FixedWindowRateLimiter

    from useraudit.webapp import limits_sqlite  # noqa: F401

    limiter = FixedWindowRateLimiter(storage_from_string(f"sqlite:///{tmp_path / 'l.db'}"))
    item = parse("5 per minute")
    results: list[bool] = []
    barrier = threading.Barrier(20)

    def hit() -> None:
        barrier.wait()
        results.append(limiter.hit(item, "k"))

    threads = [threading.Thread(target=hit) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 5
    assert limiter.get_window_stats(item, "k").remaining == 0


def test_a_next_with_cr_lf_is_ignored_and_not_counted_as_a_failure(
    tenants_store: Any, users: Any, ui_spool: Any
) -> None:
    app = make_app(tenants_store, users, USERAUDIT_LOGIN_LIMIT="1 per minute")
    for _ in range(3):
        client = app.test_client()
        response = client.post(
            "/login",
            data={
                "username": "ann",
                "password": PASSWORD,
                "next": "/accounts\r\nSet-Cookie: evil=1",
                "csrf_token": csrf_token(client),
            },
        )
        assert response.status_code == 302
        assert (
            "\r" not in response.headers["Location"] and "evil" not in response.headers["Location"]
        )


def _saved_cookie(client: Any) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    return cookie.value


def _replay(app: Any, value: str) -> int:
    fresh = app.test_client()
    fresh.set_cookie(COOKIE, value)
    return fresh.get("/a/tenant-a/actions").status_code


def test_a_cookie_saved_before_sign_out_is_dead_after_it(
    tenants_store: Any, users: Any, ui_spool: Any
) -> None:
    app = make_app(tenants_store, users)
    client = app.test_client()
    assert login(client, "ann").status_code == 302
    saved = _saved_cookie(client)
    assert _replay(app, saved) == 200  # the replay works while signed in
    token = csrf_token(client, "/a/tenant-a/actions")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert _replay(app, saved) == 302  # to the sign-in page


def test_sign_out_everywhere_ends_the_other_browsers_sessions(
    tenants_store: Any, users: Any, ui_spool: Any
) -> None:
    app = make_app(tenants_store, users)
    laptop, phone = app.test_client(), app.test_client()
    assert login(laptop, "ann").status_code == 302
    assert login(phone, "ann").status_code == 302
    saved_phone = _saved_cookie(phone)
    assert _replay(app, saved_phone) == 200
    token = csrf_token(laptop, "/a/tenant-a/actions")
    assert laptop.post("/logout/everywhere", data={"csrf_token": token}).status_code == 302
    assert _replay(app, saved_phone) == 302
    assert phone.get("/a/tenant-a/actions").status_code == 302
    assert users.sessions.count(users.by_username("ann").id) == 0


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda u: u.set_password("ann", "a brand new password"), id="password"),
        pytest.param(lambda u: u.revoke("ann", "tenant-a"), id="revoke"),
        pytest.param(lambda u: u.grant("ann", "tenant-b"), id="grant"),
    ],
)
def test_a_password_or_rights_change_ends_the_users_sessions(
    tenants_store: Any, users: Any, ui_spool: Any, change: Any
) -> None:
    app = make_app(tenants_store, users)
    client = app.test_client()
    assert login(client, "ann").status_code == 302
    saved = _saved_cookie(client)
    assert _replay(app, saved) == 200
    change(users)
    assert _replay(app, saved) == 302
