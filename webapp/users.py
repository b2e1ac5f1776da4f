"""Who may use the admin UI, and for which accounts: a small built-in user store.

Users and their per-account roles live in one SQLite file,
``$USERAUDIT_HOME/webusers.db`` by default. Passwords are hashed with
Argon2id (argon2-cffi); hashes are upgraded transparently on sign-in when
the parameters change. Manage it from the command line::

    useraudit users add alice --email alice@example.com --full-name "Alice Admin"
    useraudit users grant alice acme            # USER_ADMIN on account "acme"
    useraudit users passwd alice
    useraudit users list

Host applications that already know their users pass their own object with
the same three methods instead (``create_app({"USERS": my_provider})``)::

    class MyUsers:
        def get(self, user_id: str) -> WebUser | None: ...
        def authenticate(self, username: str, password: str) -> WebUser | None: ...
        def accounts(self, user_id: str, role: str = USER_ADMIN) -> list[str]: ...

Only ``USER_ADMIN`` on an account opens that account's User actions page.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import click
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from useraudit import config
from useraudit.cli_helpers import clean_exit
from useraudit.schema import RESERVED_ACCOUNTS

from .sessions import SessionRegistry

USER_ADMIN = "USER_ADMIN"

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a miss costs as much
# time as a wrong password and does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("useraudit-no-such-user")


@dataclass
class WebUser:
    """A signed-in administrator (Flask-Login user object)."""

    id: str
    username: str
    email: str = ""
    full_name: str = ""
    roles: dict[str, set[str]] = field(default_factory=dict)  # account → roles

    # Flask-Login protocol
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str:
        return self.id

    def admin_accounts(self) -> list[str]:
        return sorted(a for a, roles in self.roles.items() if USER_ADMIN in roles)

    def is_admin_of(self, account: str) -> bool:
        return USER_ADMIN in self.roles.get(account, set())

    def person(self) -> dict[str, str]:
        """The shape ``useraudit.record(user=...)`` takes."""
        out = {"id": self.id, "name": self.username}
        if self.email:
            out["email"] = self.email
        if self.full_name:
            out["full_name"] = self.full_name
        return out


class UserProvider(Protocol):
    def get(self, user_id: str) -> WebUser | None: ...

    def authenticate(self, username: str, password: str) -> WebUser | None: ...


def default_path() -> Path:
    return config.default_users_db()


class UserStore:
    """SQLite-backed users and grants. Safe to share between threads."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._db() as db:
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS users (
                    id TEXT PRIMARY KEY,
                    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
                    email TEXT NOT NULL DEFAULT '',
                    full_name TEXT NOT NULL DEFAULT '',
                    password_hash TEXT NOT NULL,
                    active INTEGER NOT NULL DEFAULT 1
                );
                CREATE TABLE IF NOT EXISTS grants (
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    account TEXT NOT NULL,
                    role TEXT NOT NULL,
                    PRIMARY KEY (user_id, account, role)
                );
                CREATE TABLE IF NOT EXISTS preferences (
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    key TEXT NOT NULL,
                    value TEXT NOT NULL,
                    PRIMARY KEY (user_id, key)
                );
                """
            )
        # Sign-in sessions live in the same file: a password or rights change
        # below ends them in every process of the UI.
        self.sessions = SessionRegistry(self.path)
        try:
            os.chmod(self.path, 0o600)  # password hashes: owner only
        except OSError:
            pass

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10)
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
        with conn:
            yield conn

    # -- reads ----------------------------------------------------------------

    def _load(self, where: str, value: str) -> tuple[WebUser, str] | None:
        with self._db() as db:
            row = db.execute(
                "SELECT id, username, email, full_name, password_hash, active FROM users "
                f"WHERE {where} = ?",
                (value,),
            ).fetchone()
            if row is None or not row[5]:
                return None
            roles: dict[str, set[str]] = {}
            for account, role in db.execute(
                "SELECT account, role FROM grants WHERE user_id = ?", (row[0],)
            ):
                roles.setdefault(account, set()).add(role)
        return WebUser(row[0], row[1], row[2], row[3], roles), row[4]

    def get(self, user_id: str) -> WebUser | None:
        found = self._load("id", user_id)
        return found[0] if found else None

    def by_username(self, username: str) -> WebUser | None:
        found = self._load("username", username)
        return found[0] if found else None

    def authenticate(self, username: str, password: str) -> WebUser | None:
        found = self._load("username", username.strip())
        if found is None:
            try:
                _hasher.verify(_DUMMY_HASH, password)
            except VerificationError:
                pass
            return None
        user, stored = found
        try:
            _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if _hasher.check_needs_rehash(stored):
            self.set_password(user.username, password)
        return user

    def preferences(self, user_id: str) -> dict[str, str]:
        """The user's saved display preferences (time zone, language); see :mod:`.prefs`."""
        with self._db() as db:
            rows = db.execute(
                "SELECT key, value FROM preferences WHERE user_id = ?", (user_id,)
            ).fetchall()
        return dict(rows)

    def set_preference(self, user_id: str, key: str, value: str) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO preferences (user_id, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value",
                (user_id, key, value),
            )

    def list(self) -> list[WebUser]:
        with self._db() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM users ORDER BY username")]
        return [u for u in (self.get(i) for i in ids) if u]

    # -- writes ---------------------------------------------------------------

    def add(self, username: str, password: str, *, email: str = "", full_name: str = "") -> WebUser:
        if not username.strip():
            raise ValueError("a username is required")
        if len(password) < 8:
            raise ValueError("passwords need at least 8 characters")
        user_id = f"u-{os.urandom(6).hex()}"
        try:
            with self._db() as db:
                db.execute(
                    "INSERT INTO users (id, username, email, full_name, password_hash) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (user_id, username.strip(), email, full_name, _hasher.hash(password)),
                )
        except sqlite3.IntegrityError:
            raise ValueError(f"user {username!r} already exists") from None
        return WebUser(user_id, username.strip(), email, full_name)

    def set_password(self, username: str, password: str) -> None:
        if len(password) < 8:
            raise ValueError("passwords need at least 8 characters")
        with self._db() as db:
            cur = db.execute(
                "UPDATE users SET password_hash = ? WHERE username = ?",
                (_hasher.hash(password), username),
            )
        if not cur.rowcount:
            raise ValueError(f"no user {username!r}")
        user = self.by_username(username)
        if user is not None:
            self.sessions.end_all(user.id)  # a new password ends every old sign-in

    def grant(self, username: str, account: str, role: str = USER_ADMIN) -> None:
        if account in RESERVED_ACCOUNTS:
            raise ValueError(f"{account!r} is reserved for useraudit's own events")
        user = self.by_username(username)
        if user is None:
            raise ValueError(f"no user {username!r}")
        with self._db() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO grants (user_id, account, role) VALUES (?, ?, ?)",
                (user.id, account, role),
            )
        if cur.rowcount:
            self.sessions.end_all(user.id)  # rights changed: sign in again

    def revoke(self, username: str, account: str, role: str = USER_ADMIN) -> None:
        user = self.by_username(username)
        if user is None:
            raise ValueError(f"no user {username!r}")
        with self._db() as db:
            cur = db.execute(
                "DELETE FROM grants WHERE user_id = ? AND account = ? AND role = ?",
                (user.id, account, role),
            )
        if cur.rowcount:
            self.sessions.end_all(user.id)  # rights changed: sign in again


# -- command line -----------------------------------------------------------------

_db_option = click.option(
    "--db",
    "db_path",
    default=None,
    envvar="USERAUDIT_WEBUSERS",
    help="User database (default $USERAUDIT_HOME/webusers.db).",
)


@click.group()
def users() -> None:
    """Admin UI users and their per-account roles."""


@users.command("add")
@_db_option
@click.argument("username")
@click.option("--email", default="")
@click.option("--full-name", default="")
@click.password_option(envvar="USERAUDIT_PASSWORD")
def add_cmd(db_path: str | None, username: str, email: str, full_name: str, password: str) -> None:
    """Create a user (prompts for the password)."""
    with clean_exit(ValueError):
        user = UserStore(db_path).add(username, password, email=email, full_name=full_name)
    click.echo(f"added {user.username} ({user.id})")


@users.command("passwd")
@_db_option
@click.argument("username")
@click.password_option(envvar="USERAUDIT_PASSWORD")
def passwd_cmd(db_path: str | None, username: str, password: str) -> None:
    """Set a user's password."""
    with clean_exit(ValueError):
        UserStore(db_path).set_password(username, password)
    click.echo(f"password of {username} changed")


@users.command("grant")
@_db_option
@click.argument("username")
@click.argument("account")
@click.option("--role", default=USER_ADMIN, show_default=True)
@click.option("--revoke", is_flag=True, help="Remove the role instead.")
def grant_cmd(db_path: str | None, username: str, account: str, role: str, revoke: bool) -> None:
    """Give USERNAME a role on ACCOUNT (USER_ADMIN opens its User actions)."""
    store = UserStore(db_path)
    with clean_exit(ValueError):
        (store.revoke if revoke else store.grant)(username, account, role)
    click.echo(
        f"{'revoked' if revoke else 'granted'} {role} on {account} "
        f"{'from' if revoke else 'to'} {username}"
    )


@users.command("list")
@_db_option
def list_cmd(db_path: str | None) -> None:
    """List users and their roles."""
    for user in UserStore(db_path).list():
        grants = (
            ", ".join(f"{a}:{'+'.join(sorted(r))}" for a, r in sorted(user.roles.items())) or "-"
        )
        click.echo(f"{user.username:<20} {user.email:<30} {grants}")
