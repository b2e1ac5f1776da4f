"""``useraudit indexer``: run the indexer and manage its dead letters."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import click

from useraudit.cli_helpers import clean_exit, spool_option, store_option
from useraudit.config import default_spool_dir

if TYPE_CHECKING:
    from useraudit.store import Store

    from .sinks.outbox import SinksStage

log = logging.getLogger("useraudit.indexer")


sinks_option = click.option(
    "--sinks",
    "sinks_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="USERAUDIT_SINKS",
    default=None,
    show_envvar=True,
    help="TOML file of streaming sinks (webhook, syslog, kafka, file); see docs/sinks.md.",
)


@click.group()
def indexer() -> None:
    """Ship spooled events to the store."""


@indexer.command()
@spool_option
@store_option
@click.option("--once", is_flag=True, help="Ship what is in the spool now, then exit.")
@click.option(
    "--batch", "batch_records", default=2000, show_default=True, help="Events per bulk request."
)
@click.option(
    "--install/--no-install",
    default=True,
    show_default=True,
    help="Install or upgrade the index template first.",
)
@click.option(
    "--detect/--no-detect",
    default=True,
    show_default=True,
    help="Run the detection rules on every stored event (docs/detections.md).",
)
@click.option(
    "--detect-config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="USERAUDIT_DETECT_CONFIG",
    show_envvar=True,
    default=None,
    help="TOML file of per-account rule switches, thresholds and notifications.",
)
@click.option(
    "--geoip-city",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="USERAUDIT_GEOIP_CITY",
    show_envvar=True,
    default=None,
    help="MaxMind-format City or Country MMDB file (GeoLite2-City.mmdb, ...).",
)
@click.option(
    "--geoip-asn",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="USERAUDIT_GEOIP_ASN",
    show_envvar=True,
    default=None,
    help="MaxMind-format ASN MMDB file (GeoLite2-ASN.mmdb).",
)
@sinks_option
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    envvar="USERAUDIT_INDEXER_METRICS_PORT",
    show_envvar=True,
    help="Serve Prometheus metrics on this port (see docs/metrics.md).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.option(
    "--sink-wait",
    default=60.0,
    show_default=True,
    help="With --once: seconds to wait for the sinks to deliver what was shipped.",
)
def run(
    spool_dir: Path | None,
    store_url: str | None,
    once: bool,
    batch_records: int,
    install: bool,
    detect: bool,
    detect_config: Path | None,
    geoip_city: Path | None,
    geoip_asn: Path | None,
    sinks_file: Path | None,
    metrics_port: int | None,
    metrics_host: str,
    sink_wait: float,
) -> None:
    """Ship events from the spool until stopped (Ctrl+C / SIGTERM).

    A store that is down or turns the indexer away (credentials, TLS) is
    waited for, at start as while shipping, with the reason logged; any
    other store error, or one at start with --once, stops it with the
    message and exit code 1. Nothing leaves the spool unless it was stored.
    """
    from useraudit.store import StoreError, open_store

    from .shipper import Indexer
    from .watch import start_lines

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with clean_exit(StoreError):
        store = open_store(store_url)
    with clean_exit(StoreError), closing(store):
        if install:
            for line in _install(store, wait=not once, stop=stop):
                click.echo(line)
        if stop.is_set():
            return
        from useraudit.detect.pipeline import build_stages

        with clean_exit(ValueError):
            stages, notes = build_stages(
                store,
                detect=detect,
                settings_path=detect_config,
                geoip_city=geoip_city,
                geoip_asn=geoip_asn,
                install=install,
            )
        for note in notes:
            click.echo(note)
        spool = spool_dir or default_spool_dir()
        sinks = _sinks_stage(spool, sinks_file)
        if sinks:
            stages.append(sinks)
        sealer = _integrity_stages(store)
        stages += sealer
        stages.append(_completeness_stage(store, spool))
        with Indexer(spool, store, batch_records=batch_records, stages=stages) as ix:
            for line in start_lines(spool, store.url):
                if "WARNING" in line:
                    log.warning(line)
                else:
                    click.echo(line)
            if sealer:
                click.echo("integrity: sealing signed checkpoints")
            for worker in sinks.workers.values() if sinks else ():
                click.echo(f"  sink {worker.sink.describe()}")
            if metrics_port is not None:
                from .metrics import serve

                serve(ix, sinks, metrics_port, metrics_host)
                click.echo(f"  metrics on http://{metrics_host}:{metrics_port}/metrics")
            stats = ix.drain() if once else ix.run(stop)
            shipped = stats.as_dict()  # the indexer's own clock, before waiting for sinks
            if sinks and once:
                started = time.monotonic()
                if not sinks.wait_caught_up(sink_wait):
                    click.echo(
                        f"sinks: not caught up after {sink_wait:.0f}s; the rest goes next run"
                    )
                caught_up = round(time.monotonic() - started, 3)
                click.echo(json.dumps({"sinks": sinks.status(), "sinks_wait_s": caught_up}))
            elif sinks:
                click.echo(json.dumps({"sinks": sinks.status()}))
            click.echo(json.dumps(shipped))


def _sinks_stage(spool: Path, sinks_file: Path | None) -> SinksStage | None:
    if sinks_file is None:
        return None
    from .sinks.config import SinkConfigError, load_sinks
    from .sinks.outbox import SinksStage

    with clean_exit(SinkConfigError):
        configured = load_sinks(sinks_file)
    return SinksStage(spool, configured) if configured else None


def _completeness_stage(store: Store, spool: Path):  # noqa: ANN202 - a Stage
    """Publishes how far this spool is searchable (docs/integrity.md, completeness)."""
    from .completeness import CompletenessStage

    return CompletenessStage(store, spool)


def _integrity_stages(store: Store) -> list:
    """The sealer when a signing key exists (``useraudit integrity keygen``), else nothing."""
    from useraudit.integrity.keys import KeyFileError, load_current
    from useraudit.integrity.sealer import Sealer

    with clean_exit(KeyFileError):
        key = load_current()
    return [] if key is None else [Sealer(store, key)]


def _install(store: Store, *, wait: bool, stop: threading.Event) -> list[str]:
    """Install the index template; while the store is unavailable, wait (``wait``) or fail."""
    from useraudit.store import StoreUnavailable

    delay = 1.0
    while True:
        try:
            return store.install()
        except StoreUnavailable as exc:
            if not wait:
                raise
            log.warning("indexer: cannot install the template (%s); again in %.0fs", exc, delay)
            if stop.wait(delay):
                return []
            delay = min(delay * 2, 60.0)


@indexer.command()
@spool_option
def status(spool_dir: Path | None) -> None:
    """Pending bytes in the spool and dead letters waiting."""
    from useraudit.spool import SpoolReader

    from .deadletter import DeadLetters

    spool = spool_dir or default_spool_dir()
    reader = SpoolReader(spool)  # claims nothing until it reads
    pending = reader.pending_bytes()
    segments = len(reader.segments())
    dlq = DeadLetters(spool / "deadletter.sqlite")
    click.echo(
        json.dumps(
            {
                "spool": str(spool),
                "pending_bytes": pending,
                "segments": segments,
                "dead_letters": dlq.count(),
            }
        )
    )


@indexer.group()
def dlq() -> None:
    """Dead letters: events the store refused, with the reason."""


@dlq.command("list")
@spool_option
@click.option("--limit", default=50, show_default=True)
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per dead letter, with the raw event."
)
def dlq_list(spool_dir: Path | None, limit: int, as_json: bool) -> None:
    """Show dead letters, oldest first."""
    from .deadletter import DeadLetters

    letters = DeadLetters((spool_dir or default_spool_dir()) / "deadletter.sqlite")
    total = letters.count()
    for letter in letters.list(limit):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(letter.at))
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "id": letter.id,
                        "at": when,
                        "event_id": letter.event_id,
                        "reason": letter.reason,
                        "attempts": letter.attempts,
                        "raw": letter.raw.decode("utf-8", "replace"),
                    },
                    ensure_ascii=False,
                )
            )
        else:
            click.echo(
                f"#{letter.id} {when} {letter.event_id or '-'} x{letter.attempts}: {letter.reason}"
            )
    if not as_json:
        click.echo(f"{total} dead letter(s)")


@dlq.command("retry")
@spool_option
@store_option
def dlq_retry(spool_dir: Path | None, store_url: str | None) -> None:
    """Send dead letters again; delivered ones leave the queue."""
    from useraudit.store import open_store

    from .shipper import Indexer

    store = open_store(store_url)
    with Indexer(spool_dir or default_spool_dir(), store, unavailable_timeout=30) as ix:
        click.echo(json.dumps(ix.retry_dead_letters()))


@indexer.group()
def sinks() -> None:
    """Streaming sinks: backlog, dead letters, sending dead letters again."""


@sinks.command("status")
@spool_option
def sinks_status(spool_dir: Path | None) -> None:
    """Backlog bytes and dead letters (by reason) of every sink on this spool, as JSON."""
    from .sinks.outbox import outbox_status

    click.echo(json.dumps(outbox_status(spool_dir or default_spool_dir())))


@sinks.command("dlq-list")
@spool_option
@click.argument("name")
@click.option("--limit", default=50, show_default=True)
def sinks_dlq_list(spool_dir: Path | None, name: str, limit: int) -> None:
    """One JSON line per dead letter of sink NAME, oldest first."""
    from .deadletter import DeadLetters
    from .sinks.outbox import sinks_dir

    folder = sinks_dir(spool_dir or default_spool_dir()) / name
    if not folder.is_dir():
        raise click.ClickException(f"no sink named {name!r} under {folder.parent}")
    letters = DeadLetters(folder / "deadletter.sqlite")
    for letter in letters.list(limit):
        click.echo(
            json.dumps(
                {
                    "id": letter.id,
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(letter.at)),
                    "event_id": letter.event_id,
                    "reason": letter.reason,
                    "attempts": letter.attempts,
                },
                ensure_ascii=False,
            )
        )


@sinks.command("dlq-retry")
@spool_option
@store_option
@click.argument("name")
def sinks_dlq_retry(spool_dir: Path | None, store_url: str | None, name: str) -> None:
    """Queue sink NAME's dead letters again (ids-only ones are fetched from the store)."""
    from useraudit.store import StoreError, open_store

    from .sinks.outbox import requeue_dead_letters

    store = open_store(store_url)
    try:
        result = requeue_dead_letters(spool_dir or default_spool_dir(), name, store.get)
    except (ValueError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    click.echo(json.dumps(result))
