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
    default=None,
    help="Mark cookies Secure (default: on unless serving plain HTTP on loopback).",
)
@click.option(
    "--trusted-proxies",
    default=0,
    show_default=True,
    type=int,
    help="How many reverse proxies in front may set X-Forwarded-For.",
)
@click.option("--threads", default=8, show_default=True, type=int)
def web(
    store_url: str | None,
    host: str,
    port: int,
    users_db: str | None,
    secret_key: str | None,
    secure_cookies: bool | None,
    trusted_proxies: int,
    threads: int,
) -> None:
    """Serve the User actions admin UI (sign in with `useraudit users add`)."""
    from werkzeug.serving import make_server

    from .app import create_app

    if secure_cookies is None:
        secure_cookies = host not in ("127.0.0.1", "localhost", "::1")
    config = {
        "USERAUDIT_STORE": store_url,
        "SESSION_COOKIE_SECURE": secure_cookies,
        "REMEMBER_COOKIE_SECURE": secure_cookies,
        "USERAUDIT_TRUSTED_PROXIES": trusted_proxies,
        "USERAUDIT_METRICS": os.environ.get("USERAUDIT_METRICS", "").lower()
        in ("1", "true", "yes"),
    }
    if users_db:
        config["USERAUDIT_USERS"] = users_db
    if secret_key:
        config["SECRET_KEY"] = secret_key
    app = create_app(config)
    server = make_server(host, port, app, threaded=True)
    from useraudit import config as ua_config

    shown_store = store_url or ua_config.default_store_url()
    if "@" in shown_store and "://" in shown_store:  # never print a password
        scheme, rest = shown_store.split("://", 1)
        shown_store = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    click.echo(
        f"useraudit admin UI on http://{host}:{port}/ (store {shown_store}, users "
        f"{users_db or ua_config.default_users_db()}); Ctrl-C stops"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
