"""Sign-in outcomes out of the box: success, failure (attempted name, cut, with a reason) and
sign-out, for Flask-Login (signals plus the failure hook) and FastAPI (helpers)."""

# No `from __future__ import annotations`: FastAPI must see real annotations.
import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from useraudit.middleware.recorder import Recorder
from useraudit.middleware.signin import MAX_ATTEMPTED_NAME

from .conftest import spool_events


@pytest.fixture
def rec(spool_dir: Path) -> Any:
    r = Recorder(spool_dir, durability="sync")
    yield r
    r.close()


class User:
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, uid: str, name: str) -> None:
        self.id, self.username = uid, name

    def get_id(self) -> str:
        return self.id


def outcomes(rec: Recorder) -> list[tuple[str, str, str | None, str | None, str | None]]:
    return [
        (
            e["event.action"],
            e["event.outcome"],
            e.get("user.name"),
            e.get("event.reason"),
            e.get("organization.id"),
        )
        for e in spool_events(rec.spool.directory)
    ]


def test_flask_login_success_failure_and_sign_out(rec: Recorder) -> None:
    """The quickstart's Flask app: Flask-Login signals give success and sign-out, the view's
    sign_in_failed() the failure with the attempted name (cut) and the reason."""
    from flask import Flask, request
    from flask_login import LoginManager, login_user, logout_user

    from useraudit.middleware.flask import UserAudit, sign_in_failed

    users = {"alice": User("u-1", "alice")}
    app = Flask("t")
    app.config["SECRET_KEY"] = "k"
    LoginManager(app).user_loader(lambda uid: next(u for u in users.values() if u.id == uid))

    @app.post("/login")
    def login() -> Any:
        name = request.form["username"]
        if name not in users or request.form["password"] != "pw":
            sign_in_failed(name, reason="wrong password")
            return "no", 401
        login_user(users[name])
        return "ok"

    @app.post("/logout")
    def logout() -> str:
        logout_user()
        return "bye"

    UserAudit(app, recorder=rec, account="acme")
    client = app.test_client()
    long_name = "x" * 1000
    assert client.post("/login", data={"username": long_name, "password": "a"}).status_code == 401
    assert client.post("/login", data={"username": "alice", "password": "pw"}).status_code == 200
    assert client.post("/logout").status_code == 200
    assert outcomes(rec) == [
        ("user.signed_in", "failure", "x" * MAX_ATTEMPTED_NAME, "wrong password", "acme"),
        ("user.signed_in", "success", "alice", None, "acme"),
        ("user.signed_out", "success", "alice", None, "acme"),
    ]


def test_failed_sign_in_names_are_masked_and_never_empty(rec: Recorder) -> None:
    """A secret typed into the name field is masked; an empty name is stored as '(empty)'."""
    from useraudit.middleware.signin import sign_in_failed

    sign_in_failed("password=hunter2hunter2", recorder=rec)
    sign_in_failed("", recorder=rec)
    names = [e["user.name"] for e in spool_events(rec.spool.directory)]
    assert "hunter2" not in names[0] and names[1] == "(empty)"


def test_fastapi_helpers_record_the_three_outcomes(rec: Recorder) -> None:
    """FastAPI's token endpoint uses signed_in / sign_in_failed / signed_out from the
    integration: three events under the installed account."""
    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel

    from useraudit.middleware.fastapi import install, sign_in_failed, signed_in, signed_out

    class Credentials(BaseModel):
        username: str
        password: str

    app = FastAPI()
    install(app, recorder=rec, account="acme")

    @app.post("/token")
    def token(form: Credentials) -> dict:
        if form.username != "alice" or form.password != "pw":
            sign_in_failed(form.username, reason="wrong password", recorder=rec)
            raise HTTPException(401)
        signed_in(User("u-1", "alice"), recorder=rec)
        return {"access_token": "t"}

    @app.post("/logout")
    def logout() -> dict:
        signed_out(User("u-1", "alice"), recorder=rec)
        return {}

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            bad = await client.post("/token", json={"username": "bob", "password": "x"})
            good = await client.post("/token", json={"username": "alice", "password": "pw"})
            out = await client.post("/logout")
            return [bad.status_code, good.status_code, out.status_code]

    assert asyncio.run(go()) == [401, 200, 200]
    assert outcomes(rec) == [
        ("user.signed_in", "failure", "bob", "wrong password", "acme"),
        ("user.signed_in", "success", "alice", None, "acme"),
        ("user.signed_out", "success", "alice", None, "acme"),
    ]
