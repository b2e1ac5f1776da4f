"""Sinks framework, rotating NDJSON files and the HTTPS webhook, against real receivers."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.receivers import WebhookReceiver
from support.tls import Certificates

from useraudit.cli import main as cli
from useraudit.indexer.shipper import Indexer
from useraudit.indexer.sinks.base import EventFilter
from useraudit.indexer.sinks.config import SinkConfigError, load_sinks
from useraudit.indexer.sinks.files import FileSink
from useraudit.indexer.sinks.outbox import ConfiguredSink, SinkSettings, SinksStage
from useraudit.indexer.sinks.webhook import WebhookSink
from useraudit.spool import SpoolReader
from useraudit.store.query import Query
from useraudit.store.sqlite import SQLiteStore

from .conftest import SECRET, record_events

FAST = SinkSettings(backoff_base=0.05, backoff_cap=0.2)


def webhook(receiver: WebhookReceiver, certs: Certificates, name: str = "hook") -> WebhookSink:
    return WebhookSink(name, receiver.url, secret=SECRET, ca_file=str(certs.ca), timeout=5)


def ship(
    spool: Path, store: SQLiteStore, sinks: list[ConfiguredSink], wait: float = 30
) -> SinksStage:
    stage = SinksStage(spool, sinks)
    with Indexer(spool, store, stages=[stage]) as ix:
        ix.drain()
        assert stage.wait_caught_up(wait), stage.status()
    return stage


def stored_count(store: SQLiteStore) -> int:
    store.refresh()
    return sum(store.count(Query(account=a)) for a in store.accounts())


def test_webhook_over_https_delivers_every_stored_event_signed(
    spool_dir: Path, store: SQLiteStore, receiver: WebhookReceiver, certs: Certificates
) -> None:
    ids = record_events(spool_dir, 120)
    stage = ship(spool_dir, store, [ConfiguredSink(webhook(receiver, certs), FAST)])
    assert sorted(receiver.received.ids()) == sorted(ids)
    assert receiver.received.bad_signatures == 0
    assert len(receiver.received.ids()) == stored_count(store) == 120
    (status,) = stage.status()
    assert status["delivered"] == 120 and status["dead_lettered"] == {}
    assert status["backlog_bytes"] == 0 and status["lag_seconds"] == 0
    # every copy carries the document as stored, ECS names included
    first = receiver.received.events[0]
    assert {"event.id", "@timestamp", "organization.id", "event.action"} <= set(first)


def test_webhook_answering_500_then_200_gets_the_same_batch_again(
    spool_dir: Path, store: SQLiteStore, receiver: WebhookReceiver, certs: Certificates
) -> None:
    ids = record_events(spool_dir, 40)
    receiver.script = [500, 503, 500]
    stage = ship(spool_dir, store, [ConfiguredSink(webhook(receiver, certs), FAST)])
    assert receiver.received.statuses[:4] == [500, 503, 500, 200]
    assert sorted(receiver.received.ids()) == sorted(ids)
    (status,) = stage.status()
    assert status["retried"] == 3 and status["delivered"] == 40


def test_webhook_signature_is_checked_by_the_receiver(
    spool_dir: Path, store: SQLiteStore, receiver: WebhookReceiver, certs: Certificates
) -> None:
    record_events(spool_dir, 5)
    wrong = WebhookSink(
        "hook", receiver.url, secret=b"not-the-right-secret!", ca_file=str(certs.ca)
    )
    stage = SinksStage(spool_dir, [ConfiguredSink(wrong, FAST)])
    with Indexer(spool_dir, store, stages=[stage]) as ix:
        ix.drain()
        assert not stage.wait_caught_up(1.5)
        (status,) = stage.status()
    # refused for a cluster-wide reason: held and retried, never dead-lettered
    assert receiver.received.bad_signatures >= 1 and receiver.received.events == []
    assert status["dead_lettered"] == {} and "401" in status["last_error"]
    assert status["backlog_bytes"] > 0


def test_webhook_rejects_a_server_the_ca_does_not_vouch_for(
    spool_dir: Path, store: SQLiteStore, receiver: WebhookReceiver
) -> None:
    record_events(spool_dir, 3)
    untrusted = WebhookSink("hook", receiver.url, secret=SECRET)  # system CAs only
    stage = SinksStage(spool_dir, [ConfiguredSink(untrusted, FAST)])
    with Indexer(spool_dir, store, stages=[stage]) as ix:
        ix.drain()
        assert not stage.wait_caught_up(1.0)
        (status,) = stage.status()
    assert receiver.received.requests == 0
    assert "CERTIFICATE_VERIFY_FAILED" in status["last_error"]


def test_webhook_url_must_be_https_beyond_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        WebhookSink("hook", "http://siem.example.com/in", secret=SECRET)
    with pytest.raises(ValueError, match="16 bytes"):
        WebhookSink("hook", "https://siem.example.com/in", secret=b"short")


def test_a_4xx_answer_dead_letters_the_batch_with_the_reason(
    spool_dir: Path, store: SQLiteStore, receiver: WebhookReceiver, certs: Certificates
) -> None:
    ids = record_events(spool_dir, 10)
    receiver.script = [400]
    stage = ship(spool_dir, store, [ConfiguredSink(webhook(receiver, certs), FAST)])
    (status,) = stage.status()
    assert status["dead_lettered"] == {"rejected": 10}
    result = CliRunner().invoke(
        cli, ["indexer", "sinks", "dlq-list", "hook", "--spool", str(spool_dir)]
    )
    assert result.exit_code == 0, result.output
    letters = [json.loads(line) for line in result.output.splitlines()]
    assert sorted(letter["event_id"] for letter in letters) == sorted(ids)
    assert all(letter["reason"].startswith("rejected: HTTP 400") for letter in letters)
    # once the receiver is fixed, the letters go out again
    result = CliRunner().invoke(
        cli,
        ["indexer", "sinks", "dlq-retry", "hook", "--spool", str(spool_dir), "--store", store.url],
    )
    assert json.loads(result.output) == {"queued": 10, "missing": 0}
    ship(spool_dir, store, [ConfiguredSink(webhook(receiver, certs), FAST)])
    assert sorted(receiver.received.ids()) == sorted(ids)


def test_filters_per_sink_by_account_action_and_outcome(
    spool_dir: Path,
    store: SQLiteStore,
    receiver: WebhookReceiver,
    certs: Certificates,
    tmp_path: Path,
) -> None:
    record_events(spool_dir, 60, accounts=3)
    failures = SinkSettings(filter=EventFilter(outcomes=frozenset({"failure"})), backoff_cap=0.2)
    one_account = SinkSettings(
        filter=EventFilter(accounts=frozenset({"acct-1"}), actions=frozenset({"user.signed_in"})),
        backoff_cap=0.2,
    )
    files = FileSink("all", tmp_path / "out")
    stage = ship(
        spool_dir,
        store,
        [
            ConfiguredSink(webhook(receiver, certs), failures),
            ConfiguredSink(FileSink("acct1", tmp_path / "acct1"), one_account),
            ConfiguredSink(files, FAST),
        ],
    )
    assert {e["event.outcome"] for e in receiver.received.events} == {"failure"}
    assert len(receiver.received.events) == 12
    acct1 = [
        json.loads(x)
        for x in (tmp_path / "acct1" / "useraudit-events.ndjson").read_text().splitlines()
    ]
    assert {(e["organization.id"], e["event.action"]) for e in acct1} == {
        ("acct-1", "user.signed_in")
    }
    everything = (tmp_path / "out" / "useraudit-events.ndjson").read_text().splitlines()
    assert len(everything) == stored_count(store) == 60
    by_name = {s["sink"]: s for s in stage.status()}
    assert by_name["hook"]["filtered"] == 48 and by_name["all"]["filtered"] == 0


def test_files_rotate_by_size_and_keep_the_newest(
    spool_dir: Path, store: SQLiteStore, tmp_path: Path
) -> None:
    ids = record_events(spool_dir, 200)
    sink = FileSink("files", tmp_path / "out", max_bytes=20_000, keep=0)
    ship(spool_dir, store, [ConfiguredSink(sink, SinkSettings(batch_records=20))])
    rotated = sink.rotated()
    assert len(rotated) >= 3
    files = [*rotated, sink.current] if sink.current.exists() else rotated
    lines = [line for f in files for line in f.read_text().splitlines()]
    assert sorted(json.loads(line)["event.id"] for line in lines) == sorted(ids)
    assert all(f.stat().st_size >= 20_000 for f in rotated)
    # keep=2 removes older rotated files, newest kept
    more = record_events(spool_dir, 200, start=200)
    pruned = FileSink("files", tmp_path / "out", max_bytes=20_000, keep=2)
    ship(spool_dir, store, [ConfiguredSink(pruned, SinkSettings(batch_records=20))])
    left = pruned.rotated()
    assert len(left) == 2
    newest = [json.loads(x)["event.id"] for x in left[-1].read_text().splitlines()]
    assert set(newest) <= set(more)


def test_file_sink_cuts_a_partial_last_line_left_by_a_crash(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "useraudit-events.ndjson").write_bytes(b'{"event.id":"a"}\n{"event.id":"b", "tor')
    sink = FileSink("f", out)

    class Ev:
        raw = b'{"event.id":"c"}'

    sink.deliver([Ev()])
    sink.close()
    assert (out / "useraudit-events.ndjson").read_bytes() == b'{"event.id":"a"}\n{"event.id":"c"}\n'


def test_a_dead_sink_never_holds_back_indexing_and_its_backlog_is_bounded(
    spool_dir: Path, store: SQLiteStore, receiver: WebhookReceiver, certs: Certificates
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    dead = WebhookSink("dead", f"http://127.0.0.1:{dead_port}/in", secret=SECRET, timeout=1)
    limit = 64 * 1024
    ids = record_events(spool_dir, 400)
    stage = SinksStage(
        spool_dir,
        [
            ConfiguredSink(dead, SinkSettings(backlog_bytes=limit, backoff_cap=0.2)),
            ConfiguredSink(webhook(receiver, certs), FAST),
        ],
    )
    with Indexer(spool_dir, store, stages=[stage], batch_records=50) as ix:
        ix.drain()
        assert stored_count(store) == 400  # indexing went on
        assert SpoolReader(spool_dir).pending_bytes() == 0
        assert stage.workers["hook"].wait_caught_up(30)  # the other sink too
        status = {s["sink"]: s for s in stage.status()}
    assert sorted(receiver.received.ids()) == sorted(ids)
    dead_status = status["dead"]
    assert 0 < dead_status["backlog_bytes"] <= limit
    overflow = dead_status["dead_lettered"]["backlog_full"]
    assert overflow > 0 and dead_status["queued"] + overflow == 400
    assert dead_status["lag_seconds"] > 0 and "refused" in dead_status["last_error"].lower()
    # the overflow kept ids only; requeue fetches the documents from the store
    result = CliRunner().invoke(cli, ["indexer", "sinks", "status", "--spool", str(spool_dir)])
    on_disk = {s["sink"]: s for s in json.loads(result.output)}
    assert on_disk["dead"]["dead_letters"] == {"backlog_full": overflow}


def test_sinks_file_errors_name_the_sink_and_key(tmp_path: Path) -> None:
    config = tmp_path / "sinks.toml"
    config.write_text(
        '[sinks.siem]\ntype = "webhook"\nurl = "https://x.example/in"\nacounts = ["a"]\n'
    )
    with pytest.raises(SinkConfigError, match=r"sink siem: unknown keys \['acounts'\]"):
        load_sinks(config)
    config.write_text('[sinks.siem]\ntype = "webhook"\nurl = "https://x.example/in"\n')
    with pytest.raises(SinkConfigError, match="secret_env or secret_file"):
        load_sinks(config)
    config.write_text('[sinks.x]\ntype = "carrier-pigeon"\n')
    with pytest.raises(SinkConfigError, match="type must be one of"):
        load_sinks(config)


def test_indexer_run_with_a_sinks_file(
    spool_dir: Path, tmp_path: Path, receiver: WebhookReceiver, certs: Certificates, monkeypatch
) -> None:
    ids = record_events(spool_dir, 30)
    monkeypatch.setenv("HOOK_SECRET", SECRET.decode())
    config = tmp_path / "sinks.toml"
    config.write_text(
        f'[sinks.hook]\ntype = "webhook"\nurl = "{receiver.url}"\nsecret_env = "HOOK_SECRET"\n'
        f'ca_file = "{certs.ca}"\n\n[sinks.files]\ntype = "file"\ndirectory = "{tmp_path / "nd"}"\n'
        'outcomes = ["failure"]\n'
    )
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    result = CliRunner().invoke(
        cli,
        [
            "indexer",
            "run",
            "--once",
            "--spool",
            str(spool_dir),
            "--store",
            db,
            "--sinks",
            str(config),
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(receiver.received.ids()) == sorted(ids)
    lines = (tmp_path / "nd" / "useraudit-events.ndjson").read_text().splitlines()
    assert len(lines) == 6
    status = json.loads(result.output.strip().splitlines()[-2])["sinks"]
    assert {s["sink"]: s["delivered"] for s in status} == {"hook": 30, "files": 6}
