"""`useraudit events search|tail|get` on both real stores."""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from useraudit.cli import main as cli
from useraudit.indexer.shipper import Indexer
from useraudit.middleware.recorder import Recorder
from useraudit.store.base import Store


def record(spool: Path, n: int, start: int = 0) -> list[str]:
    rec = Recorder(spool, durability="sync")
    ids = []
    for i in range(start, start + n):
        event_id = rec.record(
            "user.signed_in" if i % 3 else "user.sign_in_failed",
            outcome="failure" if i % 3 == 0 else "success",
            account="acme" if i % 2 == 0 else "globex",
            user={"id": f"u{i % 5}", "name": f"person{i % 5}", "email": f"p{i % 5}@example.com"},
            comments=f"changed the invoice number {i}" if i % 4 == 0 else f"looked at page {i}",
            params={"n": i},
        )
        assert event_id
        ids.append(event_id)
    rec.close()
    return ids


def ship(spool: Path, store: Store) -> None:
    with Indexer(spool, store) as ix:
        ix.drain()
    store.refresh()


@pytest.fixture(params=["sqlite", "opensearch"])
def store_url(request, tmp_path: Path, opensearch_url: str, os_prefix: str) -> Iterator[str]:
    from useraudit.store import open_store

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cli.db'}"
    else:
        url = f"{opensearch_url}/?prefix={os_prefix}"
    store = open_store(url)
    store.install()
    try:
        yield url
    finally:
        if request.param == "opensearch":
            store.uninstall()  # type: ignore[attr-defined]
        store.close()


@pytest.fixture
def seeded(store_url: str, spool_dir: Path) -> tuple[str, list[str]]:
    from useraudit.store import open_store

    ids = record(spool_dir, 40)
    store = open_store(store_url)
    ship(spool_dir, store)
    store.close()
    return store_url, ids


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, ["events", *args], env=env, catch_exceptions=False)


def test_search_uses_the_pages_filters_and_stays_in_the_account(seeded) -> None:
    url, ids = seeded
    result = run("search", "--store", url, "--account", "acme", "--filter", "result=failure",
                 "--format", "jsonl")  # fmt: skip
    assert result.exit_code == 0, result.output
    docs = [json.loads(line) for line in result.output.splitlines()]
    expected = {ids[i] for i in range(40) if i % 2 == 0 and i % 3 == 0}
    assert {d["event.id"] for d in docs} == expected
    assert {d["organization.id"] for d in docs} == {"acme"}
    # newest first
    stamps = [d["@timestamp"] for d in docs]
    assert stamps == sorted(stamps, reverse=True)


def test_query_syntax_and_url_query_agree(seeded) -> None:
    url, ids = seeded
    by_option = run("search", "--store", url, "--account", "acme", "-q", "invoice",
                    "--filter", "user=u0", "--format", "jsonl")  # fmt: skip
    by_url = run("search", "--store", url, "--account", "acme", "--format", "jsonl",
                 "--url-query", "?q=invoice&user=u0&period=30d")  # fmt: skip
    assert by_option.exit_code == by_url.exit_code == 0, by_option.output + by_url.output
    found = {json.loads(x)["event.id"] for x in by_option.output.splitlines()}
    expected = {ids[i] for i in range(40) if i % 4 == 0 and i % 5 == 0}
    assert found == expected and found
    assert found == {json.loads(x)["event.id"] for x in by_url.output.splitlines()}


def test_search_as_csv_and_table(seeded) -> None:
    url, ids = seeded
    result = run("search", "--store", url, "--all-accounts", "--format", "csv", "--limit", "0")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert sorted(r["event.id"] for r in rows) == sorted(ids)
    assert {r["organization.id"] for r in rows} == {"acme", "globex"}
    table = run("search", "--store", url, "--account", "globex", "--limit", "5")
    lines = table.output.splitlines()
    assert lines[0].startswith("Date and time (UTC)") and len(lines) == 6
    assert all(" globex " in f" {line} " for line in lines[1:])


def test_bad_filters_get_a_clear_message_not_a_traceback(seeded) -> None:
    url, _ = seeded
    for args, message in [
        (["--filter", "period=forever"], "unknown period"),
        (["--filter", "ip=not-an-ip"], "ip"),
        (["--filter", "oops"], "NAME=VALUE"),
        ([], "--account"),
    ]:
        accounts = ["--account", "acme"] if args else []
        result = CliRunner().invoke(cli, ["events", "search", "--store", url, *accounts, *args])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output


def test_get_by_id_and_missing_ids(seeded) -> None:
    url, ids = seeded
    result = run("get", "--store", url, ids[3])
    assert result.exit_code == 0
    assert json.loads(result.output)["event.id"] == ids[3]
    missing = CliRunner().invoke(cli, ["events", "get", "--store", url, ids[4], "no-such-id"])
    assert missing.exit_code == 1 and "not found: no-such-id" in missing.output
    assert json.loads(missing.output.splitlines()[0])["event.id"] == ids[4]


def test_commands_honour_the_store_url_setting(seeded) -> None:
    url, ids = seeded
    result = run("get", ids[0], env={"USERAUDIT_STORE": url})
    assert result.exit_code == 0 and json.loads(result.output)["event.id"] == ids[0]


def test_tail_shows_the_last_events_and_follows_new_ones(seeded, spool_dir: Path) -> None:
    url, ids = seeded
    from useraudit.store import open_store

    last = run("tail", "--store", url, "--account", "acme", "-n", "3", "--format", "jsonl")
    shown = [json.loads(x) for x in last.output.splitlines()]
    acme = [ids[i] for i in range(40) if i % 2 == 0]
    # Events of one millisecond are ordered by id, not by when they were
    # recorded: the newest three are the store's, by (time, id).
    store = open_store(url)
    stored = sorted(store.get(acme).values(), key=lambda d: (d["@timestamp"], d["event.id"]))
    store.close()
    newest = [d["event.id"] for d in stored[-3:]]
    assert [d["event.id"] for d in shown] == newest  # oldest of them first, as tail does
    cmd = [sys.executable, "-m", "useraudit", "events", "tail", "-f", "--store", url,
           "--account", "acme", "-n", "0", "--format", "jsonl", "--interval", "0.3"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    try:
        time.sleep(2)
        more = record(spool_dir, 10, start=40)
        store = open_store(url)
        ship(spool_dir, store)
        store.close()
        want = {more[i] for i in range(10) if (40 + i) % 2 == 0}
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True)
        reader.start()
        got: list[str] = []
        deadline = time.monotonic() + 30
        while len(got) < len(want) and time.monotonic() < deadline:
            try:
                got.append(json.loads(lines.get(timeout=1))["event.id"])
            except queue.Empty:
                pass
        time.sleep(1)  # anything printed twice would show up now
        while not lines.empty():
            got.append(json.loads(lines.get())["event.id"])
        # only the new ones, each once (events of one millisecond may come in either order)
        assert sorted(got) == sorted(want) and len(got) == len(set(got))
    finally:
        proc.terminate()  # our child, by PID
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
