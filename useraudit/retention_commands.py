"""``useraudit retention set|default|hold|release|show``: retention per account, legal holds.

Added to the ``retention`` group of :mod:`useraudit.store_commands` beside
``retention apply``; ``useraudit prune`` applies what is set here.
"""

from __future__ import annotations

import json

import click

from useraudit.cli_helpers import store_option
from useraudit.store_commands import _open, retention

from .retention import Retention, named_accounts
from .store.account_settings import DEFAULTS
from .store.base import StoreError


def _run(store_url: str | None, action):  # noqa: ANN001, ANN202 - a callback on Retention
    store = _open(store_url)
    try:
        return action(Retention(store))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()


@retention.command("set")
@click.argument("account")
@click.argument("days", type=click.FloatRange(min=0))
@store_option
def set_days(account: str, days: float, store_url: str | None) -> None:
    """Keep ACCOUNT's events DAYS days (applied by `useraudit prune`)."""
    _run(store_url, lambda r: r.set_days(account, days))
    click.echo(f"{account}: events kept {days:g} days (recorded in its audit trail)")


@retention.command("unset")
@click.argument("account")
@store_option
def unset_days(account: str, store_url: str | None) -> None:
    """ACCOUNT follows the default retention again."""
    _run(store_url, lambda r: r.set_days(account, None))
    click.echo(f"{account}: follows the default retention")


@retention.command("default")
@click.argument("days", type=click.FloatRange(min=0))
@store_option
def set_default(days: float, store_url: str | None) -> None:
    """Retention in days for every account without its own."""
    _run(store_url, lambda r: r.set_days(DEFAULTS, days))
    click.echo(f"default retention: {days:g} days")


@retention.command("hold")
@click.argument("account")
@click.option("--reason", required=True, help="Why (a case number, a request): kept with it.")
@store_option
def hold(account: str, reason: str, store_url: str | None) -> None:
    """Place a legal hold: nothing of ACCOUNT is deleted until it is released."""
    _run(store_url, lambda r: r.place_hold(account, reason))
    click.echo(f"{account}: legal hold placed ({reason}); prune will skip it")


@retention.command("release")
@click.argument("account")
@store_option
def release(account: str, store_url: str | None) -> None:
    """Lift ACCOUNT's legal hold."""
    if not _run(store_url, lambda r: r.lift_hold(account)):
        raise click.ClickException(f"{account} has no legal hold")
    click.echo(f"{account}: legal hold lifted")


@retention.command("show")
@store_option
def show(store_url: str | None) -> None:
    """Retention and holds per account, as JSON."""

    def collect(r: Retention) -> dict:
        accounts = sorted(set(r.store.accounts()) | named_accounts(r.settings.all()))
        return {
            "default_days": r.settings.get(DEFAULTS).get("retention_days"),
            "accounts": {a: {"days": r.days(a), "legal_hold": r.hold(a)} for a in accounts},
        }

    click.echo(json.dumps(_run(store_url, collect), indent=2, ensure_ascii=False))
