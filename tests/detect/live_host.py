"""The demo host app with the scenario's users, for gunicorn (``live_host:create_app()``).

Records into ``$USERAUDIT_SPOOL`` with ``durability="sync"``: once a request
is answered its events are on disk, so a test can index right after.
"""

from __future__ import annotations

import os

from flask import Flask

import useraudit
from useraudit.demo.host import Directory, create_host_app

PASSWORD = "pw-scenario"
USERS = ("root", "brute", "device", "country", "travel", "grantee", "token", "down", "calm")


def people() -> dict[str, dict]:
    return {
        name: {
            "id": f"u-{name}",
            "name": name,
            "full_name": name.title(),
            "email": f"{name}@example.com",
            "password": PASSWORD,
            "admin": name == "root",
            "accounts": ["acme"],
        }
        for name in USERS
    }


def create_app() -> Flask:
    useraudit.configure(spool_dir=os.environ["USERAUDIT_SPOOL"], durability="sync")
    return create_host_app(Directory(people()))
