"""``useraudit retention``, ``useraudit prune`` and ``useraudit migrate``.

* ``retention apply`` applies the retention policy (:mod:`.store.retention`: read-only
  after ``--warm-after``, deleted after ``--delete-after`` days) to either store.
* ``prune --older-than DAYS`` deletes events older than DAYS days, in small
  batches (``--batch``, default 500), each its own short transaction on
  SQLite, so sign-ins writing audit events are never locked out.
* ``migrate --from URL --to URL`` copies every account's events newest first
  through ``iterate`` and idempotent writes: interrupted, it is simply run
  again (events already there come back as duplicates and are skipped). At
  the end it checks, per account, that the target has as many events as
  the source, and exits 1 when not.

Progress bars are click's own (no extra dependency) and go to stderr. These
commands sit above the store and the integrity ledger: a prune is signed into
the ledger before anything is deleted.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta

import click

from useraudit.cli_helpers import (
    clean_exit,
    delete_after_option,
    store_option,
    warm_after_option,
)
from useraudit.store import open_store
from useraudit.store import retention as retention_policy
from useraudit.store.base import Store, StoreError, StoreUnavailable, WriteResult
from useraudit.store.opensearch import OpenSearchStore
from useraudit.store.opensearch import retention as by_index_date
from useraudit.store.query import Query

delete_batch_option = click.option(
    "--batch",
    type=click.IntRange(1, 10_000),
    default=500,
    show_default=True,
    help="Events deleted per transaction (SQLite) or delete batch (OpenSearch).",
)


def _open(url: str | None) -> Store:
    with clean_exit(StoreError):
        return open_store(url)


@click.command("prune")
@click.option(
    "--older-than",
    "days",
    type=click.FloatRange(min=0),
    default=None,
    help="Delete events older than this many days in every account (default: each "
    "account's retention, see `useraudit retention`). Accounts under legal hold are skipped.",
)
@store_option
@delete_batch_option
def prune(days: float | None, store_url: str | None, batch: int) -> None:
    """Delete events past their retention, in small batches; never under a legal hold."""
    store = _open(store_url)
    with clean_exit(StoreError), closing(store):
        _prune(store, days, batch)


def _prune(store: Store, days: float | None, batch: int) -> None:
    """Each account's retention (or ``days`` for all), held accounts skipped, ledger first."""
    from useraudit.retention import Retention

    record = _prune_recorder(store)
    expected = 0
    cutoff = datetime.now(UTC) - timedelta(days=days or 0)
    if days is not None:
        expected = retention_policy.older_than(cutoff, store)
        click.echo(f"{store.url}: {expected:,} events before {cutoff:%Y-%m-%d %H:%M} UTC", err=True)
    with click.progressbar(
        length=max(expected, 1), label="Deleting", show_pos=True, file=sys.stderr
    ) as bar:
        result = Retention(store).prune(
            days, batch_size=batch, progress=bar.update, before_delete=record
        )
    deleted = sum(result.deleted.values())
    for account in result.held:
        click.echo(f"{account}: under legal hold, nothing deleted")
    if days is not None:
        click.echo(
            f"Deleted {deleted:,} events older than {cutoff:%Y-%m-%d %H:%M} UTC from {store.url}"
        )
        return
    for account, n in sorted(result.deleted.items()):
        click.echo(f"{account}: deleted {n:,} events before {result.cutoffs[account]:%Y-%m-%d}")
    click.echo(f"Deleted {deleted:,} events past their account's retention from {store.url}")


def _delete_before(store: Store, cutoff: datetime, batch: int, *, dry_run: bool) -> None:
    """Delete (or with ``dry_run`` count) the events before ``cutoff``, with a progress bar."""
    expected = retention_policy.older_than(cutoff, store)
    click.echo(f"{store.url}: {expected:,} events before {cutoff:%Y-%m-%d %H:%M} UTC", err=True)
    if dry_run:
        click.echo(f"would delete {expected:,} events older than {cutoff:%Y-%m-%d %H:%M} UTC")
        return
    _record_prune(store, cutoff)
    with click.progressbar(
        length=max(expected, 1), label="Deleting", show_pos=True, file=sys.stderr
    ) as bar:
        deleted = retention_policy.delete_before(
            store, cutoff, batch_size=batch, progress=bar.update
        )
    click.echo(
        f"Deleted {deleted:,} events older than {cutoff:%Y-%m-%d %H:%M} UTC from {store.url}"
    )


def _prune_recorder(store: Store) -> Callable[[str, datetime], None] | None:
    """Signs each account's cutoff into the integrity ledger first (docs/integrity.md)."""
    from useraudit.integrity.keys import KeyFileError
    from useraudit.integrity.retention import record_prune, signing_key_for_prune

    with clean_exit(KeyFileError):
        key = signing_key_for_prune(store)
    if key is None:
        return None
    signing_key = key

    def record(account: str, cutoff: datetime) -> None:
        record_prune(store, signing_key, cutoff, [account])

    return record


def _record_prune(store: Store, cutoff: datetime) -> None:
    """Sign one cutoff for every sealed account into the ledger first (docs/integrity.md)."""
    record = _prune_recorder(store)
    if record is not None:
        from useraudit.store.ledger import ledger_for

        for account in ledger_for(store).accounts():
            record(account, cutoff)


@click.group()
def retention() -> None:
    """Keep events for --delete-after days (OpenSearch: read-only after --warm-after)."""


@retention.command()
@store_option
@warm_after_option
@delete_after_option
@click.option("--dry-run", is_flag=True, help="Say what would happen, change nothing.")
@delete_batch_option
def apply(
    store_url: str | None, warm_after: int, delete_after: int, dry_run: bool, batch: int
) -> None:
    """Apply the retention policy now (OpenSearch: by the date in each index's name)."""
    with clean_exit(ValueError):
        policy = retention_policy.RetentionPolicy(warm_after or None, delete_after)
    store = _open(store_url)
    with clean_exit(StoreError), closing(store):
        held = [] if dry_run else _held(store)
        if isinstance(store, OpenSearchStore):
            if held:
                raise click.ClickException(
                    f"legal hold on {', '.join(held)}: deleting whole indices would delete "
                    "their events; lift the hold (`useraudit retention release`) or use "
                    "`useraudit prune`, which skips held accounts"
                )
            _apply_by_index_date(store, policy, dry_run)
        elif held:  # delete account by account, the held ones untouched
            _prune(store, policy.delete_after, batch)
        else:
            _delete_before(store, policy.cutoff(), batch, dry_run=dry_run)


def _held(store: Store) -> list[str]:
    from useraudit.retention import Retention

    return Retention(store).held()


def _apply_by_index_date(
    store: OpenSearchStore, policy: retention_policy.RetentionPolicy, dry_run: bool
) -> None:
    if not dry_run and by_index_date.has_ism(store.client):
        click.echo(
            "note: this cluster has ISM; `useraudit templates install` hands it the same "
            "policy, which it then applies by itself"
        )
    done = by_index_date.apply(
        store.client,
        store.prefix,
        warm_after=policy.warm_after,
        delete_after=policy.delete_after,
        dry_run=dry_run,
        # Whole indices hold every account's events: each sealed account's
        # chain gets the cutoff, signed before the first index goes.
        before_delete=None if dry_run else lambda cutoff: _record_prune(store, cutoff),
    )
    for decision, what in done:
        click.echo(f"{decision.index}: {what}")
    click.echo(
        f"{sum(1 for _, w in done if w == 'deleted')} deleted, "
        f"{sum(1 for _, w in done if w.startswith('made read-only'))} made read-only, "
        f"{sum(1 for _, w in done if w == 'kept')} kept"
    )


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


def _copy_ledger(source: Store, target: Store, accounts: list[str] | None) -> list[str]:
    """Copy the accounts' signed checkpoints, so ``verify`` on the target is clean.

    Checkpoints are copied as they are (signed bodies and entries); one the
    target already has is left alone if identical, else named in the result.
    """
    from useraudit.store.ledger import ledger_for

    from_ledger, to_ledger = ledger_for(source), ledger_for(target)
    copied = same = 0
    differing: list[str] = []
    # Every chain by default, also of accounts whose events were all pruned.
    for account in accounts or from_ledger.accounts():
        for doc in from_ledger.iterate(account):
            if to_ledger.create(doc):
                copied += 1
            elif to_ledger.get(account, int(doc["seq"])) == doc:
                same += 1
            else:
                differing.append(f"{account}/{doc['seq']}")
    click.echo(f"checkpoints: copied {copied:,}, already there {same:,}")
    return differing


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
    with clean_exit(StoreError), closing(source), closing(target):
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
        differing = _copy_ledger(source, target, list(accounts) or None)
    for line in failed:
        click.echo(f"  not copied: {line}", err=True)
    if differing:
        raise click.ClickException(
            f"the target already holds {len(differing)} different checkpoint(s), "
            f"e.g. {differing[0]}: it has a history of its own; verify both stores"
        )
    if mismatched or totals["rejected"] or totals["retry"]:
        raise click.ClickException(
            f"migration incomplete: {len(mismatched)} account(s) differ; run it again to resume"
        )
    click.echo("verified: every account has the same number of events in both stores")
