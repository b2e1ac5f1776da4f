"""Users, passwords and signed tokens shared by the three example apps.

Stateless on purpose: every gunicorn worker verifies the same HMAC-signed
tokens, so the examples behave the same under ``-w 4``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from typing import Any

SECRET = os.environ.get("EXAMPLE_SECRET", "example-secret-not-for-production").encode()


@dataclass
class Account:
    id: str
    username: str
    email: str
    full_name: str
    password: str
    roles: list[str] = field(default_factory=list)

    # Flask-Login's UserMixin surface, without the import.
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return self.id

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


USERS = {
    "alice": Account(
        "u-1", "alice", "alice@example.com", "Alice Admin", "alice-pass", ["admin", "USER_ADMIN"]
    ),
    "bob": Account("u-2", "bob", "bob@example.com", "Bob Builder", "bob-pass", ["editor"]),
    "carol": Account("u-3", "carol", "carol@example.com", "Carol Clerk", "carol-pass", ["viewer"]),
}
BY_ID = {u.id: u for u in USERS.values()}


def check_password(username: str, password: str) -> Account | None:
    user = USERS.get(username)
    if user is not None and hmac.compare_digest(user.password, password):
        return user
    return None


def sign(payload: dict) -> str:
    body = (
        base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True).encode()).decode().rstrip("=")
    )
    mac = hmac.new(SECRET, body.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{body}.{mac}"


def unsign(token: str) -> dict | None:
    body, _, mac = token.rpartition(".")
    if not body or not hmac.compare_digest(
        hmac.new(SECRET, body.encode(), hashlib.sha256).hexdigest()[:32], mac
    ):
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        return None


def new_api_token(user: Any, project: str | None) -> tuple[str, str]:
    """(token id, secret) — the id is what the audit log shows, never the secret."""
    tid = "tok-" + os.urandom(4).hex()
    return tid, sign({"tid": tid, "uid": user.id, "project": project, "n": os.urandom(8).hex()})


def api_user(authorization: str | None) -> Account | None:
    """The user behind ``Authorization: Bearer <api token>``."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    payload = unsign(authorization[7:].strip())
    if not payload or "tid" not in payload:
        return None
    return BY_ID.get(str(payload.get("uid")))
