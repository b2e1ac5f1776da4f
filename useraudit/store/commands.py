"""``useraudit prune`` and ``useraudit migrate``: retention and moving stores.

* ``prune --older-than DAYS`` deletes events older than DAYS days, in small
  batches (``--batch``, default 500), each its own short transaction on
  SQLite, so sign-ins writing audit events are never locked out.
* ``migrate --from URL --to URL`` copies every account's events newest first
  through ``iterate`` and idempotent writes: interrupted, it is simply run
  again (events already there come back as duplicates and are skipped). At
  the end it checks, per account, that the target has as many events as
  the source, and exits 1 when not.

Progress bars are click's own (no extra dependency) and go to stderr.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import click

from . import open_store
from .base import Store, StoreError, StoreUnavailable, WriteResult
from .query import Query

store_option = click.option(
    "--store",
    "store_url",
    envvar="USERAUDIT_STORE",
    default=None,
    show_envvar=True,
    help="Store URL: sqlite:///path/audit.db (default) or http(s)://[user:pass@]host:9200.",
)


def _open(url: str | None) -> Store:
    try:
        return open_store(url)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def older_than(cutoff: datetime, store: Store) -> int:
    """How many events (with an account) are older than ``cutoff``, via the contract."""
    end = cutoff - timedelta(milliseconds=1)
    return sum(store.count(Query(account, end=end)) for account in store.accounts())


@click.command("prune")
@click.option(
    "--older-than",
    "days",
    type=click.FloatRange(min=0),
    required=True,
    help="Delete events older than this many days.",
)
@store_option
@click.option(
    "--batch",
    type=click.IntRange(1, 10_000),
    default=500,
    show_default=True,
    help="Events deleted per transaction / delete batch.",
)
def prune(days: float, store_url: str | None, batch: int) -> None:
    """Delete events older than DAYS days, in small batches."""
    cutoff = datetime.now(UTC) - timedelta(days=days)
    store = _open(store_url)
    try:
        _record_prune(store, cutoff)
        expected = older_than(cutoff, store)
        click.echo(f"{store.url}: {expected:,} events before {cutoff:%Y-%m-%d %H:%M} UTC", err=True)
        with click.progressbar(
            length=max(expected, 1), label="Deleting", show_pos=True, file=sys.stderr
        ) as bar:
            deleted = store.delete_older_than(cutoff, batch_size=batch, progress=bar.update)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    click.echo(
        f"Deleted {deleted:,} events older than {cutoff:%Y-%m-%d %H:%M} UTC from {store.url}"
    )


def _record_prune(store: Store, cutoff: datetime) -> None:
    """Sign the cutoff into the integrity ledger first (docs/integrity.md, Retention)."""
    from useraudit.integrity.keys import KeyFileError
    from useraudit.integrity.retention import record_prune, signing_key_for_prune

    try:
        key = signing_key_for_prune(store)
    except KeyFileError as exc:
        raise StoreError(str(exc)) from exc
    if key is not None:
        record_prune(store, key, cutoff)


def _batches(store: Store, account: str, size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for doc in store.iterate(Query(account), batch_size=size):
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write(target: Store, docs: list[dict], attempts: int = 5) -> list[WriteResult]:
    """Write, retrying what may succeed later; returns the final result per document."""
    final: list[WriteResult | None] = [None] * len(docs)
    pending = list(range(len(docs)))
    for attempt in range(attempts):
        try:
            results = target.write([docs[i] for i in pending])
        except StoreUnavailable:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * 2**attempt)
            continue
        retry = []
        for i, result in zip(pending, results, strict=True):
            if result.status == "retry" and attempt < attempts - 1:
                retry.append(i)
            else:
                final[i] = result
        if not retry:
            break
        pending = retry
        time.sleep(0.5 * 2**attempt)
    return [r or WriteResult("retry", "gave up") for r in final]


@click.command("migrate")
@click.option("--from", "source_url", required=True, help="Store to copy from (URL).")
@click.option(
    "--to", "target_url", required=True, help="Store to copy into (URL); created if needed."
)
@click.option("--account", "accounts", multiple=True, help="Only these accounts (default: all).")
@click.option(
    "--batch",
    type=click.IntRange(1, 20_000),
    default=5000,
    show_default=True,
    help="Events per read and write batch.",
)
def migrate(source_url: str, target_url: str, accounts: tuple[str, ...], batch: int) -> None:
    """Copy events between stores; safe to re-run, verifies counts per account."""
    source, target = _open(source_url), _open(target_url)
    if source.url == target.url and getattr(source, "prefix", None) == getattr(
        target, "prefix", None
    ):
        raise click.ClickException("--from and --to are the same store")
    failed: list[str] = []
    try:
        for line in target.install():
            click.echo(line, err=True)
        names = list(accounts) or source.accounts()
        sizes = {a: source.count(Query(a)) for a in names}
        click.echo(
            f"{source.url} → {target.url}: {sum(sizes.values()):,} events in {len(names)} accounts",
            err=True,
        )
        totals = {"created": 0, "duplicate": 0, "rejected": 0, "retry": 0}
        with click.progressbar(
            length=max(sum(sizes.values()), 1),
            label="Copying",
            show_pos=True,
            show_percent=True,
            file=sys.stderr,
        ) as bar:
            for account in names:
                for docs in _batches(source, account, batch):
                    for doc, result in zip(docs, _write(target, docs), strict=True):
                        totals[result.status] += 1
                        if not result.delivered and len(failed) < 20:
                            failed.append(f"{doc.get('event.id')}: {result.status} {result.reason}")
                    bar.update(len(docs))
        target.refresh()
        click.echo(
            f"created {totals['created']:,}, already there {totals['duplicate']:,}, "
            f"rejected {totals['rejected']:,}, not written {totals['retry']:,}"
        )
        mismatched = []
        for account in names:
            there = target.count(Query(account))
            ok = there == sizes[account]
            click.echo(
                f"  {account}: source {sizes[account]:,}, target {there:,}"
                f"{'' if ok else '  MISMATCH'}"
            )
            if not ok:
                mismatched.append(account)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        source.close()
        target.close()
    for line in failed:
        click.echo(f"  not copied: {line}", err=True)
    if mismatched or totals["rejected"] or totals["retry"]:
        raise click.ClickException(
            f"migration incomplete: {len(mismatched)} account(s) differ; run it again to resume"
        )
    click.echo("verified: every account has the same number of events in both stores")
