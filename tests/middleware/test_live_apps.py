"""The example apps under their real servers, driven over HTTP, shipped into the real OpenSearch."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import CHROME_UA, IPHONE_UA, find, ship, spool_bytes, spool_events, stored

# The client's own address, as our (simulated) single trusted proxy appends it.
CLIENT_IP = "203.0.113.7"
# What the client claims: never believed.
SPOOFED = "198.51.100.66"
NEW_PASSWORD = "S3cret-NEW-pw!42"

KINDS = [
    pytest.param("flask", id="flask-gunicorn"),
    pytest.param("django", id="django-gunicorn"),
    pytest.param("fastapi", id="fastapi-uvicorn"),
]


def drive(app: Any) -> dict[str, Any]:
    """The same user story against any example; returns what the test must look for."""
    headers = {"User-Agent": CHROME_UA, "X-Forwarded-For": f"{SPOOFED}, {CLIENT_IP}"}
    out: dict[str, Any] = {"secrets": [NEW_PASSWORD]}
    with app.client(headers=headers) as c:
        r = c.post("/login", json={"username": "bob", "password": "guess"})
        assert r.status_code == 401, r.text
        r = c.post("/login", json={"username": "alice", "password": "alice-pass"})
        assert r.status_code == 200, r.text
        if "token" in r.json():
            c.headers["Authorization"] = f"Bearer {r.json()['token']}"
        assert c.post("/profile", json={"full_name": "Alice A."}).status_code == 200
        r = c.post("/password", json={"old_password": "alice-pass", "new_password": NEW_PASSWORD})
        assert r.status_code == 200, r.text
        assert c.post("/users/bob/roles", json={"roles": ["editor", "reviewer"]}).status_code == 200
        r = c.post("/tokens", json={"project": "p-7"})
        assert r.status_code == 200, r.text
        out["token_id"], secret = r.json()["id"], r.json()["token"]
        out["secrets"].append(secret)
        r = c.post(f"/tokens/{out['token_id']}/refresh")
        assert r.status_code == 200
        out["secrets"].append(r.json()["token"])
        # The export authenticates with the API token inside the view, from another device.
        with app.client(
            headers={
                "User-Agent": IPHONE_UA,
                "X-Forwarded-For": CLIENT_IP,
                "Authorization": f"Bearer {secret}",
            }
        ) as api:
            r = api.get("/projects/p-7/export")
            assert r.status_code == 200, r.text
            assert r.text.count("\n") == 101
        assert c.delete(f"/tokens/{out['token_id']}").status_code == 200
        r = c.post("/impersonate/bob")
        assert r.status_code == 200, r.text
        if "token" in r.json():
            c.headers["Authorization"] = f"Bearer {r.json()['token']}"
        assert c.post("/profile", json={"full_name": "Bob B."}).status_code == 200
        assert c.post("/logout").status_code == 200
    return out


def one(docs: list[dict], **fields: Any) -> dict:
    hits = find(docs, **fields)
    assert len(hits) == 1, (fields, [(d.get("event.action"), d.get("user.name")) for d in docs])
    return hits[0]


@pytest.mark.parametrize("kind", KINDS)
def test_user_story_lands_in_opensearch(kind: str, live_app: Any, os_store: Any) -> None:
    """Each action is stored once with outcome, users, IP, device, impersonator, project, token."""
    app = live_app(kind, trusted_proxies=1)
    story = drive(app)
    app.stop()  # SIGTERM: batch spools flush on exit
    assert "Traceback" not in app.log_text(), app.log_text()

    raw = spool_bytes(app.spool)
    spooled = spool_events(app.spool)
    for secret in story["secrets"]:
        assert secret.encode() not in raw, "a secret reached the spool"

    stats = ship(app.spool, os_store)
    assert stats.dead_lettered == 0
    docs = stored(os_store)
    tid = story["token_id"]

    failed = one(docs, event__action="user.signed_in", event__outcome="failure")
    assert failed["user.name"] == "bob"
    assert failed["source.ip"] == CLIENT_IP
    assert failed["user_agent.name"] == "Chrome" and failed["user_agent.os.name"] == "Windows"

    signed_in = find(docs, event__action="user.signed_in", event__outcome="success")
    alice_in = one(signed_in, user__name="alice")
    assert alice_in["user.email"] == "alice@example.com"
    assert "audit.impersonator.name" not in alice_in

    as_bob = one(signed_in, user__name="bob")
    assert as_bob["audit.impersonator.name"] == "alice"

    mine = one(docs, event__action="user.profile_updated", user__name="alice")
    assert "Alice A." in mine["audit.comments"] and "audit.impersonator.name" not in mine

    pw = one(docs, event__action="user.password_changed")
    assert pw["user.name"] == "alice" and NEW_PASSWORD not in str(pw)

    roles = one(docs, event__action="user.roles_updated")
    assert (roles["user.name"], roles["user.target.name"]) == ("alice", "bob")
    assert "reviewer" in roles["audit.comments"]

    created = one(docs, event__action="token.created")
    assert (created["audit.token.id"], created["audit.project.id"], created["user.name"]) == (
        tid,
        "p-7",
        "alice",
    )
    assert one(docs, event__action="token.refreshed")["audit.token.id"] == tid
    deleted = one(docs, event__action="token.deleted")
    assert (deleted["audit.token.id"], deleted["event.outcome"], deleted["user.name"]) == (
        tid,
        "success",
        "alice",
    )

    export = one(docs, event__action="bot_project.exported")
    assert export["user.name"] == "alice", "user authenticated inside the view was missed"
    assert export["audit.project.id"] == "p-7"
    assert export["user_agent.os.name"] == "iOS" and export["source.ip"] == CLIENT_IP
    assert export["http.response.status_code"] == 200

    theirs = one(docs, event__action="user.profile_updated", user__name="bob")
    assert theirs["audit.impersonator.name"] == "alice"
    out = one(docs, event__action="user.signed_out")
    assert (out["user.name"], out["audit.impersonator.name"]) == ("bob", "alice")

    for doc in docs:
        assert doc["source.ip"] == CLIENT_IP, doc  # the spoofed entry is never believed
        assert SPOOFED not in doc.get("related.ip", [])
        assert doc.get("http.request.id")
        assert "alice" in doc.get("related.user", []) or "bob" in doc.get("related.user", [])
    # Every event the app spooled is in OpenSearch, no more, no less.
    assert stats.shipped == len(docs) == len(spooled) == 12


HOSTILE = [
    pytest.param({"X-Forwarded-For": "garbage, !!"}, None, id="garbage-xff"),
    pytest.param({"X-Forwarded-For": "fe80::1%eth0"}, "fe80::1", id="ipv6-zone-id"),
    pytest.param({"X-Forwarded-For": "[2001:db8::7]:443"}, "2001:db8::7", id="ipv6-bracket-port"),
    pytest.param({"User-Agent": b"Mozilla/5.0 \xff\xfe (X11)"}, None, id="non-utf8-ua"),
    pytest.param({"User-Agent": "U" * 6000}, None, id="6kB-ua"),
    pytest.param({"X-Request-ID": "a b\tc"}, None, id="insane-request-id"),
]


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_headers_never_reach_the_host(kind: str, live_app: Any, os_store: Any) -> None:
    """Odd headers give the app's normal answers; every event is stored, none dead-lettered."""
    app = live_app(kind, trusted_proxies=1)
    expected_ips: list[str] = []
    for param in HOSTILE:
        headers, ip = param.values
        with app.client() as c:
            r = c.post("/login", json={"username": "carol", "password": "nope"}, headers=headers)
            assert r.status_code == 401, (param.id, r.status_code, r.text)
        expected_ips.append(str(ip or "127.0.0.1"))
    with app.client(headers={"User-Agent": ""}) as c:
        assert c.get("/boom").status_code == 500  # the host's own bug, answered by its framework
    app.stop()
    stats = ship(app.spool, os_store)
    assert (stats.dead_lettered, stats.damaged) == (0, 0)
    docs = stored(os_store)
    failures = find(docs, event__action="user.signed_in", event__outcome="failure")
    assert sorted(d["source.ip"] for d in failures) == sorted(expected_ips)
    assert all(d.get("user.name") == "carol" for d in failures)
    assert all(len(d.get("http.request.id", "")) in range(1, 129) for d in failures)
    assert "useraudit:" not in app.log_text(), "capture logged an internal error"
