"""``useraudit api-tokens``: create, list and revoke an account's API tokens.

Creating and revoking act for a person who must be ``USER_ADMIN`` of the
account (``--by USERNAME``, from the web users database); both land in that
account's audit trail.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .api_tokens import SCOPES, TokenStore

tokens_option = click.option(
    "--tokens-db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="USERAUDIT_API_TOKENS",
    default=None,
    show_envvar=True,
    help="API token database (default: $USERAUDIT_HOME/api_tokens.db).",
)


def _store(path: Path | None) -> TokenStore:
    from .api import _default_tokens_path

    return TokenStore(path or _default_tokens_path())


def _admin(username: str, account: str) -> dict[str, str]:
    from .users import UserStore, default_path

    user = UserStore(default_path()).by_username(username)
    if user is None or not user.is_admin_of(account):
        raise click.ClickException(f"{username!r} is not USER_ADMIN of account {account!r}")
    return user.person()


@click.group("api-tokens")
def api_tokens() -> None:
    """API tokens of an account (scopes: events:read, alerts:read)."""


@api_tokens.command()
@tokens_option
@click.argument("account")
@click.option("--by", "username", required=True, help="USER_ADMIN of ACCOUNT who creates it.")
@click.option("--name", required=True, help="What the token is for.")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(SCOPES), required=True)
@click.option("--days", default=90.0, show_default=True, help="Expires after this many days.")
def create(
    tokens_db: Path | None, account: str, username: str, name: str, scopes: tuple[str, ...],
    days: float,
) -> None:  # fmt: skip
    """Create a token; its secret is printed once, here, and never again."""
    person = _admin(username, account)
    try:
        token, secret = _store(tokens_db).create(
            account, name, scopes, created_by=person, ttl_days=days
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({**token.public(), "token": secret}))


@api_tokens.command("list")
@tokens_option
@click.argument("account")
def list_tokens(tokens_db: Path | None, account: str) -> None:
    """One JSON line per token of ACCOUNT (never the secret)."""
    for token in _store(tokens_db).list(account):
        click.echo(json.dumps({**token.public(), "active": token.active}))


@api_tokens.command()
@tokens_option
@click.argument("account")
@click.argument("token_id")
@click.option("--by", "username", required=True, help="USER_ADMIN of ACCOUNT who revokes it.")
def revoke(tokens_db: Path | None, account: str, token_id: str, username: str) -> None:
    """Revoke a token of ACCOUNT at once."""
    person = _admin(username, account)
    if not _store(tokens_db).revoke(token_id, by=person, account=account):
        raise click.ClickException(f"no token {token_id} in account {account}")
    click.echo(f"revoked {token_id}")
