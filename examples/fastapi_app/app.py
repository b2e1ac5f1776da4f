"""FastAPI example: ``uvicorn --app-dir examples fastapi_app.app:app --no-proxy-headers``.

Environment: ``USERAUDIT_SPOOL``, ``USERAUDIT_DURABILITY``,
``USERAUDIT_TRUSTED_PROXIES``.

Authentication happens in a dependency (bearer tokens), after the middleware
ran: ``audited(current_user, impersonator=...)`` hands the user to the audit
context. Sessions are signed bearer tokens; impersonation is a session token
that names the administrator too.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from demo_accounts import (
    BY_ID,
    USERS,
    Account,
    api_user,
    check_password,
    new_api_token,
    sign,
    unsign,
)
from fastapi import Body, Depends, FastAPI, Header, HTTPException
from fastapi.responses import StreamingResponse

import useraudit
from useraudit.middleware import context as audit_context
from useraudit.middleware.fastapi import ActingUser, audited, install
from useraudit.middleware.rules import Rule, Rules

RULES = Rules(
    [
        Rule("DELETE", "/tokens/{token_id}", "token.deleted"),
        Rule("GET", "/projects/{project}/export", "bot_project.exported"),
    ]
)

useraudit.configure(
    spool_dir=os.environ.get("USERAUDIT_SPOOL", "var/spool"),
    durability=os.environ.get("USERAUDIT_DURABILITY", "batch"),  # type: ignore[arg-type]
    account=os.environ.get("USERAUDIT_ACCOUNT", "example"),  # one tenant
)

app = FastAPI(title="useraudit FastAPI example")
install(app, trusted_proxies=int(os.environ.get("USERAUDIT_TRUSTED_PROXIES", "0")), rules=RULES)


class SessionUser:
    """The signed-in account plus the administrator acting as it, if any."""

    def __init__(self, account: Account, impersonator: Account | None = None) -> None:
        self.account = account
        self.impersonator = impersonator
        self.id, self.username, self.email, self.full_name = (
            account.id,
            account.username,
            account.email,
            account.full_name,
        )


def current_user(authorization: Annotated[str | None, Header()] = None) -> SessionUser:
    token = (authorization or "")[7:] if (authorization or "").startswith("Bearer ") else ""
    payload = unsign(token) if token else None
    if payload and "sid" in payload and payload.get("uid") in BY_ID:
        return SessionUser(BY_ID[payload["uid"]], BY_ID.get(payload.get("imp") or ""))
    account = api_user(authorization)  # API tokens work too
    if account is not None:
        return SessionUser(account)
    raise HTTPException(status_code=401, detail="sign in")


CurrentUser = Annotated[
    SessionUser, Depends(audited(current_user, impersonator=lambda u: u.impersonator))
]


def _session_token(account: Account, impersonator: Account | None = None) -> str:
    return sign(
        {
            "sid": os.urandom(6).hex(),
            "uid": account.id,
            "imp": impersonator.id if impersonator else None,
        }
    )


@app.post("/login")
def login(data: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    username = str(data.get("username", ""))
    account = check_password(username, str(data.get("password", "")))
    if account is None:
        useraudit.record(
            "user.signed_in",
            outcome="failure",
            user={"name": username[:64]},
            reason="invalid credentials",
        )
        raise HTTPException(status_code=401, detail="invalid credentials")
    useraudit.record("user.signed_in", user=account)
    return {"ok": True, "token": _session_token(account)}


@app.post("/logout")
def logout(user: CurrentUser) -> dict[str, Any]:
    useraudit.record("user.signed_out")
    return {"ok": True}


@app.post("/profile")
def profile(user: CurrentUser, data: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    comments, params = useraudit.diff(
        {"full_name": user.full_name}, {"full_name": str(data.get("full_name", ""))}
    )
    useraudit.record("user.profile_updated", comments=comments, params=params)
    return {"ok": True}


@app.post("/password")
def password(user: CurrentUser, data: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    if data.get("old_password") != user.account.password:
        raise HTTPException(status_code=403, detail="wrong password")
    useraudit.record(
        "user.password_changed",
        params={"old_password": data.get("old_password"), "new_password": data.get("new_password")},
    )
    return {"ok": True}


@app.post("/users/{username}/roles")
def roles(
    username: str, user: CurrentUser, data: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    if not user.account.is_admin:
        raise HTTPException(status_code=403)
    target = USERS.get(username)
    if target is None:
        raise HTTPException(status_code=404)
    useraudit.record(
        "user.roles_updated",
        target_user=target,
        params={"roles": [str(r) for r in data.get("roles", [])]},
    )
    return {"ok": True}


@app.post("/tokens")
def create_token(user: CurrentUser, data: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    project = data.get("project")
    tid, secret = new_api_token(user.account, project)
    useraudit.record("token.created", token_id=tid, project=project, params={"token": secret})
    return {"id": tid, "token": secret}


@app.post("/tokens/{tid}/refresh")
def refresh_token(tid: str, user: CurrentUser) -> dict[str, Any]:
    _, secret = new_api_token(user.account, None)
    useraudit.record("token.refreshed", token_id=tid)
    return {"id": tid, "token": secret}


@app.delete("/tokens/{tid}")
def delete_token(tid: str, user: CurrentUser) -> dict[str, Any]:
    return {"ok": True}  # recorded by the rule


@app.get("/projects/{project}/export")
def export(project: str, user: CurrentUser) -> StreamingResponse:
    def rows() -> Any:
        yield "id,name\n"
        for i in range(100):
            yield f"{i},row {i} of {project}\n"

    return StreamingResponse(rows(), media_type="text/csv")


@app.post("/impersonate/{username}")
def impersonate(username: str, user: CurrentUser) -> dict[str, Any]:
    if not user.account.is_admin:
        raise HTTPException(status_code=403)
    target = USERS.get(username)
    if target is None:
        raise HTTPException(status_code=404)
    useraudit.record(
        "user.signed_in", user=target, impersonator=user.account, comments="impersonation started"
    )
    return {"ok": True, "token": _session_token(target, impersonator=user.account)}


@app.get("/whoami")
def whoami(actor: ActingUser) -> dict[str, Any]:
    return {"actor": actor}


@app.get("/late")
def late(authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    """Records before authenticating: the event is held until the user is known."""
    useraudit.record("message_log.downloaded", project="p-late")
    account = api_user(authorization)
    if account is not None:
        audit_context.set_user(account)
    return {"ok": True}


@app.get("/boom")
def boom() -> None:
    raise RuntimeError("host bug")
