"""What the command groups share: ``--store``, ``--spool`` and a clean exit on expected errors.

A command that opens a store takes ``@store_option``; an error the user can
act on (a store that refuses, a bad value) ends the command with click's
one-line ``Error: ...`` and exit code 1, never a traceback::

    with clean_exit(StoreError):
        store = open_store(store_url)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from useraudit.config import DEFAULT_DELETE_AFTER_DAYS, DEFAULT_WARM_AFTER_DAYS

store_option = click.option(
    "--store",
    "store_url",
    envvar="USERAUDIT_STORE",
    default=None,
    show_envvar=True,
    help="Store URL: sqlite:///path/audit.db (default) or http(s)://[user:pass@]host:9200.",
)

spool_option = click.option(
    "--spool",
    "spool_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="USERAUDIT_SPOOL",
    default=None,
    show_envvar=True,
    help="Spool directory the host app writes, the indexer reads (default: $USERAUDIT_HOME/spool).",
)


@contextmanager
def clean_exit(*errors: type[Exception]) -> Iterator[None]:
    """Turn ``errors`` raised inside into :class:`click.ClickException` (exit 1, one line)."""
    try:
        yield
    except errors as exc:
        raise click.ClickException(str(exc)) from exc


warm_after_option = click.option(
    "--warm-after",
    type=click.IntRange(min=0),
    default=DEFAULT_WARM_AFTER_DAYS,
    show_default=True,
    help="OpenSearch: days until an index becomes read-only and is force-merged (0: never).",
)
delete_after_option = click.option(
    "--delete-after",
    type=click.IntRange(min=1),
    default=DEFAULT_DELETE_AFTER_DAYS,
    show_default=True,
    help="Days until events are deleted (OpenSearch: whole indices, by the end of their month).",
)
