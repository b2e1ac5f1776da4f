"""``useraudit integrity …``, ``useraudit verify`` and ``useraudit verify-export``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from useraudit.cli_helpers import clean_exit, store_option

if TYPE_CHECKING:
    from useraudit.store.base import Store

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


def _open(url: str | None) -> Store:
    from useraudit.store import StoreError, open_store

    with clean_exit(StoreError):
        return open_store(url)


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


@integrity.command("heads")
@store_option
@click.option("--account", default=None, help="Only this account's head.")
def heads_cmd(store_url: str | None, account: str | None) -> None:
    """Print each account's newest checkpoint as NDJSON: keep it elsewhere for verify --heads."""
    from useraudit.store import StoreError, open_store
    from useraudit.store.ledger import ledger_for

    from .heads import write_heads

    with clean_exit(StoreError):
        store = open_store(store_url)
    try:
        with clean_exit(StoreError):
            write_heads(ledger_for(store), sys.stdout, account)
    finally:
        store.close()


@integrity.command("export")
@store_option
@click.option("--account", required=True, help="The account whose events are exported.")
@click.option("--from", "start", default=None, help="Events at or after this time (ISO).")
@click.option("--to", "end", default=None, help="Events at or before this time (ISO).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: standard output).",
)
def export_cmd(
    store_url: str | None, account: str, start: str | None, end: str | None, out: Path | None
) -> None:
    """NDJSON export that carries its proof: checkpoints and inclusion paths.

    Check it anywhere with `useraudit verify-export FILE --public-key K`.
    """
    from useraudit.store.base import StoreError

    from .export import write_export

    store = _open(store_url)
    try:
        if out is None:
            stats = write_export(store, sys.stdout, account, _when(start), _when(end))
        else:
            with open(out, "w", encoding="utf-8") as fh:
                stats = write_export(store, fh, account, _when(start), _when(end))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    click.echo(
        f"exported {stats.events} events, {stats.proven} with proof, "
        f"{stats.checkpoints} checkpoints",
        err=True,
    )
    if stats.unsealed:
        click.echo(
            f"{len(stats.unsealed)} events are not sealed yet (first: {stats.unsealed[0]}): "
            "export again in a moment, or run `useraudit verify`",
            err=True,
        )


@click.command("verify-export")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option(
    "--public-key",
    "public_key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The published keyring (PEM public keys).",
)
def verify_export(file, public_key: Path) -> None:  # noqa: ANN001 - click.File
    """Check a proof-carrying export offline: exit 0 only when every line holds."""
    from .export import verify_file

    result = verify_file(file, _keyring(public_key, None))
    for problem in result.problems:
        click.echo(f"line {problem.line}: {problem.reason}")
    if result.ok:
        click.echo(
            f"verified: {result.events} events, each in one of {result.checkpoints} "
            "signed checkpoints"
        )
        return
    if not result.events and not result.problems:
        click.echo("no events in this file")
    sys.exit(1)


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
@click.option(
    "--heads",
    "heads_file",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="NDJSON of checkpoints kept elsewhere (`useraudit integrity heads`): "
    "report a chain the store no longer holds up to them (truncation).",
)
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
    heads_file,  # noqa: ANN001 - click.File
) -> None:
    """Check the stored history against its signed checkpoints; exit 0 only when clean.

    Reports by event id: modified, deleted, inserted, out-of-sequence, gap
    (failures), pruned and pending (not failures).
    """
    from useraudit.store import StoreError, open_store

    from .heads import compare, read_heads
    from .verify import FAILING, Verifier

    keyring = _keyring(public_key, key_dir)
    try:
        heads = list(read_heads(heads_file)) if heads_file is not None else []
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    with clean_exit(StoreError):
        store = open_store(store_url)
    try:
        verifier = Verifier(store, keyring, grace=grace)
        report = verifier.run(account, _when(start), _when(end))
        report.findings.extend(compare(heads, verifier.ledger, keyring, account))
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
