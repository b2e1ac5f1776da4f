"""Flask and FastAPI integrations in-process: installation, signals, dependencies, fail-closed."""

# No `from __future__ import annotations`: FastAPI must see the annotations
# of the endpoints defined inside the factory below as real objects.
from pathlib import Path
from typing import Annotated, Any

import pytest

from useraudit.middleware.recorder import Recorder

from .conftest import spool_events


@pytest.fixture
def rec(spool_dir: Path) -> Recorder:
    r = Recorder(spool_dir, durability="sync")
    yield r
    r.close()


class User:
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, uid: str, name: str) -> None:
        self.id, self.username, self.email = uid, name, f"{name}@example.com"

    def get_id(self) -> str:
        return self.id


def flask_app(rec: Recorder, **options: Any) -> Any:
    from flask import Flask
    from flask_login import LoginManager, login_user, logout_user

    from useraudit.middleware.flask import UserAudit

    users = {"u-1": User("u-1", "alice")}
    app = Flask("t")
    app.config["SECRET_KEY"] = "k"
    lm = LoginManager(app)
    lm.user_loader(users.get)

    @app.post("/login")
    def login() -> str:
        login_user(users["u-1"])
        return "ok"

    @app.post("/logout")
    def logout() -> str:
        logout_user()
        return "ok"

    @app.post("/strict")
    def strict() -> str:
        rec.record("custom_role.created")
        return "ok"

    audit = UserAudit(recorder=rec, **options)
    audit.init_app(app)
    audit.init_app(app)  # twice: still one middleware
    return app


def test_flask_extension_installs_once_and_records_sign_in_out(rec: Recorder) -> None:
    """init_app twice wraps wsgi_app once; Flask-Login signals give signed_in/out with the user."""
    from useraudit.middleware.wsgi import AuditMiddleware

    app = flask_app(rec)
    assert isinstance(app.wsgi_app, AuditMiddleware)
    assert not isinstance(app.wsgi_app.app, AuditMiddleware)
    client = app.test_client()
    client.post("/login", environ_base={"REMOTE_ADDR": "198.51.100.4"}).close()
    client.post("/logout").close()
    got = [(e["event.action"], e.get("user.name")) for e in spool_events(rec.spool.directory)]
    assert got == [("user.signed_in", "alice"), ("user.signed_out", "alice")]
    assert spool_events(rec.spool.directory)[0]["source.address"] == "198.51.100.4"


def test_flask_fail_closed_view_error_is_503(
    spool_dir: Path, internal_errors: list[Exception]
) -> None:
    """A fail-closed recorder that cannot spool inside a view answers 503, not Flask's 500."""
    rec = Recorder(
        spool_dir, durability="sync", fail_closed=True, max_spool_bytes=10, full_policy="reject"
    )
    try:
        app = flask_app(rec)
        resp = app.test_client().post("/strict")
        assert resp.status_code == 503
        resp.close()
    finally:
        rec.close()
    internal_errors.clear()


def fastapi_app(rec: Recorder) -> Any:
    from fastapi import Depends, FastAPI, Header, HTTPException

    from useraudit.middleware.fastapi import ActingUser, audited, install

    app = FastAPI()
    install(app, recorder=rec)

    def current_user(authorization: Annotated[str | None, Header()] = None) -> User:
        if authorization != "Bearer good":
            raise HTTPException(401)
        return User("u-7", "jwt-user")

    CurrentUser = Annotated[User, Depends(audited(current_user, impersonator=lambda u: "admin-1"))]

    @app.get("/me")
    def me(user: CurrentUser, actor: ActingUser) -> dict:
        rec.record("token.updated", token_id="t-9")
        return {"actor": actor}

    @app.get("/strict")
    def strict() -> dict:
        rec.record("token.deleted")
        return {}

    return app


def call(app: Any, path: str, **kw: Any) -> Any:
    import asyncio

    import httpx

    async def go() -> Any:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(path, **kw)

    return asyncio.run(go())


def test_fastapi_dependency_binds_the_jwt_user(rec: Recorder) -> None:
    """A user authenticated in a dependency is the event's user; ActingUser returns it."""
    r = call(fastapi_app(rec), "/me", headers={"Authorization": "Bearer good"})
    assert r.status_code == 200 and r.json()["actor"]["name"] == "jwt-user"
    (ev,) = spool_events(rec.spool.directory)
    assert (ev["user.id"], ev["audit.impersonator.id"], ev["audit.token.id"]) == (
        "u-7",
        "admin-1",
        "t-9",
    )


def test_fastapi_fail_closed_is_503(spool_dir: Path, internal_errors: list[Exception]) -> None:
    """AuditError from a fail-closed recorder in an endpoint becomes 503."""
    rec = Recorder(
        spool_dir, durability="sync", fail_closed=True, max_spool_bytes=10, full_policy="reject"
    )
    try:
        assert call(fastapi_app(rec), "/strict").status_code == 503
    finally:
        rec.close()
    internal_errors.clear()


def test_route_templates_are_bound_after_routing(rec: Recorder) -> None:
    """Flask's url_rule and FastAPI's route path land in RequestContext.route after routing."""
    from fastapi import FastAPI
    from flask import Flask

    from useraudit.middleware.context import current
    from useraudit.middleware.fastapi import install
    from useraudit.middleware.flask import UserAudit

    seen = []
    fapp = Flask("r")

    @fapp.get("/items/<iid>")
    def item(iid: str) -> str:
        seen.append(current.get())
        return iid

    UserAudit(fapp, recorder=rec)
    fapp.test_client().get("/items/42").close()

    api = FastAPI()
    install(api, recorder=rec)

    @api.get("/things/{tid}")
    async def thing(tid: str) -> dict:
        seen.append(current.get())
        return {}

    call(api, "/things/7")
    assert [c.route for c in seen] == ["/items/<iid>", "/things/{tid}"]


def test_flask_streamed_body_that_records_gets_status_and_route(rec: Recorder) -> None:
    """A body that records only while it streams: its context, made then, knows the response.

    With ``stream_with_context`` (what Flask asks of a generator that uses
    the request) the route is there too.
    """
    from flask import Flask, stream_with_context

    from useraudit.middleware.context import current
    from useraudit.middleware.flask import UserAudit

    app = Flask("s")
    seen = []

    @app.get("/exports/<eid>")
    def export(eid: str) -> Any:
        def rows() -> Any:
            yield "a,b\n"
            ctx = current.get()  # the first ask: the context is made now
            seen.append((ctx, ctx.route))  # as a log line would read it
            rec.record("project.exported", comments=f"export {eid}")
            yield "1,2\n"

        return app.response_class(stream_with_context(rows()), status=201, mimetype="text/csv")

    UserAudit(app, recorder=rec)
    response = app.test_client().get("/exports/9", environ_base={"REMOTE_ADDR": "198.51.100.4"})
    assert response.data == b"a,b\n1,2\n"
    response.close()
    ((ctx, route),) = seen
    assert (ctx.started, ctx.status, route) == (True, 201, "/exports/<eid>")
    (ev,) = spool_events(rec.spool.directory)
    assert (ev["event.action"], ev["http.response.status_code"]) == ("project.exported", 201)
    assert ev["source.address"] == "198.51.100.4"
