"""``useraudit events search|tail|get``: the audit trail from a terminal.

Filters are the User actions page's own (:class:`~useraudit.webapp.filters.Filters`
parses them, so the two never disagree): give them as ``--filter NAME=VALUE``
(repeatable; NAME is any of the page's URL parameters: action, user, result,
ip, project, period, from, to, tz, q, ...) or paste a page's query string
with ``--url-query``. Output as a table, JSON lines or CSV. Every command
takes ``--store`` (``USERAUDIT_STORE``), as the indexer and the web app do.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import click
from werkzeug.datastructures import MultiDict

from useraudit.cli_helpers import store_option
from useraudit.store.query import Query, QueryError

from .columns import CELLS, parse_ts

if TYPE_CHECKING:
    from useraudit.store import Store

# (header, how to get it from a flat document)
TABLE = (
    ("Date and time (UTC)", lambda d: _when(d)),
    ("Account", lambda d: str(d.get("organization.id") or "")),
    ("Action", CELLS["action"]),
    ("Result", CELLS["result"]),
    ("User", CELLS["user"]),
    ("Modified user", CELLS["target"]),
    ("IP and device", CELLS["ip_device"]),
    ("Event id", lambda d: str(d.get("event.id") or "")),
)
CSV_FIELDS = (
    "@timestamp", "event.id", "organization.id", "event.action", "event.outcome", "user.id",
    "user.name", "user.email", "user.target.id", "user.target.name", "audit.impersonator.id",
    "audit.project.id", "audit.token.id", "source.ip", "user_agent.name", "user_agent.os.name",
    "audit.comments",
)  # fmt: skip


def _when(doc: dict) -> str:
    ts = parse_ts(doc.get("@timestamp"))
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


@click.group()
def events() -> None:
    """Search, follow and fetch audit events; the event catalog."""


filter_options = [
    click.option("--account", "accounts", multiple=True, help="Account id (repeatable)."),
    click.option("--all-accounts", is_flag=True, help="Every account in the store."),
    click.option(
        "--filter",
        "filters",
        multiple=True,
        metavar="NAME=VALUE",
        help="A User actions page filter, e.g. action=user.signed_in, result=failure, "
        "ip=10.0.0.0/8, period=24h, q=text (repeatable).",
    ),
    click.option("--url-query", default="", help="A User actions page query string, as is."),
    click.option("-q", "text", default="", help="Full-text search over comments (query syntax)."),
]


def with_filters(fn):  # type: ignore[no-untyped-def]
    for option in reversed(filter_options):
        fn = option(fn)
    return fn


def parse_filters(
    accounts: tuple[str, ...], all_accounts: bool, filters: tuple[str, ...], url_query: str,
    text: str, store: Store, default_period: str = "30d",
) -> list[Query]:  # fmt: skip
    """The Query for each account, from the page's parameters (QueryError when bad)."""
    from .filters import Filters

    args: MultiDict = MultiDict(parse_qsl(url_query.lstrip("?"), keep_blank_values=True))
    for item in filters:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise QueryError(f"--filter {item!r}: write NAME=VALUE")
        args.add(name.strip(), value)
    if text:
        args.add("q", text)
    if "period" not in args and "from" not in args and "to" not in args:
        args["period"] = default_period
    elif ("from" in args or "to" in args) and "period" not in args:
        args["period"] = "custom"
    parsed = Filters.parse(args)
    if all_accounts:
        accounts = tuple(store.accounts())
    elif not accounts:
        raise QueryError("give --account ID (repeatable) or --all-accounts")
    return [parsed.query(account) for account in accounts]


def newest_first(store: Store, queries: list[Query], limit: int) -> list[dict]:
    docs: list[dict] = []
    for query in queries:
        for n, doc in enumerate(store.iterate(query, batch_size=min(1000, max(limit, 10)))):
            if limit and n >= limit:
                break
            docs.append(doc)
    docs.sort(key=lambda d: (str(d.get("@timestamp") or ""), str(d.get("event.id"))), reverse=True)
    return docs[:limit] if limit else docs


class Output:
    """Prints documents as a table, JSON lines or CSV."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self._csv = csv.writer(sys.stdout) if fmt == "csv" else None
        self._header_done = False

    def header(self) -> None:
        if self._header_done:
            return
        self._header_done = True
        if self._csv is not None:
            self._csv.writerow(CSV_FIELDS)
        elif self.fmt == "table":
            click.echo("  ".join(h for h, _ in TABLE))

    def write(self, docs: Iterable[dict]) -> int:
        self.header()
        n = 0
        for doc in docs:
            n += 1
            if self.fmt == "jsonl":
                click.echo(json.dumps(doc, ensure_ascii=False, sort_keys=True, default=str))
            elif self._csv is not None:
                self._csv.writerow([_csv_cell(doc.get(f)) for f in CSV_FIELDS])
            else:
                click.echo("  ".join(_clean(get(doc)) for _, get in TABLE))
        sys.stdout.flush()
        return n


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    # A spreadsheet would run a cell starting like a formula (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _clean(text: str) -> str:
    # One event, one line: control characters could forge lines or colours.
    return "".join(c if c.isprintable() else " " for c in text)


format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "jsonl", "csv"]),
    default="table",
    show_default=True,
)


def _open(store_url: str | None) -> Store:
    from useraudit.store import StoreError, open_store

    try:
        return open_store(store_url)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


@events.command()
@store_option
@with_filters
@format_option
@click.option("--limit", default=50, show_default=True, help="At most this many (0 = all).")
def search(
    store_url: str | None,
    accounts: tuple[str, ...],
    all_accounts: bool,
    filters: tuple[str, ...],
    url_query: str,
    text: str,
    fmt: str,
    limit: int,
) -> None:
    """Events matching the filters, newest first (default period: last 30 days)."""
    from useraudit.store import StoreError

    store = _open(store_url)
    try:
        queries = parse_filters(accounts, all_accounts, filters, url_query, text, store)
        Output(fmt).write(newest_first(store, queries, limit))
    except QueryError as exc:
        raise click.UsageError(str(exc)) from exc
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()


@events.command()
@store_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "table", "csv"]),
    default="jsonl",
    show_default=True,
)
@click.argument("event_ids", nargs=-1, required=True)
def get(store_url: str | None, fmt: str, event_ids: tuple[str, ...]) -> None:
    """The stored events with these ids (any account); exit 1 when one is missing."""
    from useraudit.store import StoreError

    store = _open(store_url)
    try:
        found = store.get(list(event_ids))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    Output(fmt).write(found[i] for i in event_ids if i in found)
    missing = [i for i in event_ids if i not in found]
    if missing:
        raise click.ClickException(f"not found: {', '.join(missing)}")


@events.command()
@store_option
@with_filters
@format_option
@click.option("-n", "--lines", default=10, show_default=True, help="Recent events shown first.")
@click.option("--follow", "-f", "follow", is_flag=True, help="Keep printing new events.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between polls.")
@click.option(
    "--lookback",
    default=300.0,
    show_default=True,
    help="Seconds back each poll looks, so events stored late still show (once).",
)
def tail(
    store_url: str | None,
    accounts: tuple[str, ...],
    all_accounts: bool,
    filters: tuple[str, ...],
    url_query: str,
    text: str,
    fmt: str,
    lines: int,
    follow: bool,
    interval: float,
    lookback: float,
) -> None:
    """The last events, oldest of them first; with --follow, new ones as they are stored."""
    from useraudit.store import StoreError

    store = _open(store_url)
    out = Output(fmt)
    try:
        queries = parse_filters(accounts, all_accounts, filters, url_query, text, store, "30d")
        first = newest_first(store, queries, lines) if lines else []
        out.write(reversed(first))
        if not follow:
            return
        # What the window holds now was shown (the last -n) or is history: not new.
        since = datetime.now(UTC) - timedelta(seconds=lookback)
        seen = {
            str(d.get("event.id")): parse_ts(d.get("@timestamp"))
            for query in queries
            for d in store.iterate(replace(query, start=since, end=None), fields=("event.id",))
        }
        seen.update({str(d.get("event.id")): parse_ts(d.get("@timestamp")) for d in first})
        for batch in _follow(store, queries, seen, interval, lookback, all_accounts, filters,
                             url_query, text):  # fmt: skip
            out.write(batch)
    except QueryError as exc:
        raise click.UsageError(str(exc)) from exc
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        pass
    finally:
        store.close()


def _follow(
    store: Store, queries: list[Query], seen: dict, interval: float, lookback: float,
    all_accounts: bool, filters: tuple[str, ...], url_query: str, text: str,
) -> Iterator[list[dict]]:  # fmt: skip
    while True:
        time.sleep(interval)
        store.refresh()
        since = datetime.now(UTC) - timedelta(seconds=lookback)
        if all_accounts:  # accounts that appear later are followed too
            known = {q.account for q in queries}
            template = queries[0] if queries else None
            for account in store.accounts():
                if account not in known and template is not None:
                    queries.append(replace(template, account=account))
                elif account not in known:
                    queries.extend(
                        parse_filters((account,), False, filters, url_query, text, store)
                    )
        fresh: list[dict] = []
        for query in queries:
            for doc in store.iterate(replace(query, start=since, end=None)):
                event_id = str(doc.get("event.id"))
                if event_id not in seen:
                    seen[event_id] = parse_ts(doc.get("@timestamp"))
                    fresh.append(doc)
        # forget what fell out of the window, so memory stays bounded
        horizon = since - timedelta(seconds=lookback)
        for event_id in [k for k, ts in seen.items() if ts is not None and ts < horizon]:
            del seen[event_id]
        fresh.sort(key=lambda d: (str(d.get("@timestamp") or ""), str(d.get("event.id"))))
        if fresh:
            yield fresh
