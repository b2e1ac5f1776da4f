"""Integrity costs: verify against a plain NDJSON export, indexer with sealing on and off.

    python -m bench.verify [--events 100000] [--opensearch URL] [--rounds 2]

1. **Indexer**: the same spool (copied) is shipped by ``useraudit indexer run
   --once --no-detect`` into two fresh stores, once with a signing key (the
   sealer writes signed checkpoints before each commit) and once without,
   each in a process of its own. Each round runs both sides back to back,
   the order flipped every round (on first in even rounds, off first in odd
   ones) so a drift of the machine weighs on both alike. The clock is the
   indexer's own (``elapsed_s``, up to its last commit, so every checkpoint
   is written inside it). The statistic, ``ingest_on_vs_off``, is each
   side's best round against the other's (off's best time / on's best
   time); ``ingest_round_ratios`` lists each round's own ratio beside it.
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
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

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


def ship(spool: Path, url: str, keys: Path | None, home: Path) -> float:
    env = {**os.environ, "USERAUDIT_HOME": str(home)}
    env.pop("USERAUDIT_KEYS", None)
    if keys is not None:
        env["USERAUDIT_KEYS"] = str(keys)
    cmd = [sys.executable, "-m", "useraudit", "indexer", "run", "--once", "--no-detect"]
    cmd += ["--spool", str(spool), "--store", url, "--batch", "2000"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"indexer failed: {done.stderr[-2000:]}")
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["shipped"] == stats["read"], stats
    return float(stats["elapsed_s"])


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
    """Remove what a run left on a shared OpenSearch node (SQLite files go with the temp dir)."""
    from useraudit.store.account_settings import AccountSettings
    from useraudit.store.ledger import ledger_for
    from useraudit.store.opensearch import OpenSearchStore

    store = open_store(url)
    if isinstance(store, OpenSearchStore):
        ledger_for(store).drop()
        AccountSettings(store).drop()
        store.uninstall()
    store.close()


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
        on: list[float] = []
        off: list[float] = []
        sealed_url = ""
        urls: list[str] = []
        for r in range(args.rounds):
            order = [(True, on), (False, off)] if r % 2 == 0 else [(False, off), (True, on)]
            for sealing, times in order:
                copy = work / f"spool-{r}-{sealing}"
                shutil.copytree(spool, copy)
                url = store_url(args.store, work, f"r{r}-{'on' if sealing else 'off'}")
                urls.append(url)
                times.append(ship(copy, url, keys if sealing else None, work))
                print(f"round {r} sealing={sealing}: {args.events / times[-1]:,.0f} ev/s")
                shutil.rmtree(copy)
                if sealing:
                    sealed_url = url
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
        for url in urls:
            drop(url)
    result = {
        "events": args.events,
        "store": "sqlite" if args.store == "sqlite" else "opensearch",
        "ingest_on_eps": round(args.events / min(on)),
        "ingest_off_eps": round(args.events / min(off)),
        "ingest_on_vs_off": round(min(off) / min(on), 3),
        "ingest_round_ratios": [round(f / n, 3) for n, f in zip(on, off, strict=True)],
        "export_eps": round(args.events / min(exports)),
        "verify_eps": round(args.events / min(verifies)),
        "verify_vs_export": round(min(exports) / min(verifies), 3),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
