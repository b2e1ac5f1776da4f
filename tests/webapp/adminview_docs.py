"""Events of the account ``initech`` for the details, chart and time tests.

Written once per session into the shared seeded store under an account no
other test reads, with an admin (``ivan``) who holds USER_ADMIN only there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

ACCOUNT = "initech"
ADMIN = "ivan"
REQUEST_ID = "req-7f3a9c"
AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)


def docs(now: datetime) -> list[dict[str, Any]]:
    """A failed sign-in with a reason, a settings change written by useraudit.diff and a
    second event of the same request; newest first."""
    import useraudit
    from useraudit.indexer.enrich import Enricher

    enrich = Enricher()
    comments, params = useraudit.diff(
        {"name": "Support bot", "ttl": 30, "api_key": "old-secret"},
        {"name": "Sales bot", "ttl": 30, "api_key": "new-secret", "tags": ["beta"]},
    )

    def at(minutes: int, n: int) -> dict[str, Any]:
        ts = now - timedelta(minutes=minutes)
        return {
            "@timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event.id": f"{int(ts.timestamp() * 1000):012x}adminview{n:011d}",
            "organization.id": ACCOUNT,
            "source.address": "198.51.100.77",
            "user_agent.original": AGENT,
        }

    raws = [
        {
            **at(3, 1),
            "event.action": "user.signed_in",
            "event.outcome": "failure",
            "event.reason": "wrong password (attempt 3 in a row)",
            "user.id": "u-olga",
            "user.name": "olga",
            "user.email": "olga@initech.example",
            "user.full_name": "Ольга Петрова",
            "http.request.id": "req-signin-1",
            "http.request.method": "POST",
            "url.path": "/login",
            "http.response.status_code": 401,
        },
        {
            **at(10, 2),
            "event.action": "bot_project.settings_updated",
            "event.outcome": "success",
            "user.id": "u-peter",
            "user.name": "peter",
            "user.email": "peter@initech.example",
            "user.full_name": "Peter Gibbons",
            "audit.impersonator.id": "u-bill",
            "audit.impersonator.name": "bill",
            "audit.impersonator.email": "bill@initech.example",
            "audit.project.id": "tps-bot",
            "audit.project.name": "TPS bot",
            "audit.comments": comments,
            "audit.params": params,
            "http.request.id": REQUEST_ID,
            "http.request.method": "PATCH",
            "url.path": "/api/projects/tps-bot/settings",
            "http.response.status_code": 200,
        },
        {
            **at(10, 3),
            "event.action": "token.created",
            "event.outcome": "success",
            "user.id": "u-peter",
            "user.name": "peter",
            "user.email": "peter@initech.example",
            "audit.token.id": "tok-initech-1",
            "audit.project.id": "tps-bot",
            "http.request.id": REQUEST_ID,
            "http.request.method": "PATCH",
            "url.path": "/api/projects/tps-bot/settings",
            "http.response.status_code": 200,
        },
    ]
    return [enrich(r) for r in raws]


def install(store: Any, users: Any, password: str) -> list[dict[str, Any]]:
    """Write the events (once per store) and add ``ivan``; returns the stored documents."""
    written = docs(datetime.now(UTC))
    ids = [d["event.id"] for d in written]
    present = store.get(ids)
    if len(present) < len(ids):
        assert all(r.delivered for r in store.write(written))
        store.refresh()
        present = store.get(ids)
    if users.by_username(ADMIN) is None:
        users.add(ADMIN, password, email="ivan@initech.example", full_name="Ivan Admin")
        users.grant(ADMIN, ACCOUNT, "USER_ADMIN")
    return [present[i] for i in ids]
