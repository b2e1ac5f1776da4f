"""API tokens: per account, scoped, expiring, stored hashed, shown once.

A token reads ``uat_<id>_<secret>``: ``id`` finds the row, the secret (32
random bytes) is kept only as its SHA-256 (a random 256-bit secret needs no
slow password hash: there is nothing to guess), compared in constant time.
Every creation, use from an address not seen before and revocation is
recorded in the audit trail of the token's account, as the acting person and
with the token's id in ``audit.token.id``: ``audit_api_token.created``,
``audit_api_token.used_from_new_address`` and ``audit_api_token.revoked``.
They are actions of useraudit's own product ("User actions audit"), not the
host product's ``token.*`` actions of the product page: the host's token
history and the audit log's own API tokens stay apart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import useraudit

SCOPES = ("events:read", "alerts:read")
PREFIX = "uat_"
LAST_USE_RESOLUTION = 60.0  # seconds: last use is recorded at most this often per address

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_tokens (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    expires_at REAL NOT NULL,
    revoked_at REAL,
    last_used_at REAL,
    last_used_ip TEXT
);
CREATE TABLE IF NOT EXISTS api_token_addresses (
    token_id TEXT NOT NULL,
    address TEXT NOT NULL,
    first_seen REAL NOT NULL,
    PRIMARY KEY (token_id, address)
);
"""


@dataclass(frozen=True)
class ApiToken:
    id: str
    account: str
    name: str
    scopes: tuple[str, ...]
    created_at: float
    created_by: str
    expires_at: float
    revoked_at: float | None
    last_used_at: float | None
    last_used_ip: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and time.time() < self.expires_at

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": _iso(self.created_at),
            "created_by": self.created_by,
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "last_used_at": _iso(self.last_used_at),
            "last_used_ip": self.last_used_ip,
        }


def _iso(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else None


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._db() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        # One connection per thread, kept: every API request checks its token,
        # and opening the file each time cost more than the lookups.
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self.path, timeout=30)
        with db:
            yield db

    def create(
        self,
        account: str,
        name: str,
        scopes: tuple[str, ...],
        *,
        created_by: dict[str, str],
        ttl_days: float = 90,
    ) -> tuple[ApiToken, str]:
        """A new token and its full secret text, which is never shown again."""
        unknown = set(scopes) - set(SCOPES)
        if not scopes or unknown:
            raise ValueError(f"scopes must be among {', '.join(SCOPES)}")
        if not 0 < ttl_days <= 366:
            raise ValueError("a token expires within 1..366 days")
        token_id = os.urandom(6).hex()
        secret = secrets.token_urlsafe(32)
        now = time.time()
        with self._db() as db:
            db.execute(
                "INSERT INTO api_tokens (id, account, name, scopes, secret_sha256, created_at, "
                "created_by, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (token_id, account, name[:128], " ".join(scopes), _sha256(secret), now,
                 created_by.get("name") or created_by.get("id", ""), now + ttl_days * 86400),
            )  # fmt: skip
        token = self.get(token_id)
        assert token is not None
        useraudit.record(
            "audit_api_token.created",
            account=account,
            user=created_by,
            token_id=token_id,
            params={
                "name": name[:128],
                "scopes": " ".join(scopes),
                "expires": _iso(token.expires_at),
            },
        )
        return token, f"{PREFIX}{token_id}_{secret}"

    def get(self, token_id: str) -> ApiToken | None:
        with self._db() as db:
            row = db.execute(
                "SELECT id, account, name, scopes, created_at, created_by, expires_at, "
                "revoked_at, last_used_at, last_used_ip FROM api_tokens WHERE id = ?",
                (token_id,),
            ).fetchone()
        if row is None:
            return None
        return ApiToken(row[0], row[1], row[2], tuple(row[3].split()), *row[4:])

    def list(self, account: str) -> list[ApiToken]:
        with self._db() as db:
            ids = [r[0] for r in db.execute(
                "SELECT id FROM api_tokens WHERE account = ? ORDER BY created_at", (account,)
            )]  # fmt: skip
        return [t for t in (self.get(i) for i in ids) if t]

    def revoke(self, token_id: str, *, by: dict[str, str], account: str | None = None) -> bool:
        token = self.get(token_id)
        if token is None or (account is not None and token.account != account):
            return False
        if token.revoked_at is None:
            with self._db() as db:
                db.execute(
                    "UPDATE api_tokens SET revoked_at = ? WHERE id = ?", (time.time(), token_id)
                )
            useraudit.record(
                "audit_api_token.revoked",
                account=token.account,
                user=by,
                token_id=token_id,
                params={"name": token.name},
            )
        return True

    def authenticate(self, text: str, address: str) -> ApiToken | None:
        """The active token this secret text belongs to (recording its use), or None."""
        if not text.startswith(PREFIX) or text.count("_") < 2:
            return None
        token_id, _, secret = text[len(PREFIX) :].partition("_")
        with self._db() as db:
            row = db.execute(
                "SELECT secret_sha256 FROM api_tokens WHERE id = ?", (token_id,)
            ).fetchone()
        if row is None or not hmac.compare_digest(row[0], _sha256(secret)):
            return None
        token = self.get(token_id)
        if token is None or not token.active:
            return None
        now = time.time()
        fresh = (
            token.last_used_ip == address
            and token.last_used_at is not None
            and now - token.last_used_at < LAST_USE_RESOLUTION
        )
        if fresh:  # a busy token costs no write (and no fsync) per request
            return token
        with self._db() as db:
            db.execute(
                "UPDATE api_tokens SET last_used_at = ?, last_used_ip = ? WHERE id = ?",
                (now, address, token_id),
            )
            new = db.execute(
                "INSERT OR IGNORE INTO api_token_addresses VALUES (?, ?, ?)",
                (token_id, address, now),
            ).rowcount
        if new:
            useraudit.record(
                "audit_api_token.used_from_new_address",
                account=token.account,
                user={"id": f"token:{token_id}", "name": token.name},
                token_id=token_id,
                params={"address": address},
            )
        return token
