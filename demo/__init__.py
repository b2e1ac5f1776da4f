"""``useraudit demo``: the whole product on one machine, with one command.

Starts the demo host app (:mod:`useraudit.demo.host`) with the middleware,
drives realistic traffic through it over HTTP (:mod:`useraudit.demo.traffic`),
runs the indexer into the store (SQLite by default, ``--store URL`` for
OpenSearch) and serves the admin UI, printing sign-in details. Ctrl+C stops
everything it started.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from useraudit.cli_helpers import store_option

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

UI_USERS = [
    # (username, full name, accounts with USER_ADMIN)
    ("admin", "Demo Administrator", ("acme", "globex")),
    ("acme-admin", "Acme Security Officer", ("acme",)),
    ("viewer", "Demo Viewer (no USER_ADMIN)", ()),
]


@click.command()
@store_option
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the demo keeps its spool, database and users (default $USERAUDIT_HOME/demo).",
)
@click.option("--port", default=8080, show_default=True, help="Admin UI port on 127.0.0.1.")
@click.option(
    "--events", default=1500, show_default=True, help="How many catalog actions to perform."
)
@click.option(
    "--serve/--no-serve",
    default=True,
    show_default=True,
    help="Keep serving the UI after seeding (--no-serve: seed, report, exit).",
)
def demo(store_url: str | None, home: Path | None, port: int, events: int, serve: bool) -> None:
    """Run the demo: host app + traffic + indexer + admin UI."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from werkzeug.serving import make_server

    import useraudit
    from useraudit.config import home as useraudit_home
    from useraudit.indexer.completeness import CompletenessStage
    from useraudit.indexer.shipper import Indexer
    from useraudit.store import Query, open_store
    from useraudit.webapp.app import create_app
    from useraudit.webapp.users import UserStore

    from . import traffic
    from .host import Directory, create_host_app

    console = Console()
    # Ctrl+C and SIGTERM (docker stop, systemd) both end the demo cleanly, even
    # when started from a shell that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    home = home or useraudit_home() / "demo"
    # Refuse before touching anything: a second demo must neither seed a
    # store nobody will see nor delete the data of the one already running.
    if serve:
        _check_port_free(port)
    _claim_home(home)
    if home.exists():
        shutil.rmtree(home)  # every demo run starts from a clean slate
    home.mkdir(parents=True)
    spool = home / "spool"
    store_url = store_url or f"sqlite:///{home / 'audit.db'}"
    store = open_store(store_url)
    for line in store.install():
        console.print(f"[dim]{line}[/dim]")

    servers: list = []
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def serve_in_thread(app: WSGIApplication, port_: int) -> int:
        server = make_server("127.0.0.1", port_, app, threaded=True)
        servers.append(server)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        threads.append(thread)
        return server.server_port

    # Request logs would drown the progress bar.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    recorder = useraudit.configure(spool_dir=spool, durability="batch", flush_interval=0.05)
    from useraudit.detect.pipeline import build_stages

    stages, _notes = build_stages(store)
    # As `useraudit indexer run` does: the UI's "complete up to" mark.
    stages.append(CompletenessStage(store, spool))
    ix = Indexer(spool, store, stages=stages)

    def ship() -> None:
        ix.run(stop, idle=0.1)

    try:
        host_port = serve_in_thread(create_host_app(Directory(traffic.directory())), 0)
        indexer = threading.Thread(target=ship, name="useraudit-demo-indexer", daemon=True)
        indexer.start()
        base = f"http://127.0.0.1:{host_port}"
        browsers = traffic.clients(base)
        from . import attack

        steps = list(traffic.plan(events))
        # The one attack, so the Security tab shows something on first start.
        steps += list(attack.plan(base))
        statuses: dict[int, int] = {}
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("Driving traffic through the demo host", total=len(steps))
            for _description, step in steps:
                code = step(browsers)
                statuses[code] = statuses.get(code, 0) + 1
                progress.advance(task)
        recorder.flush()
        requests = sum(statuses.values())
        with console.status("Indexing…"):
            deadline = time.monotonic() + 120
            while (
                ix.stats.read + ix.stats.damaged < recorder.stats.recorded
                and time.monotonic() < deadline
            ):
                time.sleep(0.1)
            store.refresh()
            counts = {acc: store.count(Query(account=acc)) for acc in traffic.ACCOUNTS}

        users = UserStore(home / "webusers.db")
        password = secrets.token_urlsafe(9)
        for username, full_name, accounts in UI_USERS:
            users.add(username, password, email=f"{username}@demo.example", full_name=full_name)
            for account in accounts:
                users.grant(username, account)

        table = Table(title="useraudit demo", show_header=True)
        table.add_column("what")
        table.add_column("value", overflow="fold")
        by_status = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
        table.add_row("HTTP requests to the host app", f"{requests} ({by_status})")
        table.add_row("audit events recorded by the host", str(recorder.stats.recorded))
        table.add_row("shipped / dead-lettered", f"{ix.stats.shipped} / {ix.stats.dead_lettered}")
        for acc, name in traffic.ACCOUNTS.items():
            table.add_row(f"events stored for {name} ({acc})", str(counts.get(acc, 0)))
        table.add_row("store", store_url)
        table.add_row("spool", str(spool))
        console.print(table)
        if not serve:
            return
        ui = create_app(
            {
                "USERAUDIT_STORE": store_url,
                "USERAUDIT_USERS": str(home / "webusers.db"),
                "SECRET_KEY": secrets.token_hex(32),
                "SESSION_COOKIE_SECURE": False,
                "REMEMBER_COOKIE_SECURE": False,
            }
        )
        ui_port = serve_in_thread(ui, port)
        console.print(f"\n[bold green]Admin UI:[/] http://127.0.0.1:{ui_port}/")
        for username, _name, accounts in UI_USERS:
            scope = ", ".join(accounts) if accounts else "no USER_ADMIN role: sees 403"
            console.print(f"  sign in as [bold]{username}[/] / [bold]{password}[/]  ({scope})")
        console.print(
            f"  demo host app: {base} (users {', '.join(list(traffic.directory())[:3])}…, "
            f"password {traffic.PASSWORD})"
        )
        console.print("Ctrl+C stops everything.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("\nstopping…")
    finally:
        stop.set()
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(5)
        if "ix" in locals():
            ix.close()
        store.close()


def _check_port_free(port: int) -> None:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise click.ClickException(
                f"port {port} on 127.0.0.1 is already in use (another demo?). Nothing was "
                f"seeded or deleted. Stop the other program, or pick another port: "
                f"make demo PORT={port + 1} (useraudit demo --port {port + 1})"
            ) from None


# Held open while the demo runs: the lock lives as long as the process.
_home_lock: object = None


def _claim_home(home: Path) -> None:
    """Lock ``home`` for this demo, or refuse when a running demo holds it."""
    import fcntl
    import os

    global _home_lock
    home.parent.mkdir(parents=True, exist_ok=True)
    path = home.parent / f".{home.name}.lock"
    fh = open(path, "a+")  # noqa: SIM115 - kept open on purpose, see _home_lock
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise click.ClickException(
            f"a demo (pid {holder}) is running with its data in {home}; its data was left "
            "alone. Stop it first (Ctrl+C), or give this one another --home."
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    _home_lock = fh
