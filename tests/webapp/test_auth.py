"""Sign-in, sign-out, cookies, CSRF and throttling of the admin UI."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .conftest import PASSWORD, csrf_token, login, make_app


def _signed_in(client: Any) -> bool:
    response = client.get("/accounts")
    return not (response.status_code == 302 and "/login" in response.headers["Location"])


def test_sign_in_redirects_to_accounts_and_records_success(client: Any, audit_spool: Any) -> None:
    """A correct password signs in and is recorded as
    user.signed_in/success in the user's account."""
    response = login(client, "alice")
    assert response.status_code == 302 and response.headers["Location"] == "/accounts"
    events = [e for e in audit_spool() if e["event.action"] == "user.signed_in"]
    assert [(e["event.outcome"], e["organization.id"], e["user.name"]) for e in events] == [
        ("success", "acme", "alice")
    ]
    assert events[0]["source.address"] == "127.0.0.1" and events[0]["user.id"].startswith("u-")


def test_wrong_password_is_refused_and_recorded_as_failure(client: Any, audit_spool: Any) -> None:
    """A wrong password answers 401 with a message and records a failure with its reason."""
    response = login(client, "bob", "not the password")
    assert response.status_code == 401
    assert "Wrong username or password" in response.get_data(as_text=True)
    assert not _signed_in(client)
    events = audit_spool()
    assert {(e["event.outcome"], e["organization.id"]) for e in events} == {
        ("failure", "acme"),
        ("failure", "globex"),
    }
    assert all(e["event.reason"] == "wrong username or password" for e in events)


def test_unknown_user_failure_goes_to_the_ui_account(client: Any, audit_spool: Any) -> None:
    """A sign-in attempt for a username nobody has is recorded in the UI's own account."""
    assert login(client, "nobody", "whatever123").status_code == 401
    (event,) = audit_spool()
    assert event["organization.id"] == "useraudit" and event["user.name"] == "nobody"
    assert event["event.outcome"] == "failure"


def test_sign_out_needs_post_with_csrf_and_is_recorded(client: Any, audit_spool: Any) -> None:
    """Sign-out is a CSRF-protected POST and is recorded as user.signed_out."""
    login(client, "alice")
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400  # no CSRF token
    assert _signed_in(client)
    token = csrf_token(client, "/a/acme/actions")
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert not _signed_in(client)
    assert [e["event.action"] for e in audit_spool()] == ["user.signed_in", "user.signed_out"]


def test_login_form_without_csrf_token_is_refused(client: Any) -> None:
    """Posting the sign-in form without its CSRF token is a 400, even with the right password."""
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert "Form expired" in response.get_data(as_text=True)
    assert not _signed_in(client)


def test_session_cookie_flags(seeded_store: Any, users_db: Any, audit_spool: Any) -> None:
    """The session cookie is HttpOnly, SameSite=Lax and Secure unless configured off."""
    app = make_app(seeded_store, users_db, SESSION_COOKIE_SECURE=True)
    client = app.test_client()
    page = client.get("/login", base_url="https://localhost").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    response = client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": token},
        base_url="https://localhost",
    )
    cookie = next(
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("useraudit_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    insecure = make_app(seeded_store, users_db).test_client()
    token = csrf_token(insecure)
    response = insecure.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token}
    )
    cookie = next(
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("useraudit_session=")
    )
    assert "HttpOnly" in cookie and "Secure" not in cookie


def test_sign_in_starts_a_new_session(app: Any, client: Any) -> None:
    """Nothing planted in the session before sign-in survives it, and the
    old cookie stays anonymous."""
    with client.session_transaction() as sess:
        sess["planted"] = "by-attacker"
    before = client.get_cookie("useraudit_session").value
    login(client, "alice")
    with client.session_transaction() as sess:
        assert "planted" not in sess and sess.get("_user_id")
    assert client.get_cookie("useraudit_session").value != before
    other = app.test_client()
    other.set_cookie("useraudit_session", before)
    assert "/login" in other.get("/accounts").headers["Location"]


@pytest.mark.parametrize(
    "target",
    ["//evil.example/x", "https://evil.example/", "/\\evil.example"],
    ids=["scheme-relative", "absolute", "backslash"],
)
def test_next_parameter_is_never_an_open_redirect(client: Any, target: str) -> None:
    """Only same-site paths are honoured in ?next= after sign-in."""
    token = csrf_token(client)
    response = client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": token, "next": target},
    )
    assert response.headers["Location"] == "/accounts"


def test_next_parameter_returns_to_the_page(client: Any) -> None:
    """A protected page sends the visitor to sign in and back to it afterwards."""
    response = client.get("/a/acme/actions?period=24h")
    assert response.status_code == 302 and "/login?next=" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'value="/a/acme/actions?period=24h"' in page
    token = csrf_token(client)
    response = client.post(
        "/login",
        data={
            "username": "alice",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "/a/acme/actions?period=24h",
        },
    )
    assert response.headers["Location"] == "/a/acme/actions?period=24h"


def test_sixth_rapid_failure_for_one_account_is_throttled(client: Any, audit_spool: Any) -> None:
    """Five wrong passwords for one username from five IPs are answered; the 6th is 429."""
    codes = [
        login(
            client, "bob", "wrong-pass", environ_base={"REMOTE_ADDR": f"198.51.100.{i}"}
        ).status_code
        for i in range(1, 7)
    ]
    assert codes == [401] * 5 + [429]
    # Even the right password is refused while the account is throttled.
    assert login(client, "bob", environ_base={"REMOTE_ADDR": "198.51.100.99"}).status_code == 429
    reasons = [e.get("event.reason") for e in audit_spool() if e["organization.id"] == "acme"]
    assert reasons.count("too many failed sign-in attempts") == 2


def test_sixth_rapid_failure_from_one_ip_is_throttled(client: Any) -> None:
    """Failures for different usernames from one IP are limited per IP too."""
    codes = [login(client, f"user{i}", "wrong-pass").status_code for i in range(6)]
    assert codes == [401] * 5 + [429]
    page = login(client, "user9", "wrong-pass")
    assert page.status_code == 429 and "Too many attempts" in page.get_data(as_text=True)


def test_successful_sign_ins_do_not_count_towards_the_limit(client: Any) -> None:
    """Only failures spend attempts: six good sign-ins in a row all succeed."""
    for _ in range(6):
        assert login(client, "alice").status_code == 302
        client.post("/logout", data={"csrf_token": csrf_token(client, "/a/acme/actions")})


def test_security_headers(client: Any) -> None:
    """Pages forbid framing and inline script and are not cached."""
    response = client.get("/login")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
