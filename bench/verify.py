"""Integrity costs: verify against a plain NDJSON export, indexer with sealing on and off.

    python -m bench.verify [--events 100000] [--opensearch URL] [--rounds 2]

1. **Indexer**: the same spool (copied) is shipped by ``useraudit indexer run
   --once --no-detect`` into fresh stores, each shipment a process of its
   own: ``on`` with a signing key (the sealer writes signed checkpoints
   before each commit), ``off`` without, and ``off_again``, a second ``off``
   that reports the run's own noise (an A/A pair: the same code, so any
   ratio but 1.0 is the method's error). Before the rounds, one shipment
   that is not counted warms the store up (a fresh OpenSearch node speeds
   up by a fifth over its first minutes). Every shipment of round r runs
   with ``PYTHONHASHSEED=ROUND_SEED + r``: two processes of identical code
   otherwise differ by 5-15 % for their whole life (hash seed, memory
   layout), so like is compared with like within a round, and each round
   draws a different layout. The order is reversed every round (on, off,
   off_again; then off_again, off, on) so a drift of the machine weighs on
   every side alike. The clock is the indexer's own (``elapsed_s``, up to
   its last commit, so every checkpoint is written inside it); ``cpu_s``,
   its process's CPU time over all threads, is reported beside it.

   The statistic, ``ingest_on_vs_off``, is the **median of the rounds'
   paired ratios** (off's time / on's time in the same round). The best
   round of one side against the best of the other (``..._best_vs_best``,
   reported too) compares rounds far apart when the machine drifts: the
   side whose best round came late was measured on a warmer node, and the
   A/A pair showed it (see docs/BENCHMARKS.md). ``ingest_round_ratios``
   lists every round; ``aa_*`` are the same figures for off_again vs off.
2. **Verify vs export**, on the sealed store: a plain NDJSON export of every
   account (``Store.iterate`` + one JSON line per event, to a file) against
   ``Verifier.run()`` over every account (chains, signatures, roots, every
   event hashed and matched, gaps). Best of ``--rounds`` each.

Last line: one JSON object; ``verify_vs_export`` and ``ingest_on_vs_off`` are
the ratios (higher is better, 1.0 = as fast).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from useraudit.integrity.keys import Keyring, generate
from useraudit.integrity.verify import Verifier
from useraudit.store import open_store
from useraudit.store.base import Store
from useraudit.store.query import Query

from .indexer import fill_spool


def store_url(kind: str, work: Path, name: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{work / (name + '.db')}"
    return f"{kind.rstrip('/')}/?prefix=bench-{name}-{uuid.uuid4().hex[:6]}"


# Round r's shipments all run with PYTHONHASHSEED=ROUND_SEED + r (the warm-up
# with ROUND_SEED - 1): like for like within a round, a new layout every round.
ROUND_SEED = 2000
SIDES = ("on", "off", "off_again")


def shipment_env(home: Path, keys: Path | None, seed: int) -> dict[str, str]:
    """The environment of one shipment: its hash seed, and the signing keys only when sealing."""
    env = {**os.environ, "USERAUDIT_HOME": str(home), "PYTHONHASHSEED": str(seed)}
    env.pop("USERAUDIT_KEYS", None)
    if keys is not None:
        env["USERAUDIT_KEYS"] = str(keys)
    return env


def ship(spool: Path, url: str, keys: Path | None, home: Path, seed: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one ``indexer run --once`` shipping ``spool`` to ``url``."""
    env = shipment_env(home, keys, seed)
    cmd = [sys.executable, "-m", "useraudit", "indexer", "run", "--once", "--no-detect"]
    cmd += ["--spool", str(spool), "--store", url, "--batch", "2000"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"indexer failed: {done.stderr[-2000:]}")
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["shipped"] == stats["read"], stats
    return float(stats["elapsed_s"]), float(stats["cpu_s"])


def export_all(store: Store, out: Path) -> tuple[float, int]:
    start = time.perf_counter()
    n = 0
    with open(out, "wb") as fh:
        for account in store.accounts():
            for doc in store.iterate(Query(account), batch_size=2000):
                fh.write(orjson.dumps(doc) + b"\n")
                n += 1
    return time.perf_counter() - start, n


def verify_all(store: Store, keyring: Keyring) -> tuple[float, int, bool]:
    start = time.perf_counter()
    report = Verifier(store, keyring).run()
    return time.perf_counter() - start, report.events, report.clean


def drop(url: str) -> None:
    """Remove a store the run made: its indices on the shared node, or its SQLite files."""
    from useraudit.store.account_settings import AccountSettings
    from useraudit.store.ledger import ledger_for
    from useraudit.store.opensearch import OpenSearchStore

    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for file in path.parent.glob(path.name + "*"):  # the database, its -wal and -shm
            file.unlink()
        return
    store = open_store(url)
    if isinstance(store, OpenSearchStore):
        ledger_for(store).drop()
        AccountSettings(store).drop()
        store.uninstall()
    store.close()


def paired(
    name: str, base: list[float], other: list[float], *, rounds: bool = True
) -> dict[str, Any]:
    """``other``'s speed against ``base``'s (costs: time or CPU): median of the rounds' ratios.

    Beside it, best round against best round, and (``rounds``) each round's ratio.
    """
    ratios = [b / o for b, o in zip(base, other, strict=True)]
    out: dict[str, Any] = {
        name: round(statistics.median(ratios), 3),
        f"{name}_best_vs_best": round(min(base) / min(other), 3),
    }
    if rounds:
        out[f"{name}_rounds"] = [round(x, 3) for x in ratios]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--store", default="sqlite", help="sqlite, or an OpenSearch URL")
    parser.add_argument("--opensearch", dest="store", metavar="URL", help="the same as --store URL")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        work = Path(tmp)
        spool = work / "spool"
        fill_spool(str(spool), args.events)
        keys = work / "keys"
        generate(keys)
        sealed_url = ""

        def shipment(r: int, side: str, seed: int) -> tuple[float, float]:
            # Only the last sealed store is kept (for verify): the node holds
            # no more data in the last round than in the first.
            nonlocal sealed_url
            copy = work / f"spool-{r}-{side}"
            shutil.copytree(spool, copy)
            url = store_url(args.store, work, f"r{r}-{side.replace('_', '')}")
            sealing = side == "on"
            took = ship(copy, url, keys if sealing else None, work, seed)
            shutil.rmtree(copy)
            if sealing:
                url, sealed_url = sealed_url, url
            if url:
                drop(url)
            return took

        wall, _cpu = shipment(-1, "off", ROUND_SEED - 1)
        print(f"warm-up (not counted): {args.events / wall:,.0f} ev/s")
        times: dict[str, list[float]] = {side: [] for side in SIDES}
        cpus: dict[str, list[float]] = {side: [] for side in SIDES}
        for r in range(args.rounds):
            for side in SIDES if r % 2 == 0 else SIDES[::-1]:
                wall, cpu = shipment(r, side, ROUND_SEED + r)
                times[side].append(wall)
                cpus[side].append(cpu)
                print(
                    f"round {r} {side}: {args.events / wall:,.0f} ev/s, "
                    f"{cpu / args.events * 1e6:.1f} µs CPU/event",
                    flush=True,
                )
        store = open_store(sealed_url)
        keyring = Keyring.from_directory(keys)
        exports, verifies = [], []
        clean, counted = True, 0
        for _r in range(args.rounds):
            seconds, n = export_all(store, work / "export.ndjson")
            exports.append(seconds)
            seconds, counted, clean = verify_all(store, keyring)
            verifies.append(seconds)
            print(f"export {n / exports[-1]:,.0f} ev/s, verify {counted / verifies[-1]:,.0f} ev/s")
        assert clean and counted == args.events == n, (clean, counted, n)
        store.close()
        drop(sealed_url)
    result = {
        "events": args.events,
        "store": "sqlite" if args.store == "sqlite" else "opensearch",
        "ingest_on_eps": round(args.events / statistics.median(times["on"])),
        "ingest_off_eps": round(args.events / statistics.median(times["off"])),
        **paired("ingest_on_vs_off", times["off"], times["on"]),
        **paired("aa_off_again_vs_off", times["off"], times["off_again"]),
        **paired("cpu_on_vs_off", cpus["off"], cpus["on"], rounds=False),
        **paired("aa_cpu_off_again_vs_off", cpus["off"], cpus["off_again"], rounds=False),
        "cpu_us_per_event": {side: round(min(cpus[side]) / args.events * 1e6, 1) for side in SIDES},
        "export_eps": round(args.events / min(exports)),
        "verify_eps": round(args.events / min(verifies)),
        "verify_vs_export": round(min(exports) / min(verifies), 3),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
