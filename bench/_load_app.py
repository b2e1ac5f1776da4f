"""The admin UI as gunicorn loads it for ``bench.load``: configured from the environment.

Every worker must share SECRET_KEY, or a session signed by one worker is
refused by the next.
"""

from __future__ import annotations

import os
from typing import Any


def app() -> Any:
    import useraudit
    from useraudit.webapp.app import create_app

    useraudit.configure(spool_dir=os.environ["USERAUDIT_SPOOL"])
    return create_app(
        {
            "SECRET_KEY": os.environ["BENCH_SECRET_KEY"],
            "SESSION_COOKIE_SECURE": False,
            "USERAUDIT_STORE": os.environ["USERAUDIT_STORE"],
            "USERAUDIT_USERS": os.environ["USERAUDIT_USERS"],
        }
    )
