"""``useraudit doctor``: is this installation recording events where admins will see them?

Run beside the host app, with its configuration (the same ``USERAUDIT_*``
environment, see docs/configuration.md). Each check says in plain words what
it found and, when something is wrong, what to do; the exit code is 1 when
any check fails, so it can gate a deployment.

Checks, in the order an event travels:

1. the spool is writable;
2. an indexer reads that same spool (its heartbeat is fresh), and no other
   spool on this machine gets events that no indexer reads;
3. the backlog: bytes waiting and the age of the oldest unshipped event;
4. dead letters waiting;
5. events detection skipped (the running indexer's detection worker died on
   them three times, so no rule examined them);
6. the store is reachable;
7. its schema (SQLite file version / OpenSearch index template) is installed
   and current;
8. recent events without an account (filed under ``unassigned``) or without
   a user;
9. trusted proxies: X-Forwarded-For arriving while ``trusted_proxies=0``, or
   ``trusted_proxies>0`` while requests come straight from clients.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from useraudit import config, spool_watch
from useraudit.cli_helpers import spool_option, store_option
from useraudit.schema import UNASSIGNED_ACCOUNT

# The oldest unshipped event may wait this long before the backlog check fails.
DEFAULT_MAX_LAG = 300.0
RECENT = timedelta(days=7)
# Newest events per account inspected for a missing user.
USER_SAMPLE = 200
# Unread spools named by the check; the rest are counted.
SPOOLS_NAMED = 5


@dataclass
class Check:
    name: str
    ok: bool
    found: str
    fix: str = ""


def run_checks(spool: Path, store_url: str, max_lag: float = DEFAULT_MAX_LAG) -> list[Check]:
    checks = [spool_writable(spool), indexer_reads(spool), other_spools(spool)]
    checks.append(backlog(spool, max_lag))
    checks.append(dead_letters(spool))
    checks.append(detection_skipped(spool))
    checks.extend(store_checks(store_url))
    checks.append(trusted_proxies(spool))
    return checks


# -- spool ------------------------------------------------------------------------


def spool_writable(spool: Path) -> Check:
    name = "spool writable"
    try:
        spool.mkdir(parents=True, exist_ok=True)
        probe = spool / f".doctor-{uuid.uuid4().hex}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        return Check(
            name,
            False,
            f"cannot write to the spool {spool}: {exc.strerror or exc}",
            f"create it and let the app's user write it: mkdir -p {spool} && chown APPUSER {spool}"
            " (or point USERAUDIT_SPOOL at a writable directory, for the app and the indexer)",
        )
    return Check(name, True, f"{spool} is writable")


def indexer_reads(spool: Path) -> Check:
    name = "indexer reads this spool"
    beat = spool_watch.read_heartbeat(spool)
    age = spool_watch.beat_age(beat)
    if beat is not None and age is not None and age <= spool_watch.STALE_AFTER:
        return Check(
            name,
            True,
            f"indexer pid {beat.get('pid')} on {beat.get('host')} read {spool} {age:.0f}s ago, "
            f"storing into {beat.get('store') or '?'}",
        )
    when = "no indexer has ever read it" if age is None else f"the last read was {age:.0f}s ago"
    return Check(
        name,
        False,
        f"no indexer reads {spool}: {when}",
        "start the indexer with the same configuration as the app: "
        f"USERAUDIT_SPOOL={spool} useraudit indexer run (or the same USERAUDIT_HOME)",
    )


def other_spools(spool: Path) -> Check:
    name = "no unread spools elsewhere"
    unread = spool_watch.unread_spools(spool)
    if not unread:
        return Check(name, True, "no other spool on this machine gets events nobody ships")
    # Newest first, and a few: a machine with hundreds of stale spools gets one line, not a page.
    unread.sort(key=lambda s: float("inf") if s.last_write_age is None else s.last_write_age)
    where = "; ".join(spool_watch.describe(s) for s in unread[:SPOOLS_NAMED])
    if len(unread) > SPOOLS_NAMED:
        where += f"; and {len(unread) - SPOOLS_NAMED} more, written longer ago"
    return Check(
        name,
        False,
        f"events are being written to {len(unread)} spool(s) no indexer reads: {where}",
        "give the app and the indexer the same USERAUDIT_SPOOL (or run an indexer per spool: "
        "useraudit indexer run --spool DIR)",
    )


def backlog(spool: Path, max_lag: float) -> Check:
    name = "backlog"
    state = spool_watch.inspect(spool)
    if not state.pending_bytes or state.oldest_pending_at is None:
        return Check(name, True, "nothing waiting to be shipped")
    age = max(0.0, time.time() - state.oldest_pending_at)
    found = (
        f"{state.pending_bytes:,} bytes wait in {state.segments} segment(s); the oldest "
        f"unshipped event has waited about {_duration(age)}"
    )
    if age <= max_lag:
        return Check(name, True, found)
    return Check(
        name,
        False,
        found + f" (more than {_duration(max_lag)})",
        "check that the indexer runs and can reach the store (its log says why it waits)",
    )


def dead_letters(spool: Path) -> Check:
    name = "dead letters"
    path = spool / "deadletter.sqlite"
    if not path.exists():
        return Check(name, True, "no dead letters")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            count = int(db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])
    except sqlite3.Error as exc:
        return Check(name, False, f"cannot read {path}: {exc}", "check the file's permissions")
    if not count:
        return Check(name, True, "no dead letters")
    return Check(
        name,
        False,
        f"{count} event(s) were refused by the store and wait in {path}",
        "see why with `useraudit indexer dlq list`, fix it, then `useraudit indexer dlq retry`",
    )


def detection_skipped(spool: Path) -> Check:
    name = "detection examined every event"
    beat = spool_watch.read_heartbeat(spool)
    age = spool_watch.beat_age(beat)
    if beat is None or age is None or age > spool_watch.STALE_AFTER:
        return Check(name, True, "no running indexer reports skipped events")
    skipped = beat.get("detect_set_aside")
    if not isinstance(skipped, int) or not skipped:
        return Check(name, True, f"indexer pid {beat.get('pid')} skipped none")
    return Check(
        name,
        False,
        f"detection skipped {skipped} stored event(s) since the indexer started: its worker "
        "process died three times on each batch of them, so no rule examined them",
        'the indexer\'s log names them ("detection skips its … events"); find the rule that '
        "crashes the worker on them (native code, memory), fix or disable it, and restart the "
        "indexer to clear this",
    )


# -- store ------------------------------------------------------------------------


def store_checks(url: str) -> Iterator[Check]:
    from useraudit.store import StoreError, open_store

    shown = _without_password(url)
    try:
        schema = schema_current(url)
    except StoreError as exc:
        yield Check("store reachable", False, f"{shown}: {exc}", _store_fix(url))
        return
    try:
        store = open_store(url) if schema.ok else None
    except StoreError as exc:
        yield Check("store reachable", False, f"{shown}: {exc}", _store_fix(url))
        return
    yield Check("store reachable", True, f"{shown} answers")
    yield schema
    if store is None:
        return
    try:
        yield from event_checks(store)
    except StoreError as exc:
        yield Check("recent events", False, f"{shown}: {exc}", _store_fix(url))
    finally:
        store.close()


def _store_fix(url: str) -> str:
    return (
        "check USERAUDIT_STORE (the same for the app's indexer and `useraudit web`), that the "
        f"store runs, and its credentials; now: {_without_password(url)}"
    )


def schema_current(url: str) -> Check:
    """SQLite: the file's version; OpenSearch: the index template's version and body.

    Never installs anything: it only reads.
    """
    name = "schema installed and current"
    if url.split(":", 1)[0].lower() == "sqlite":
        from useraudit.store.sqlite import FILE_VERSION, SQLiteStore

        path = Path(SQLiteStore(url).path)
        if not path.exists():
            return Check(
                name,
                False,
                f"the SQLite store {path} does not exist yet",
                "run `useraudit indexer run` (it creates it) or `useraudit templates install`",
            )
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                version = int(db.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as exc:
            from useraudit.store import StoreError

            raise StoreError(f"cannot read {path}: {exc}") from exc
        if version == FILE_VERSION:
            return Check(name, True, f"SQLite file version {version}, current")
        return Check(
            name,
            False,
            f"SQLite file version {version}, this useraudit writes {FILE_VERSION}",
            "start `useraudit indexer run` once to upgrade the file"
            if version < FILE_VERSION
            else "upgrade useraudit where the app, the indexer and the UI run",
        )
    from opensearchpy import exceptions as os_exc

    from useraudit import index_templates
    from useraudit.schema import SCHEMA_VERSION
    from useraudit.store import StoreUnavailable
    from useraudit.store.opensearch.store import OpenSearchStore, same_template

    store = OpenSearchStore(url)
    try:
        template = index_templates.template_name(store.prefix)
        try:
            got = store.client.indices.get_index_template(name=template)
            existing = got["index_templates"][0]["index_template"]
        except os_exc.NotFoundError:
            existing = None
        except os_exc.TransportError as exc:
            raise StoreUnavailable(f"{_without_password(url)}: {exc}") from exc
    finally:
        store.close()
    if existing is None:
        return Check(
            name,
            False,
            f"index template {template} is not installed",
            "run `useraudit templates install` (the indexer installs it when it starts)",
        )
    version = int(existing.get("version") or 0)
    if version == SCHEMA_VERSION and same_template(
        existing, index_templates.load_golden(store.prefix)
    ):
        return Check(name, True, f"index template {template} version {version}, current")
    return Check(
        name,
        False,
        f"index template {template} is version {version}, not this useraudit's "
        f"{SCHEMA_VERSION} (or differs from it)",
        "run `useraudit templates install` to upgrade it",
    )


def event_checks(store: Any) -> Iterator[Check]:
    from useraudit.store.query import Query, SearchRequest

    since = datetime.now(UTC) - RECENT
    unassigned = store.count(Query(UNASSIGNED_ACCOUNT, start=since))
    if unassigned:
        yield Check(
            "events have an account",
            False,
            f"{unassigned} event(s) of the last {RECENT.days} days arrived without a usable "
            f"account and were filed under {UNASSIGNED_ACCOUNT!r}",
            "give the middleware account='...' (one tenant) or get_account=... (docs/capture.md, "
            "'Which account an event belongs to')",
        )
    else:
        yield Check("events have an account", True, f"every event of the last {RECENT.days} days")
    userless: dict[str, tuple[int, int]] = {}
    for account in store.accounts():
        page = store.search(SearchRequest(Query(account, start=since), size=USER_SAMPLE))
        missing = sum(1 for hit in page.hits if not _has_user(hit))
        if missing:
            userless[account] = (missing, len(page.hits))
    if not userless:
        yield Check("events name a user", True, "the newest events of every account name a user")
        return
    where = ", ".join(f"{a}: {m} of the newest {n}" for a, (m, n) in sorted(userless.items()))
    yield Check(
        "events name a user",
        False,
        f"recent events name no user ({where})",
        "give the middleware get_user=... (or record(user=...)); behind token auth, bind the "
        "user when the view authenticates (docs/capture.md, 'Who the acting user is')",
    )


def _has_user(doc: dict[str, Any]) -> bool:
    return any(doc.get(f"user.{part}") for part in ("id", "name", "email"))


# -- proxies ----------------------------------------------------------------------


def trusted_proxies(spool: Path) -> Check:
    from useraudit.middleware.proxy_watch import SAMPLE_EVERY, read_all

    name = "trusted proxies"
    seen = read_all(spool)
    requests = sum(int(e.get("requests", 0)) for e in seen)
    if not requests:
        return Check(name, True, "no requests seen yet by the capture middleware on this spool")
    forwarded = [e for e in seen if e.get("forwarded_untrusted")]
    direct = [e for e in seen if e.get("direct_trusted")]
    if forwarded:
        n = sum(int(e["forwarded_untrusted"]) for e in forwarded)
        return Check(
            name,
            False,
            f"{n} of {requests} requests looked at carried X-Forwarded-For while "
            "trusted_proxies=0: the app seems to sit behind a proxy, so events show the "
            "proxy's address",
            "if N reverse proxies stand in front of the app, set trusted_proxies=N "
            "(docs/capture.md, 'Client IP and trusted proxies'); if not, ignore clients' headers",
        )
    if direct:
        n = sum(int(e["direct_trusted"]) for e in direct)
        k = max(int(e.get("trusted_proxies", 0)) for e in direct)
        return Check(
            name,
            False,
            f"{n} of {requests} requests looked at had fewer X-Forwarded-For entries than "
            f"trusted_proxies={k}: clients reach the app directly and can choose the IP in the log",
            "set trusted_proxies to the number of proxies every request passes (0 when none), "
            "and let only the proxies reach the app",
        )
    counted = f"{requests} request" + ("" if requests == 1 else "s")
    return Check(
        name,
        True,
        f"{counted} looked at so far (each app process looks at its first request and one in "
        f"{SAMPLE_EVERY} after it, and writes its counts every 10 s or so while it serves), "
        "consistent with the trusted_proxies set",
    )


# -- output -----------------------------------------------------------------------


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _without_password(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


@click.command()
@spool_option
@store_option
@click.option(
    "--max-lag",
    type=float,
    default=DEFAULT_MAX_LAG,
    show_default=True,
    help="Seconds the oldest unshipped event may wait before the backlog check fails.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per check.")
def doctor(spool_dir: Path | None, store_url: str | None, max_lag: float, as_json: bool) -> None:
    """Check that events reach the spool, the indexer, the store and the admins' view."""
    spool = spool_dir or config.default_spool_dir()
    url = store_url or config.default_store_url()
    checks = run_checks(spool, url, max_lag)
    if as_json:
        for check in checks:
            click.echo(json.dumps(asdict(check)))
    else:
        click.echo(f"useraudit doctor: spool {spool}, store {_without_password(url)}")
        for check in checks:
            click.echo(f"  {'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.found}")
            if check.fix:
                click.echo(f"        fix: {check.fix}")
    failed = [c for c in checks if not c.ok]
    if failed:
        if not as_json:
            click.echo(f"{len(failed)} check(s) failed.")
        raise SystemExit(1)
    if not as_json:
        click.echo("All checks passed.")
