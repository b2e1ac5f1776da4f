"""The account contract: every entry point takes a fixed account= or a callback, and an
event without an account is filed under ``unassigned``, flagged, and shown to admins."""

# No `from __future__ import annotations`: FastAPI must see real annotations.
import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from useraudit.indexer.enrich import Enricher
from useraudit.middleware import recorder as recorder_mod
from useraudit.middleware.recorder import Recorder
from useraudit.schema import UNASSIGNED_ACCOUNT

from .conftest import ROOT, ship, spool_events


@pytest.fixture
def rec(spool_dir: Path) -> Any:
    r = Recorder(spool_dir, durability="sync")
    yield r
    r.close()


def _flask(rec: Recorder, **options: Any) -> Any:
    from useraudit.middleware.flask import UserAudit

    app = Flask("t")

    @app.post("/a/<account>/do")
    def do(account: str) -> str:
        rec.record("custom_role.created", user="u-1")
        return "ok"

    UserAudit(app, recorder=rec, **options)
    return app.test_client()


def _wsgi(rec: Recorder, **options: Any) -> Any:
    from useraudit.middleware.wsgi import AuditMiddleware

    def app(environ: dict, start_response: Any) -> list[bytes]:
        rec.record("custom_role.created", user="u-1")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    from werkzeug.test import Client

    return Client(AuditMiddleware(app, recorder=rec, **options))


class AsgiClient:
    """A synchronous face on httpx's ASGI transport (starlette's TestClient warns)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def post(self, path: str) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.post(path)

        return asyncio.run(go())


def _fastapi(rec: Recorder, **options: Any) -> Any:
    from fastapi import FastAPI

    from useraudit.middleware.fastapi import install

    app = FastAPI()

    @app.post("/a/{account}/do")
    def do(account: str) -> str:
        rec.record("custom_role.created", user="u-1")
        return "ok"

    install(app, recorder=rec, **options)
    return AsgiClient(app)


def _asgi(rec: Recorder, **options: Any) -> Any:
    from useraudit.middleware.asgi import AuditMiddleware

    async def app(scope: dict, receive: Any, send: Any) -> None:
        rec.record("custom_role.created", user="u-1")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return AsgiClient(AuditMiddleware(app, recorder=rec, **options))


ENTRY_POINTS = {"flask": _flask, "wsgi": _wsgi, "fastapi": _fastapi, "asgi": _asgi}


def _account_from_path(request: Any) -> tuple[str, str]:
    """The multi-tenant callback: the account is the path's second segment."""
    path = request.get("PATH_INFO") or request.get("path")
    return path.split("/")[2], "Account " + path.split("/")[2]


@pytest.mark.parametrize("kind", sorted(ENTRY_POINTS))
def test_fixed_account_reaches_every_event(kind: str, rec: Recorder) -> None:
    """account="acme" on the middleware puts organization.id=acme on the request's events."""
    client = ENTRY_POINTS[kind](rec, account="acme")
    assert client.post("/a/other/do").status_code == 200
    (event,) = spool_events(rec.spool.directory)
    assert event["organization.id"] == "acme"


@pytest.mark.parametrize("kind", sorted(ENTRY_POINTS))
def test_get_account_callback_names_each_requests_account(kind: str, rec: Recorder) -> None:
    """get_account=request -> (id, name) gives each request its own account."""
    client = ENTRY_POINTS[kind](rec, get_account=_account_from_path)
    assert client.post("/a/globex/do").status_code == 200
    assert client.post("/a/initech/do").status_code == 200
    events = spool_events(rec.spool.directory)
    got = [(e["organization.id"], e["organization.name"]) for e in events]
    assert got == [("globex", "Account globex"), ("initech", "Account initech")]


@pytest.mark.parametrize(
    "options, message",
    [
        pytest.param({"account": "Acme Corp"}, "not an account id", id="space-in-id"),
        pytest.param({"account": "x" * 129}, "not an account id", id="too-long"),
        pytest.param(
            {"account": "acme", "get_account": lambda r: "acme"}, "not both", id="both-given"
        ),
    ],
)
@pytest.mark.parametrize("kind", sorted(ENTRY_POINTS))
def test_unusable_account_is_refused_at_configuration(
    kind: str, options: dict, message: str, rec: Recorder
) -> None:
    """An account the UI could not open, or two sources of it, fail when the app starts."""
    with pytest.raises(ValueError, match=message):
        ENTRY_POINTS[kind](rec, **options)


def test_record_outside_a_request_uses_fixed_account_or_callback(spool_dir: Path) -> None:
    """A job or script: configure(account=...) or configure(get_account=...) fills the account."""
    fixed = Recorder(spool_dir / "a", durability="sync", account="acme")
    fixed.record("custom_role.created", user="cron")
    fixed.record("custom_role.created", user="cron", account="globex")  # explicit wins
    assert [e["organization.id"] for e in spool_events(spool_dir / "a")] == ["acme", "globex"]
    fixed.close()

    current = {"account": "initech"}
    called = Recorder(spool_dir / "b", durability="sync", get_account=lambda: current["account"])
    called.record("custom_role.created", user="cron")
    current["account"] = "umbrella"
    called.record("custom_role.created", user="cron")
    assert [e["organization.id"] for e in spool_events(spool_dir / "b")] == [
        "initech",
        "umbrella",
    ]
    called.close()
    with pytest.raises(ValueError, match="not both"):
        Recorder(spool_dir / "c", account="a", get_account=lambda: "b")


def test_failing_account_callback_keeps_the_event(
    spool_dir: Path, internal_errors: list[Exception]
) -> None:
    """A get_account that raises loses no event: it is spooled without account (then filed
    under unassigned) and the error is logged and counted."""
    rec = Recorder(spool_dir, durability="sync", get_account=lambda: 1 / 0)
    assert rec.record("custom_role.created", user="cron") is not None
    (event,) = spool_events(spool_dir)
    assert "organization.id" not in event
    assert len(internal_errors) == 1
    internal_errors.clear()
    rec.close()


def test_structlog_events_take_the_configured_account(spool_dir: Path) -> None:
    """An audit event routed from a structlog call gets the recorder's fixed account."""
    import structlog

    from useraudit.middleware.structlog import RouteAuditEvents

    rec = Recorder(spool_dir, durability="sync", account="acme")
    log = structlog.wrap_logger(
        structlog.testing.ReturnLogger(),
        processors=[RouteAuditEvents(recorder=rec), structlog.processors.JSONRenderer()],
    )
    log.info("token.created", token_id="t-1", user="u-1")
    (event,) = spool_events(spool_dir)
    assert (event["event.action"], event["organization.id"]) == ("token.created", "acme")
    rec.close()


def test_missing_account_is_logged_once(spool_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The first event without an account says, in the host's log, how to give one."""
    recorder_mod._warned_no_account = False
    rec = Recorder(spool_dir, durability="sync")
    with caplog.at_level(logging.WARNING, logger="useraudit"):
        rec.record("custom_role.created", user="u-1")
        rec.record("custom_role.created", user="u-1")
    warnings = [r.getMessage() for r in caplog.records if "has no account" in r.getMessage()]
    assert len(warnings) == 1 and "account=" in warnings[0] and UNASSIGNED_ACCOUNT in warnings[0]
    rec.close()


@pytest.mark.parametrize(
    "raw, flag, name",
    [
        pytest.param({}, "missing_account", None, id="missing"),
        pytest.param({"organization.id": "Acme Corp"}, "invalid_account", "Acme Corp", id="bad"),
    ],
)
def test_enricher_files_accountless_events_under_unassigned(
    raw: dict, flag: str, name: str | None
) -> None:
    """No account or an unusable id: organization.id=unassigned, flagged, the id kept as name."""
    doc = Enricher()({"event.action": "user.signed_in", "user.id": "u-1", **raw})
    assert doc["organization.id"] == UNASSIGNED_ACCOUNT
    assert flag in doc["audit.flags"]
    assert doc.get("organization.name") == name
    good = Enricher()({"event.action": "user.signed_in", "organization.id": "acme"})
    assert good["organization.id"] == "acme"
    assert not {"missing_account", "invalid_account"} & set(good.get("audit.flags", ()))


@pytest.fixture(params=["sqlite", "opensearch"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        from useraudit.store.sqlite import SQLiteStore

        store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
        store.install()
        yield store
        store.close()
    else:
        yield request.getfixturevalue("os_store")


def test_accountless_events_are_listed_and_admins_are_told(
    any_store: Any, spool_dir: Path, tmp_path: Path
) -> None:
    """Shipped into either store, an accountless event is in the unassigned account; every
    admin sees a notice saying so and how to fix it; an admin of that account can open it."""
    from support import CSRF_RE

    from useraudit.webapp.app import create_app
    from useraudit.webapp.users import UserStore

    users = UserStore(tmp_path / "webusers.db")
    users.add("alice", "correct horse battery")
    users.grant("alice", "acme")
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "k",
            "SESSION_COOKIE_SECURE": False,
            "USERAUDIT_STORE": any_store,
            "USERAUDIT_USERS": users,
        }
    )
    rec = Recorder(spool_dir, durability="sync", account="acme")
    rec.record("custom_role.created", user="u-1")
    rec.close()
    ship(spool_dir, any_store)
    client = app.test_client()
    token = CSRF_RE.search(client.get("/login").get_data(as_text=True)).group(1)
    client.post(
        "/login",
        data={"username": "alice", "password": "correct horse battery", "csrf_token": token},
    )
    page = client.get("/a/acme/actions?period=7d").get_data(as_text=True)
    assert 'data-testid="unassigned-notice"' not in page

    rec = Recorder(spool_dir, durability="sync")
    rec.record("custom_role.created", user="u-2")
    rec.close()
    ship(spool_dir, any_store)
    assert UNASSIGNED_ACCOUNT in any_store.accounts()
    app.extensions["useraudit"].pop("unassigned_count", None)  # the minute's cache
    page = client.get("/a/acme/actions?period=7d").get_data(as_text=True)
    assert 'data-testid="unassigned-notice"' in page
    assert "1 event of the last 7 days arrived without an account" in page
    assert f"useraudit users grant alice {UNASSIGNED_ACCOUNT}" in page

    users.grant("alice", UNASSIGNED_ACCOUNT)
    # A change of rights ends the user's sessions (docs/security.md): sign in again.
    token = CSRF_RE.search(client.get("/login").get_data(as_text=True)).group(1)
    client.post(
        "/login",
        data={"username": "alice", "password": "correct horse battery", "csrf_token": token},
    )
    listing = client.get(f"/a/{UNASSIGNED_ACCOUNT}/actions?period=7d").get_data(as_text=True)
    assert "u-2" in listing
    from useraudit.store.query import Query

    (doc,) = any_store.iterate(Query(UNASSIGNED_ACCOUNT))
    assert (doc["user.id"], doc["audit.flags"]) == ("u-2", ["missing_account"])


DJANGO_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="k", ALLOWED_HOSTS=["testserver"], ROOT_URLCONF=__name__, USE_TZ=True,
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                        "django.contrib.sessions", "useraudit.middleware.django.UserAuditConfig"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware",
                    "django.contrib.auth.middleware.AuthenticationMiddleware",
                    "useraudit.middleware.django.AuditMiddleware"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        USERAUDIT={"SPOOL_DIR": sys.argv[1], "DURABILITY": "sync", **json.loads(sys.argv[2])},
    )
    django.setup()
    from django.contrib.auth import authenticate
    from django.http import HttpResponse
    from django.test import Client
    from django.urls import path
    import useraudit

    def do(request, account):
        useraudit.record("custom_role.created", user="u-1")
        authenticate(request, username="mallory" * 40, password="nope")
        return HttpResponse("ok")

    urlpatterns = [path("a/<account>/do", do)]
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    assert Client().post("/a/globex/do").status_code == 200
    """
)


@pytest.mark.parametrize(
    "settings, expected",
    [
        pytest.param({"ACCOUNT": "acme"}, "acme", id="ACCOUNT"),
        pytest.param(
            {"GET_ACCOUNT": "tests_account_callbacks.account_of_request"},
            "globex",
            id="GET_ACCOUNT",
        ),
    ],
)
def test_django_settings_give_the_account(
    settings: dict, expected: str, spool_dir: Path, tmp_path: Path
) -> None:
    """USERAUDIT["ACCOUNT"] or ["GET_ACCOUNT"] names the account of Django's events, the
    user_login_failed event included (attempted name cut to 128 characters, with a reason)."""
    script = tmp_path / "django_account.py"
    script.write_text(DJANGO_SCRIPT)
    (tmp_path / "tests_account_callbacks.py").write_text(
        "def account_of_request(request):\n    return request.path.split('/')[2]\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT / 'tests'}"}
    done = subprocess.run(
        [sys.executable, str(script), str(spool_dir), json.dumps(settings)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    events = spool_events(spool_dir)
    assert [(e["event.action"], e["event.outcome"]) for e in events] == [
        ("custom_role.created", "success"),
        ("user.signed_in", "failure"),
    ]
    assert {e["organization.id"] for e in events} == {expected}
    assert events[1]["user.name"] == ("mallory" * 40)[:128]
    assert "invalid credentials" in events[1]["event.reason"]
