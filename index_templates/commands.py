"""``useraudit templates``: install the index template into OpenSearch (or the SQLite schema).

``useraudit retention`` is in :mod:`useraudit.store_commands`, with ``prune``.
"""

from __future__ import annotations

import json

import click

from useraudit.cli_helpers import (
    clean_exit,
    delete_after_option,
    store_option,
    warm_after_option,
)


@click.group()
def templates() -> None:
    """Index templates and mappings."""


@templates.command()
@store_option
@warm_after_option
@delete_after_option
def install(store_url: str | None, warm_after: int, delete_after: int) -> None:
    """Install or upgrade; a no-op when up to date; refuses to downgrade.

    On OpenSearch with the ISM plugin, also installs the retention policy
    (see `useraudit retention apply` for clusters without it).
    """
    from useraudit.store import StoreError, open_store
    from useraudit.store.opensearch import OpenSearchStore, retention

    with clean_exit(StoreError), open_store(store_url) as store:
        for line in store.install():
            click.echo(line)
        if isinstance(store, OpenSearchStore):
            click.echo(
                retention.install_policy(
                    store.client, store.prefix, warm_after or None, delete_after
                )
            )


@templates.command()
@click.option("--prefix", default="useraudit", show_default=True)
def show(prefix: str) -> None:
    """Print the composable index template JSON."""
    from . import load_golden

    click.echo(json.dumps(load_golden(prefix), indent=2, sort_keys=True))
