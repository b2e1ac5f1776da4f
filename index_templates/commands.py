"""``useraudit templates``: install the index template into OpenSearch (or the SQLite schema)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from useraudit.cli import store_option

if TYPE_CHECKING:
    from useraudit.store.opensearch import OpenSearchStore


@click.group()
def templates() -> None:
    """Index templates and mappings."""


@templates.command()
@store_option
@click.option(
    "--warm-after",
    type=int,
    default=30,
    show_default=True,
    help="ISM: days until an index becomes read-only (0: never).",
)
@click.option(
    "--delete-after", type=int, default=365, show_default=True, help="ISM: days until deletion."
)
def install(store_url: str | None, warm_after: int, delete_after: int) -> None:
    """Install or upgrade; a no-op when up to date; refuses to downgrade.

    On OpenSearch with the ISM plugin, also installs the retention policy.
    """
    from useraudit.store import StoreError, open_store
    from useraudit.store.opensearch import OpenSearchStore

    from . import retention

    try:
        with open_store(store_url) as store:
            for line in store.install():
                click.echo(line)
            if isinstance(store, OpenSearchStore):
                click.echo(
                    retention.install_policy(
                        store.client, store.prefix, warm_after or None, delete_after
                    )
                )
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


@templates.command()
@click.option("--prefix", default="useraudit", show_default=True)
def show(prefix: str) -> None:
    """Print the composable index template JSON."""
    from . import load_golden

    click.echo(json.dumps(load_golden(prefix), indent=2, sort_keys=True))


@click.group()
def retention() -> None:
    """Read-only after N days, deleted after M days (ISM, or by index date)."""


@retention.command()
@store_option
@click.option(
    "--warm-after",
    type=int,
    default=30,
    show_default=True,
    help="Days after which an index becomes read-only and is force-merged (0: never).",
)
@click.option(
    "--delete-after",
    type=int,
    default=365,
    show_default=True,
    help="Days after which an index is deleted.",
)
@click.option("--dry-run", is_flag=True, help="Say what would happen, change nothing.")
def apply(store_url: str | None, warm_after: int, delete_after: int, dry_run: bool) -> None:
    """Apply the retention policy now, by the date in each index's name."""
    from useraudit.store import StoreError, open_store
    from useraudit.store.opensearch import OpenSearchStore

    from . import retention as policy

    store = open_store(store_url)
    if not isinstance(store, OpenSearchStore):
        raise click.ClickException(
            "retention apply is for OpenSearch; on SQLite use `useraudit prune`"
        )
    if not dry_run and policy.has_ism(store.client):
        click.echo(
            "note: this cluster has ISM; `templates install --retention` attaches the same "
            "policy there"
        )
    try:
        _refuse_under_legal_hold(store, dry_run)
        done = policy.apply(
            store.client,
            store.prefix,
            warm_after=warm_after or None,
            delete_after=delete_after,
            dry_run=dry_run,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    for decision, what in done:
        click.echo(f"{decision.index}: {what}")
    click.echo(
        f"{sum(1 for _, w in done if w == 'deleted')} deleted, "
        f"{sum(1 for _, w in done if w.startswith('made read-only'))} made read-only, "
        f"{sum(1 for _, w in done if w == 'kept')} kept"
    )


def _refuse_under_legal_hold(store: OpenSearchStore, dry_run: bool) -> None:
    """Whole indices hold every account's events: none may go while any account is held."""
    from useraudit.retention import Retention

    held = Retention(store).held()
    if held and not dry_run:
        raise click.ClickException(
            f"legal hold on {', '.join(held)}: deleting whole indices would delete their events; "
            "lift the hold (`useraudit retention release`) or use `useraudit prune`, "
            "which skips held accounts"
        )
