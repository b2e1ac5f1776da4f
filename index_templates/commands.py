"""``useraudit templates``: install the index template into OpenSearch (or the SQLite schema)."""

from __future__ import annotations

import json

import click

from useraudit.cli import store_option


@click.group()
def templates() -> None:
    """Index templates and mappings."""


@templates.command()
@store_option
def install(store_url: str | None) -> None:
    """Install or upgrade; a no-op when up to date; refuses to downgrade."""
    from useraudit.store import StoreError, open_store

    try:
        with open_store(store_url) as store:
            for line in store.install():
                click.echo(line)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


@templates.command()
@click.option("--prefix", default="useraudit", show_default=True)
def show(prefix: str) -> None:
    """Print the composable index template JSON."""
    from . import load_golden

    click.echo(json.dumps(load_golden(prefix), indent=2, sort_keys=True))
