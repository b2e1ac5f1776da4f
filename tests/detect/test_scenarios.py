"""Scripted attacks through the real capture path, on both stores.

The demo host app runs under gunicorn and records into a spool; the
indexer (GeoIP from a small MMDB the test writes, every rule on) ships the
spool into the real OpenSearch node or a SQLite file. Each scenario raises
exactly the alerts it names, with exactly the events behind them; a calm
user raises none. Then the same spool again through an indexer process that
is killed with SIGKILL while detecting and restarted: the same alerts, none
twice, no count inflated.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import free_port
from support.mmdb import write_asn, write_city

from useraudit.detect.pipeline import build_stages
from useraudit.indexer.shipper import Indexer
from useraudit.store.alerts import Alert, DetectionStore, detection_store
from useraudit.store.base import Store

from .scenarios import SCENARIOS, SETTINGS

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent


def expected() -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for s in SCENARIOS:
        out.update(s.expected)
    return out


def found(alerts: DetectionStore) -> dict[tuple[str, str], Alert]:
    alerts.refresh()
    got: dict[tuple[str, str], Alert] = {}
    for a in alerts.list_alerts("acme"):
        assert (a.rule, a.subject) not in got, f"two alerts for {(a.rule, a.subject)}"
        got[(a.rule, a.subject)] = a
    return got


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spool holding every scenario, recorded by the host app under gunicorn."""
    root = tmp_path_factory.mktemp("scenarios")
    spool = root / "spool"
    spool.mkdir()
    port = free_port()
    log = root / "gunicorn.log"
    env = {**os.environ, "USERAUDIT_SPOOL": str(spool), "PYTHONPATH": str(HERE)}
    cmd = [str(BIN / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}", "live_host:create_app()"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=HERE, env=env, stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        for scenario in SCENARIOS:
            scenario.run(base)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()
    return spool


@pytest.fixture(scope="module")
def geo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("geo")
    return write_city(root / "city.mmdb"), write_asn(root / "asn.mmdb")


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    path = tmp_path / "detections.toml"
    path.write_text(SETTINGS)
    return path


@pytest.fixture(params=["opensearch", "sqlite"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, str]]:
    """(store, its URL for a subprocess) on each backend; alerts removed afterwards."""
    if request.param == "opensearch":
        store = request.getfixturevalue("os_store")
        url = f"{store.url}?prefix={store.prefix}"
    else:
        from useraudit.store.sqlite import SQLiteStore

        url = f"sqlite:///{tmp_path / 'audit.db'}"
        store = SQLiteStore(url)
        store.install()
    alerts = detection_store(store)
    try:
        yield store, url
    finally:
        uninstall = getattr(alerts, "uninstall", None)
        if uninstall is not None:
            uninstall()
        alerts.close()
        if request.param == "sqlite":
            store.close()


def copy_spool(spool: Path, to: Path) -> Path:
    shutil.copytree(spool, to)
    return to


def spaced_spool(spool: Path, to: Path, fillers: int) -> Path:
    """The captured events, each followed by ``fillers`` sign-ins of another account.

    Detection state and alerts are per account, so acme's alerts do not change;
    the indexer only takes longer between them, so a kill after the first
    alerts lands with others still to come however fast the indexer got.
    """
    import orjson

    from useraudit.spool import SpoolWriter, iter_all

    from .conftest import event

    writer = SpoolWriter(to, durability="batch")
    try:
        for record in iter_all(spool):
            writer.append(record)
            for _ in range(fillers):
                writer.append(orjson.dumps(event("user.signed_in", "filler", account="filler-co")))
    finally:
        writer.close()
    return to


def test_each_attack_raises_exactly_its_alerts(
    captured: Path,
    geo: tuple[Path, Path],
    settings_file: Path,
    target: tuple[Store, str],
    tmp_path: Path,
) -> None:
    """Every scenario's alerts, with the number of events behind each, and nothing else."""
    store, _url = target
    stages, notes = build_stages(
        store, settings_path=settings_file, geoip_city=geo[0], geoip_asn=geo[1]
    )
    assert any("14 rules on" in n for n in notes), notes
    with Indexer(copy_spool(captured, tmp_path / "spool"), store, stages=stages) as ix:
        stats = ix.drain()
    assert stats.dead_lettered == 0 and stats.stage_errors == 0
    store.refresh()
    got = found(detection_store(store))
    assert {k: a.count for k, a in got.items()} == expected()
    takeover = got[("takeover", "u-brute")]
    assert takeover.severity == "high"
    events = store.get(takeover.event_ids)
    assert [events[i]["event.outcome"] for i in takeover.event_ids] == ["failure"] * 4 + ["success"]
    travel = got[("impossible_travel", "u-travel")]
    assert (travel.details["from"], travel.details["to"]) == ("Berlin", "Sydney")
    stored = store.get([travel.event_ids[1]])[travel.event_ids[1]]
    assert stored["source.ip"] == "203.0.113.20"


def test_kill_9_while_detecting_then_restart_gives_the_same_alerts(
    captured: Path,
    geo: tuple[Path, Path],
    settings_file: Path,
    target: tuple[Store, str],
    tmp_path: Path,
) -> None:
    """SIGKILL mid-way through detection, then a restart: the same alerts, no count inflated."""
    store, url = target
    spool = spaced_spool(captured, tmp_path / "spool", fillers=6)
    cmd = [
        str(BIN / "useraudit"),
        "indexer",
        "run",
        "--spool",
        str(spool),
        "--store",
        url,
        "--batch",
        "3",
        "--detect-config",
        str(settings_file),
        "--geoip-city",
        str(geo[0]),
        "--geoip-asn",
        str(geo[1]),
    ]
    alerts = detection_store(store)
    alerts.install()
    log = tmp_path / "indexer.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while len(found(alerts)) < 3:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    partial = found(alerts)
    assert 0 < len(partial) < len(expected()), "the kill did not land mid-way"
    done = subprocess.run([*cmd, "--once"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    got = found(alerts)
    assert {k: a.count for k, a in got.items()} == expected()
    for key, before in partial.items():
        assert got[key].id == before.id


@pytest.mark.parametrize("backend", ["sqlite", "opensearch"])
def test_two_indexers_on_one_spool_raise_one_alert(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """One user's failures split over two segments, shipped by two indexers at once: one alert."""
    import threading

    import orjson

    from useraudit.spool import SpoolWriter

    from .conftest import event

    spool = tmp_path / "spool"
    writers = [SpoolWriter(spool, durability="sync"), SpoolWriter(spool, durability="sync")]
    failures = [
        event("user.signed_in", "alice", outcome="failure", ip=f"100.64.4.{i}") for i in range(10)
    ]
    for i, raw in enumerate(failures):
        writers[i % 2].append(orjson.dumps(raw))
    for w in writers:
        w.close()
    if backend == "opensearch":
        first = request.getfixturevalue("os_store")
        from useraudit.store.opensearch import OpenSearchStore

        stores: list[Store] = [first, OpenSearchStore(first.url, prefix=first.prefix)]
    else:
        from useraudit.store.sqlite import SQLiteStore

        url = f"sqlite:///{tmp_path / 'audit.db'}"
        stores = [SQLiteStore(url), SQLiteStore(url)]
        stores[0].install()
    alerts = detection_store(stores[0])
    alerts.install()
    barrier = threading.Barrier(2)

    def ship(store: Store) -> None:
        stages, _notes = build_stages(store, install=False)
        with Indexer(spool, store, stages=stages, batch_records=2) as ix:
            barrier.wait()
            ix.drain()

    threads = [threading.Thread(target=ship, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    got = found(alerts)
    try:
        assert list(got) == [("brute_force", "u-alice")]
        # Each indexer saw at least its own five failures: both found the burst,
        # and the store merged the findings into one alert naming all ten.
        alert = got[("brute_force", "u-alice")]
        assert sorted(alert.event_ids) == sorted(r["event.id"] for r in failures)
        assert alert.count == 10
    finally:
        uninstall = getattr(alerts, "uninstall", None)
        if uninstall is not None:
            uninstall()
        alerts.close()
        if backend == "sqlite":
            for s in stores:
                s.close()
        else:
            stores[1].close()
