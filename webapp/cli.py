"""``useraudit web``: serve the admin UI."""

from __future__ import annotations

import os

import click


@click.command()
@click.option(
    "--store",
    "store_url",
    envvar="USERAUDIT_STORE",
    default=None,
    show_envvar=True,
    help="Store URL: sqlite:///path/audit.db (default) or http(s)://host:9200.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--users-db",
    envvar="USERAUDIT_WEBUSERS",
    default=None,
    help="User database (default $USERAUDIT_HOME/webusers.db).",
)
@click.option(
    "--secret-key",
    envvar="USERAUDIT_SECRET_KEY",
    default=None,
    help="Session signing key (default: random, so sign-ins end on restart).",
)
@click.option(
    "--secure-cookies/--no-secure-cookies",
    envvar="USERAUDIT_SECURE_COOKIES",
    show_envvar=True,
    default=None,
    help="Mark cookies Secure (default: on, except on loopback with no --trusted-proxies).",
)
@click.option(
    "--trusted-proxies",
    default=0,
    show_default=True,
    type=int,
    help="How many reverse proxies in front may set X-Forwarded-For/-Proto (their scheme is "
    "then believed, and cookies are Secure).",
)
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Worker threads: requests handled at once (slow clients do not take one).",
)
@click.option(
    "--connection-limit",
    default=200,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Open connections at most; more wait in the listen backlog.",
)
@click.option(
    "--channel-timeout",
    default=30,
    show_default=True,
    type=click.IntRange(1, 3600),
    help="Seconds a connection may stay silent (a slow or stalled client) before it is closed.",
)
@click.option(
    "--limits-db",
    envvar="USERAUDIT_LIMITS_DB",
    default=None,
    help="Sign-in attempt counts (default $USERAUDIT_HOME/signin-limits.db).",
)
def web(
    store_url: str | None,
    host: str,
    port: int,
    users_db: str | None,
    secret_key: str | None,
    secure_cookies: bool | None,
    trusted_proxies: int,
    threads: int,
    connection_limit: int,
    channel_timeout: int,
    limits_db: str | None,
) -> None:
    """Serve the User actions admin UI (sign in with `useraudit users add`).

    Served by waitress, a production WSGI server: it reads each request
    whole in its I/O loop before a worker thread sees it, so slow clients
    cost a socket, not one of the --threads; silent connections are closed
    after --channel-timeout seconds.
    """
    from useraudit.config import home

    from .app import create_app
    from .serve import serve

    if secure_cookies is None:
        # Behind a TLS proxy (--trusted-proxies) the browser speaks HTTPS even
        # when we listen on loopback: Secure then, as on any public address.
        secure_cookies = trusted_proxies > 0 or host not in ("127.0.0.1", "localhost", "::1")
    config = {
        "USERAUDIT_STORE": store_url,
        "SESSION_COOKIE_SECURE": secure_cookies,
        "REMEMBER_COOKIE_SECURE": secure_cookies,
        "USERAUDIT_TRUSTED_PROXIES": trusted_proxies,
        # One file for every thread and process serving this UI.
        "USERAUDIT_LIMITS_STORAGE": f"sqlite:///{limits_db or home() / 'signin-limits.db'}",
        "USERAUDIT_METRICS": os.environ.get("USERAUDIT_METRICS", "").lower()
        in ("1", "true", "yes"),
    }
    if users_db:
        config["USERAUDIT_USERS"] = users_db
    if secret_key:
        config["SECRET_KEY"] = secret_key
    app = create_app(config)
    from useraudit import config as ua_config

    shown_store = store_url or ua_config.default_store_url()
    if "@" in shown_store and "://" in shown_store:  # never print a password
        scheme, rest = shown_store.split("://", 1)
        shown_store = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    click.echo(
        f"useraudit admin UI on http://{host}:{port}/ (store {shown_store}, users "
        f"{users_db or ua_config.default_users_db()}; {threads} threads, cookies "
        f"{'Secure' if secure_cookies else 'not Secure'}); Ctrl-C stops"
    )
    serve(
        app,
        host=host,
        port=port,
        threads=threads,
        connection_limit=connection_limit,
        channel_timeout=channel_timeout,
        trusted_proxies=trusted_proxies,
    )
