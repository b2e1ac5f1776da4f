"""``useraudit integrity …``, ``useraudit verify`` and ``useraudit verify-export``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from useraudit.cli_helpers import clean_exit, store_option

keys_option = click.option(
    "--keys",
    "key_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="USERAUDIT_KEYS",
    default=None,
    show_envvar=True,
    help="Signing key directory (default: $USERAUDIT_HOME/integrity/keys).",
)
public_key_option = click.option(
    "--public-key",
    "public_key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Published keyring (PEM public keys); default: the public keys in --keys.",
)


def _keyring(public_key: Path | None, key_dir: Path | None):  # noqa: ANN202 - Keyring
    from .keys import KeyFileError, Keyring

    try:
        if public_key is not None:
            return Keyring.from_file(public_key)
        return Keyring.from_directory(key_dir)
    except KeyFileError as exc:
        raise click.ClickException(f"{exc} (give the published key with --public-key)") from exc


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO date or time") from exc
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@click.group()
def integrity() -> None:
    """Signing keys and checkpoints of the tamper-evident history."""


@integrity.command()
@keys_option
def keygen(key_dir: Path | None) -> None:
    """Create a signing key and make it current (the indexer then seals)."""
    from .keys import default_key_dir, generate, load_current

    directory = key_dir or default_key_dir()
    if load_current(directory) is not None:
        raise click.ClickException(f"{directory} already has a key: use `integrity rotate`")
    key = generate(directory)
    click.echo(f"key {key.id} created in {directory}; publish `useraudit integrity public-key`")


@integrity.command()
@keys_option
def rotate(key_dir: Path | None) -> None:
    """Make a new key current; older public keys stay in the keyring."""
    from .keys import default_key_dir, generate, load_current

    directory = key_dir or default_key_dir()
    old = load_current(directory)
    key = generate(directory)
    click.echo(f"key {key.id} is current{f' (was {old.id})' if old else ''}")


@integrity.command("public-key")
@keys_option
def public_key_cmd(key_dir: Path | None) -> None:
    """Print the keyring to publish: every public key, PEM."""
    click.echo(_keyring(None, key_dir).pem().decode(), nl=False)


@integrity.command()
@store_option
@click.option("--account", default=None, help="Only this account's chain.")
def checkpoints(store_url: str | None, account: str | None) -> None:
    """Print checkpoints as NDJSON (to forward them, or keep heads elsewhere)."""
    from useraudit.store import StoreError, open_store
    from useraudit.store.ledger import ledger_for

    with clean_exit(StoreError):
        store = open_store(store_url)
    try:
        for doc in ledger_for(store).iterate(account):
            click.echo(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
    finally:
        store.close()


@click.command()
@store_option
@click.option("--account", default=None, help="Only this account (default: every account).")
@click.option("--from", "start", default=None, help="Events at or after this time (ISO).")
@click.option("--to", "end", default=None, help="Events at or before this time (ISO).")
@public_key_option
@keys_option
@click.option(
    "--grace",
    default=60.0,
    show_default=True,
    help="Seconds an unsealed event may be in flight before it counts as inserted.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per finding, then a summary."
)
@click.option("--quiet", is_flag=True, help="Only the summary, and findings that fail.")
def verify(
    store_url: str | None,
    account: str | None,
    start: str | None,
    end: str | None,
    public_key: Path | None,
    key_dir: Path | None,
    grace: float,
    as_json: bool,
    quiet: bool,
) -> None:
    """Check the stored history against its signed checkpoints; exit 0 only when clean.

    Reports by event id: modified, deleted, inserted, out-of-sequence, gap
    (failures), pruned and pending (not failures).
    """
    from useraudit.store import StoreError, open_store

    from .verify import FAILING, Verifier

    keyring = _keyring(public_key, key_dir)
    with clean_exit(StoreError):
        store = open_store(store_url)
    try:
        report = Verifier(store, keyring, grace=grace).run(account, _when(start), _when(end))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    pruned = [f for f in report.findings if f.kind == "pruned"]
    for f in report.findings:
        if f.kind == "pruned" and not as_json:
            continue
        if quiet and f.kind not in FAILING:
            continue
        if as_json:
            click.echo(json.dumps(f.__dict__, ensure_ascii=False))
        else:
            click.echo(f.line())
    by_account: dict[str, int] = {}
    for f in pruned:
        by_account[f.account] = by_account.get(f.account, 0) + 1
    if not as_json:
        for name, n in sorted(by_account.items()):
            click.echo(f"{'pruned':<16} {n} event(s) of account {name} removed by retention")
    summary = {
        "clean": report.clean,
        "accounts": report.accounts,
        "checkpoints": report.checkpoints,
        "sealed": report.sealed,
        "events": report.events,
        **report.counts(),
    }
    click.echo(json.dumps(summary) if as_json else _summary(summary), err=not as_json)
    sys.exit(0 if report.clean else 1)


def _summary(s: dict) -> str:
    state = "clean" if s["clean"] else "NOT CLEAN"
    extra = ", ".join(f"{k} {v}" for k, v in s.items() if k not in ("clean",))
    return f"verify: {state} ({extra})"
