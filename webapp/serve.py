"""The production WSGI server behind ``useraudit web``: waitress.

Why waitress rather than Werkzeug's development server (one thread per
connection, no limits: 40 slow connections held 40 threads for 90 s) or
gunicorn's threaded workers (a thread reads its request from the socket,
so a slow client holds a thread too): waitress reads every request whole
in its asynchronous I/O loop and only then gives it to one of a fixed
number of threads, closes connections that stay silent past
``channel_timeout`` and accepts at most ``connection_limit`` at once. It is
pure Python and runs wherever the UI runs.
"""

from __future__ import annotations

import sys
from typing import Any

# The interpreter lets a thread that waits for the GIL take it after this
# long. A page's store request runs on a worker thread while the request's
# own thread renders the rest of the page; at Python's default 5 ms the
# request waited up to 5 ms to leave, and its answer as long to be read.
GIL_SWITCH_INTERVAL = 0.0005


def make_server(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    threads: int = 8,
    connection_limit: int = 200,
    channel_timeout: int = 30,
    trusted_proxies: int = 0,
    **extra: Any,
) -> Any:
    """A waitress server for ``app``, bound and not yet running (``.run()``, ``.close()``).

    Also shortens this process's GIL switch interval (:data:`GIL_SWITCH_INTERVAL`).
    """
    from waitress.server import create_server

    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL))

    return create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        connection_limit=connection_limit,
        channel_timeout=channel_timeout,
        # How often silent connections are looked for (waitress: every 30 s).
        cleanup_interval=max(1, min(30, channel_timeout // 3)),
        # Request bodies are small forms: no upload may fill memory or disk.
        max_request_body_size=1024 * 1024,
        max_request_header_size=64 * 1024,
        # ProxyFix in the app handles X-Forwarded-*, only for trusted proxies.
        clear_untrusted_proxy_headers=False,
        ident="useraudit",
        **extra,
    )


def serve(app: Any, **settings: Any) -> None:
    """Serve ``app`` until interrupted (``settings``: :func:`make_server`'s)."""
    server = make_server(app, **settings)
    server.print_listen("Serving on http://{}:{}")
    server.run()
