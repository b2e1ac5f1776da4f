"""Total shipping rate with 1, 2 and 3 indexer processes sharing one spool.

    python -m bench.indexers [--events 120000] [--segments 8] [--url http://127.0.0.1:9250]

The spool holds ``--segments`` segments (as that many host processes would
write); each run ships a fresh copy of it into fresh indices with k
``useraudit indexer run --once`` processes started together. The baseline is
k = 1 in the same run. Last line: one JSON object.
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

from useraudit.middleware.recorder import Recorder
from useraudit.store.opensearch import OpenSearchStore

from ._data import ACTIONS


def fill(spool: Path, events: int, segments: int) -> None:
    per = events // segments
    for s in range(segments):
        rec = Recorder(spool, durability="batch", max_spool_bytes=8 * 1024**3)
        rec.spool._open_segment()  # one segment per simulated host process
        for i in range(per):
            rec.record(
                ACTIONS[(s * per + i) % len(ACTIONS)],
                account=f"acc-{i % 5}",
                user={"id": f"u{i % 300}", "name": f"user{i % 300}"},
                comments=f"setting {i % 91} changed",
                project=f"p{i % 30}",
            )
        rec.close()


def ship(url: str, template: Path, processes: int) -> tuple[float, int]:
    prefix = f"bench-k{processes}-{uuid.uuid4().hex[:6]}"
    store = OpenSearchStore(url, prefix=prefix)
    store.install()
    with tempfile.TemporaryDirectory() as tmp:
        spool = Path(tmp) / "spool"
        shutil.copytree(template, spool)
        cmd = [
            sys.executable,
            "-m",
            "useraudit",
            "indexer",
            "run",
            "--spool",
            str(spool),
            "--once",
            "--store",
            f"{url}/?prefix={prefix}",
            "--batch",
            "2000",
            "--no-install",
        ]
        env = {**os.environ, "USERAUDIT_HOME": tmp}
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            for _ in range(processes)
        ]
        outs = [p.communicate()[0] for p in procs]
        elapsed = time.perf_counter() - start
    shipped = sum(json.loads(o.strip().splitlines()[-1])["shipped"] for o in outs)
    store.refresh()
    stored = store.count_all()
    store.uninstall()
    store.close()
    assert stored == shipped, (stored, shipped)
    return elapsed, shipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--url", default="http://127.0.0.1:9250")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "spool"
        fill(template, args.events, args.segments)
        rates: dict[int, float] = {}
        for k in (1, 2, 3):
            elapsed, shipped = ship(args.url, template, k)
            rates[k] = shipped / elapsed
            print(
                f"{k} indexer(s): {rates[k]:,.0f} events/s ({shipped} in {elapsed:.1f}s)",
                flush=True,
            )
    print(
        json.dumps(
            {
                "bench": "indexers",
                "events": args.events,
                "segments": args.segments,
                "cores": os.cpu_count(),
                **{f"events_per_s_{k}": round(r) for k, r in rates.items()},
                "ratio_2_vs_1": round(rates[2] / rates[1], 3),
                "ratio_3_vs_1": round(rates[3] / rates[1], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
