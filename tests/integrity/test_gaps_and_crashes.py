"""Numbered events, gaps, kill -9 and several indexers, on both real stores.

Hosts and indexers run as real processes (``python -c`` / ``useraudit
indexer run``) and are killed with SIGKILL at moments the test does not
choose precisely; after recovery ``verify`` must be clean and show no gap
for any event a host acknowledged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from useraudit.cli import main
from useraudit.indexer.enrich import Enricher
from useraudit.indexer.shipper import Indexer
from useraudit.integrity.keys import SigningKey
from useraudit.integrity.sealer import Sealer
from useraudit.middleware.recorder import Recorder
from useraudit.spool import SpoolWriter
from useraudit.store.base import Store
from useraudit.store.ledger import ledger_for

from .conftest import ship, store_url

# A host process: records events with threads in `sync` mode and prints
# each id once record() returned it (acknowledged), until killed.
SYNC_HOST = """
import sys, threading
from useraudit.middleware.recorder import Recorder
rec = Recorder(sys.argv[1], durability="sync")
lock = threading.Lock()
def work(t):
    i = 0
    while True:
        i += 1
        eid = rec.record("user.signed_in", account=("acme", "globex")[i % 2],
                         user={"id": f"u{t}-{i}"})
        with lock:
            print(eid, flush=True)
for t in range(4):
    threading.Thread(target=work, args=(t,), daemon=True).start()
threading.Event().wait()
"""

# A host process that records N events (batch mode) and exits cleanly.
BATCH_HOST = """
import sys
from useraudit.middleware.recorder import Recorder
rec = Recorder(sys.argv[1])
for i in range(int(sys.argv[2])):
    rec.record("user.signed_in", account=("acme", "globex", "initech")[i % 3],
               user={"id": f"u{i}"}, comments=f"event {i}")
rec.close()
"""


def stored_count(store: Store) -> int:
    """Events stored so far; 0 while a new index's shards are still starting (503)."""
    from useraudit.store.base import StoreUnavailable

    try:
        return int(store.count_all())  # type: ignore[attr-defined]
    except StoreUnavailable:
        return 0


def verify_json(*args: str) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(main, ["verify", "--json", *args], catch_exceptions=False)
    return result.exit_code, [json.loads(line) for line in result.output.splitlines()]


def child_env(store: Store, key_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["USERAUDIT_STORE"] = store_url(store)
    env["USERAUDIT_KEYS"] = str(key_dir)
    return env


def test_the_spool_numbers_records_in_order_per_process(spool_dir: Path) -> None:
    writer = SpoolWriter(spool_dir, durability="sync")
    seen: list[tuple[str, int]] = []

    def make(origin: str, n: int) -> bytes:
        seen.append((origin, n))
        return f"{n}".encode()

    for _ in range(3):
        writer.append(make)
    writer.append(b"plain records take no number")
    writer.append(make)
    assert [n for _o, n in seen] == [1, 2, 3, 5]
    assert len({o for o, _n in seen}) == 1
    pid = os.fork()
    if pid == 0:  # the child numbers from 1 again, under an origin of its own
        seen.clear()
        writer.append(make)
        os._exit(0 if seen[0][1] == 1 and seen[0][0] != writer.origin + "x" else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    writer.close()


def test_record_stamps_origin_and_number(spool_dir: Path, enricher: Enricher) -> None:
    from useraudit.spool import iter_all

    rec = Recorder(spool_dir, durability="sync")
    for _ in range(3):
        rec.record("user.signed_in", account="acme")
    rec.close()
    events = [json.loads(p) for p in iter_all(spool_dir)]
    assert [e["audit.origin.seq"] for e in events] == [1, 2, 3]
    assert len({e["audit.origin.id"] for e in events}) == 1
    doc = enricher(events[0])
    assert doc["audit.origin.seq"] == 1 and doc["audit.origin.id"] == events[0]["audit.origin.id"]


def test_an_event_lost_on_the_way_is_a_gap_until_it_is_delivered(
    env_store: Store, spool_dir: Path, key: SigningKey, enricher: Enricher
) -> None:
    rec = Recorder(spool_dir, durability="sync")
    ids = [rec.record("user.signed_in", account="acme", comments=f"n{i}") for i in range(6)]
    rec.close()

    def failing(raw: dict) -> dict:
        if raw["event.id"] == ids[2]:
            raise RuntimeError("enricher bug")
        return enricher(raw)

    sealer = Sealer(env_store, key)
    with Indexer(spool_dir, env_store, enricher=failing, stages=[sealer]) as ix:
        ix.drain()
        assert ix.stats.dead_lettered == 1
    code, lines = verify_json()
    assert code == 1
    gaps = [f for f in lines if f.get("kind") == "gap"]
    assert len(gaps) == 1 and gaps[0]["event_id"].endswith("#3"), gaps
    # Retried from the dead letters (sealed there too): the gap closes.
    with Indexer(spool_dir, env_store, enricher=enricher, stages=[Sealer(env_store, key)]) as ix:
        assert ix.retry_dead_letters() == {"delivered": 1, "still_failing": 0}
    env_store.refresh()
    code, lines = verify_json()
    assert code == 0, lines
    assert lines[-1]["sealed"] == 6


def test_a_number_used_twice_is_out_of_sequence(
    env_store: Store, spool_dir: Path, key: SigningKey, enricher: Enricher
) -> None:
    rec = Recorder(spool_dir, durability="sync")
    first = rec.record("user.signed_in", account="acme")
    rec.close()
    ship(spool_dir, env_store, key, enricher)
    # A replay: another event claiming the same origin and number, sealed normally.
    event = json.loads(json.dumps(env_store.get([first])[first]))
    event["event.id"] = "e" * 32
    sealer = Sealer(env_store, key)
    sealer.delivered([event], env_store.write([event]))
    sealer.flush()
    code, lines = verify_json()
    assert code == 1
    [finding] = [f for f in lines if f.get("kind") == "out-of-sequence"]
    assert finding["event_id"] == ", ".join(sorted([first, "e" * 32]))
    assert "numbered 2 events 1" in finding["detail"]


def test_kill_9_of_a_sync_host_leaves_no_gap(
    env_store: Store, spool_dir: Path, key: SigningKey, enricher: Enricher
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SYNC_HOST, str(spool_dir)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acked: list[str] = []
    while len(acked) < 400:
        acked.append(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    acked += [line.strip() for line in proc.stdout.read().splitlines() if line.strip()]
    proc.stdout.close()
    ship(spool_dir, env_store, key, enricher)
    code, lines = verify_json()
    assert code == 0, [f for f in lines if f.get("kind") not in ("pending",)][:5]
    assert not [f for f in lines if f.get("kind") == "gap"]
    stored = env_store.get(acked)
    assert set(stored) == set(acked)  # nothing acknowledged is missing


@pytest.mark.slow
def test_kill_9_of_indexers_sharing_a_spool_leaves_a_clean_history(
    env_store: Store, spool_dir: Path, key: SigningKey, key_dir: Path
) -> None:
    """Two indexers on one spool, one killed twice mid-batch, three host processes."""
    hosts = [
        subprocess.Popen([sys.executable, "-c", BATCH_HOST, str(spool_dir), "6000"])
        for _ in range(3)
    ]
    env = child_env(env_store, key_dir)
    cmd = [
        sys.executable,
        "-m",
        "useraudit",
        "indexer",
        "run",
        "--spool",
        str(spool_dir),
        "--batch",
        "500",
        "--no-detect",
    ]
    steady = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    victims: list[subprocess.Popen[bytes]] = []
    try:
        for _round in range(2):
            victim = subprocess.Popen(
                cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            victims.append(victim)
            before = stored_count(env_store)
            deadline = time.monotonic() + 180
            while stored_count(env_store) < before + 1500:
                assert time.monotonic() < deadline, "indexers shipped nothing"
                time.sleep(0.05)
                env_store.refresh()
            victim.send_signal(signal.SIGKILL)
            victim.wait()
        for host in hosts:
            assert host.wait(timeout=300) == 0
        deadline = time.monotonic() + 300
        while True:
            env_store.refresh()
            if stored_count(env_store) == 18_000:
                break
            assert time.monotonic() < deadline, stored_count(env_store)
            time.sleep(0.2)
        time.sleep(1.5)  # the last commit interval: its checkpoints
    finally:
        steady.send_signal(signal.SIGTERM)
        steady.wait(timeout=60)
        for proc in [*hosts, *victims]:
            if proc.poll() is None:  # a failed assertion above: leave nothing running
                proc.kill()
                proc.wait()
    code, lines = verify_json()
    summary = lines[-1]
    assert code == 0, [f for f in lines[:-1]][:5]
    assert summary["sealed"] == summary["events"] == 18_000
    assert not [f for f in lines if f.get("kind") in ("gap", "pending")]
    # One chain per account, however many indexers wrote to it.
    ledger = ledger_for(env_store)
    assert ledger.accounts() == ["acme", "globex", "initech"]
