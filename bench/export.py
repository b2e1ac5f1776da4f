"""Export to XLSX through the admin UI vs raw openpyxl write-only; peak memory.

    python -m bench.export                      # 1M events seeded; exports of ~100k and ~1M rows
    python -m bench.export --events 300000 --rows 100000 --big-rows 0

Seeds (or reuses) the same index as ``bench.search``. Every measurement runs
in a fresh child process, so its peak RSS (``ru_maxrss``) is its own:

    app      the export endpoint served by werkzeug on 127.0.0.1, downloaded
             over HTTP by a client in the same process (signed in), bytes
             discarded as they arrive: Store.iterate → cells → openpyxl
             write-only → streamed response
    raw      the same rows (same cell values, fetched beforehand, not timed)
             appended to an openpyxl write-only workbook and saved to a file
    fetch+raw  for reference: Store.iterate and the raw write, timed together

Targets: app throughput ≥ 0.8 × raw; peak RSS of the app process (and of
the child process that writes a big export's workbook) flat and under
150 MB for both ~100k and ~1M rows. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ._ui import ACCOUNT, Server, make_app, open_seeded

FMT = "%Y-%m-%dT%H:%M"


def _rss_mb() -> float:
    """Peak RSS of this process in MB (VmHWM, resettable; ru_maxrss otherwise)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> bool:
    """Forget the peak so far (Linux): sign-in's Argon2 hash alone peaks at 64 MiB."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _store(args: argparse.Namespace) -> Any:
    from useraudit.store.opensearch import OpenSearchStore

    return OpenSearchStore(args.opensearch, prefix=args.prefix, timeout=120)


def child_app(args: argparse.Namespace) -> dict[str, Any]:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    store = _store(args)
    app, user = make_app(store)
    server = Server(app)
    server.sign_in(user)
    sign_in_peak = _rss_mb()
    _reset_peak()
    base = _rss_mb()
    t0 = time.perf_counter()
    server.conn.request(
        "GET", f"/a/{ACCOUNT}/actions.xlsx?{args.qs}", headers={"Cookie": server.cookie}
    )
    resp = server.conn.getresponse()
    assert resp.status == 200, resp.status
    size = 0
    while chunk := resp.read(1 << 20):
        size += len(chunk)
    elapsed = time.perf_counter() - t0
    rows = int(resp.getheader("X-Rows") or 0)
    server.stop()
    # A big export's workbook is written by a child process: its peak RSS
    # and CPU count too (ru_maxrss of the largest reaped child, in kB).
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "child_peak_rss_mb": round(children.ru_maxrss / 1024, 1),
        "child_cpu_s": round(children.ru_utime + children.ru_stime, 2),
        "app_cpu_s": round(cpu.ru_utime + cpu.ru_stime, 2),
        "rows": rows,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(rows / elapsed),
        "bytes": size,
        "base_rss_mb": round(base, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "sign_in_peak_rss_mb": round(sign_in_peak, 1),
    }


def child_raw(args: argparse.Namespace) -> dict[str, Any]:
    from urllib.parse import parse_qsl

    from openpyxl import Workbook
    from werkzeug.datastructures import MultiDict

    from useraudit.schema import COLUMNS
    from useraudit.webapp.columns import row
    from useraudit.webapp.filters import Filters, zone
    from useraudit.webapp.workbook import neutralise

    store = _store(args)
    f = Filters.parse(MultiDict(parse_qsl(args.qs)))
    query = f.query(ACCOUNT)
    tz = zone(f.tz)

    def cells(doc: dict) -> list[Any]:
        # Exactly the cells the app writes: empty text is no cell at all.
        return [(neutralise(v) or None) if isinstance(v, str) else v for v in row(doc, tz)]

    def write(rows: Any, path: str) -> int:
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("User actions")
        ws.append([c.label for c in COLUMNS])
        n = 0
        for r in rows:
            ws.append(r)
            n += 1
        wb.save(path)
        return n

    out = tempfile.NamedTemporaryFile(suffix=".xlsx", delete=False).name
    data = [cells(d) for d in store.iterate(query)]  # fetched beforehand: not timed
    t0 = time.perf_counter()
    n = write(data, out)
    raw_s = time.perf_counter() - t0
    del data
    t0 = time.perf_counter()
    write((cells(d) for d in store.iterate(query)), out)
    fetch_raw_s = time.perf_counter() - t0
    size = os.path.getsize(out)
    os.unlink(out)
    return {
        "rows": n,
        "seconds": round(raw_s, 2),
        "rows_per_s": round(n / raw_s),
        "bytes": size,
        "fetch_and_write_seconds": round(fetch_raw_s, 2),
        "fetch_and_write_rows_per_s": round(n / fetch_raw_s),
    }


def run_child(kind: str, args: argparse.Namespace, qs: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "bench.export",
        "--child",
        kind,
        "--qs",
        qs,
        "--prefix",
        args.prefix,
        "--opensearch",
        args.opensearch,
    ]
    out = subprocess.run(
        cmd,
        check=True,
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def window_for(store: Any, rows: int, now: datetime) -> str:
    """A custom period (whole minutes, UTC) ending now that holds about ``rows`` acme events."""
    from useraudit.store import Query

    lo, hi = 1, 31 * 24 * 60  # minutes back
    while lo < hi:
        mid = (lo + hi) // 2
        if store.count(Query(account=ACCOUNT, start=now - timedelta(minutes=mid))) < rows:
            lo = mid + 1
        else:
            hi = mid
    start = now - timedelta(minutes=lo)
    return f"period=custom&from={start:{FMT}}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rows", type=int, default=100_000, help="rows of the timed export")
    ap.add_argument(
        "--big-rows",
        type=int,
        default=1_000_000,
        help="rows of the memory-only export (0 skips; capped by what the account holds)",
    )
    ap.add_argument("--opensearch", default="http://127.0.0.1:9250")
    ap.add_argument("--prefix", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", choices=["app", "raw"], help=argparse.SUPPRESS)
    ap.add_argument("--qs", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.prefix = args.prefix or f"bench-ui-{args.events}"
    if args.child:
        result = child_app(args) if args.child == "app" else child_raw(args)
        print(json.dumps(result))
        return 0

    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    store, seed_s = open_seeded(args.opensearch, args.prefix, args.events, log=log)
    now = datetime.now(UTC)
    qs = window_for(store, args.rows, now)
    app_runs, raw_runs = [], []
    for i in range(args.repeat):
        app_runs.append(run_child("app", args, qs))
        raw_runs.append(run_child("raw", args, qs))
        log(
            f"run {i + 1}: app {app_runs[-1]['rows_per_s']:,} rows/s "
            f"({app_runs[-1]['seconds']} s, peak RSS {app_runs[-1]['peak_rss_mb']} MB) | "
            f"raw {raw_runs[-1]['rows_per_s']:,} rows/s ({raw_runs[-1]['seconds']} s) | "
            f"fetch+raw {raw_runs[-1]['fetch_and_write_rows_per_s']:,} rows/s"
        )
    app_best = max(app_runs, key=lambda r: r["rows_per_s"])
    raw_best = max(raw_runs, key=lambda r: r["rows_per_s"])
    med = lambda runs, k: sorted(r[k] for r in runs)[len(runs) // 2]  # noqa: E731
    result: dict[str, Any] = {
        "bench": "export",
        "events": args.events,
        "rows": app_best["rows"],
        "app_rows_per_s": med(app_runs, "rows_per_s"),
        "raw_rows_per_s": med(raw_runs, "rows_per_s"),
        "fetch_and_raw_rows_per_s": med(raw_runs, "fetch_and_write_rows_per_s"),
        "ratio": round(med(app_runs, "rows_per_s") / med(raw_runs, "rows_per_s"), 3),
        "ratio_vs_fetch_and_raw": round(
            med(app_runs, "rows_per_s") / med(raw_runs, "fetch_and_write_rows_per_s"), 3
        ),
        "best_ratio": round(app_best["rows_per_s"] / raw_best["rows_per_s"], 3),
        "app_peak_rss_mb": max(r["peak_rss_mb"] for r in app_runs),
        # the process that writes the workbook of a big export
        "child_peak_rss_mb": max(r["child_peak_rss_mb"] for r in app_runs),
        "child_cpu_s": app_best["child_cpu_s"],
        "app_cpu_s": app_best["app_cpu_s"],
        "app_base_rss_mb": app_best["base_rss_mb"],
        "sign_in_peak_rss_mb": app_best["sign_in_peak_rss_mb"],
        "xlsx_mb": round(app_best["bytes"] / 1e6, 1),
        "target_ratio": 0.8,
        "target_rss_mb": 150,
        "seed_seconds": round(seed_s, 1) if seed_s else None,
    }
    if args.big_rows:
        big_qs = (
            "period=30d"
            if args.big_rows
            >= store.count(__import__("useraudit.store", fromlist=["Query"]).Query(account=ACCOUNT))
            else window_for(store, args.big_rows, now)
        )
        big = run_child("app", args, big_qs)
        log(
            f"big export: {big['rows']:,} rows in {big['seconds']} s, "
            f"peak RSS {big['peak_rss_mb']} MB"
        )
        result.update(
            {
                "big_rows": big["rows"],
                "big_seconds": big["seconds"],
                "big_rows_per_s": big["rows_per_s"],
                "big_peak_rss_mb": big["peak_rss_mb"],
                "big_child_peak_rss_mb": big["child_peak_rss_mb"],
                "big_xlsx_mb": round(big["bytes"] / 1e6, 1),
            }
        )
    peaks = [
        result["app_peak_rss_mb"],
        result["child_peak_rss_mb"],
        result.get("big_peak_rss_mb", 0),
        result.get("big_child_peak_rss_mb", 0),
    ]
    result["ok"] = result["ratio"] >= 0.8 and max(peaks) < 150
    result["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
