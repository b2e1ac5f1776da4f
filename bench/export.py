"""Exports through the admin UI vs the raw writers; peak memory.

    python -m bench.export                      # 1M events seeded; exports of ~100k and ~1M rows
    python -m bench.export --events 300000 --rows 100000 --big-rows 0
    python -m bench.export --formats csv,ndjson  # only the CSV and NDJSON comparisons

Seeds (or reuses) the same index as ``bench.search``. Every measurement runs
in a fresh child process, so its peak RSS (``ru_maxrss``) is its own:

    app      the export endpoint served by werkzeug on 127.0.0.1, downloaded
             over HTTP by a client in the same process (signed in), bytes
             discarded as they arrive: Store.iterate → cells → openpyxl
             write-only → streamed response
    raw      the same rows (same cell values, fetched beforehand, not timed)
             appended to an openpyxl write-only workbook and saved to a file
    fetch+raw  for reference: Store.iterate and the raw write, timed together

CSV and NDJSON, each against the standard library writer in the same run:

    csv / ndjson        the endpoint (``actions.csv`` / ``actions.ndjson``),
                        downloaded over HTTP as above
    csv-raw             Store.iterate (the export's fields) → ``csv.writer``
                        of the same cells → a file, in one process: what a
                        hand-written export script does
    ndjson-raw          Store.iterate (whole documents) → ``json.dumps`` of
                        the nested ECS document per line → a file

    For both the writer alone (documents fetched beforehand, not timed) is
    reported too; it is far faster than any fetch, so it is no target.

Targets: XLSX app throughput ≥ 0.8 × raw; CSV and NDJSON app ≥ 0.8 × their
fetch-and-write raw writers; peak RSS of the app process (and of the child
process that writes a big export's workbook) flat and under 150 MB for
both ~100k and ~1M rows. Last line: one JSON object.
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


def child_app(args: argparse.Namespace, ext: str = "xlsx") -> dict[str, Any]:
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
        "GET", f"/a/{ACCOUNT}/actions.{ext}?{args.qs}", headers={"Cookie": server.cookie}
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

    from useraudit.webapp.export_columns import EXPORT_COLUMNS, EXPORT_FIELDS
    from useraudit.webapp.filters import Filters, zone
    from useraudit.webapp.workbook import export_row

    store = _store(args)
    f = Filters.parse(MultiDict(parse_qsl(args.qs)))
    query = f.query(ACCOUNT)
    tz = zone(f.tz)

    def cells(doc: dict) -> list[Any]:
        # Exactly the cells the app writes (safe text, None for empty).
        return export_row(doc, tz)

    def write(rows: Any, path: str) -> int:
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("User actions")
        ws.append([c.label for c in EXPORT_COLUMNS])
        n = 0
        for r in rows:
            ws.append(r)
            n += 1
        wb.save(path)
        return n

    out = tempfile.NamedTemporaryFile(suffix=".xlsx", delete=False).name
    # fetched beforehand: not timed
    data = [cells(d) for d in store.iterate(query, batch_size=3000, fields=EXPORT_FIELDS)]
    t0 = time.perf_counter()
    n = write(data, out)
    raw_s = time.perf_counter() - t0
    del data
    t0 = time.perf_counter()
    write((cells(d) for d in store.iterate(query, batch_size=3000, fields=EXPORT_FIELDS)), out)
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


def child_text_raw(args: argparse.Namespace, fmt: str) -> dict[str, Any]:
    """Store.iterate → the standard library writer → a file (see the module doc)."""
    import csv
    from urllib.parse import parse_qsl

    from werkzeug.datastructures import MultiDict

    from useraudit.schema import nest
    from useraudit.webapp.csvfile import csv_row
    from useraudit.webapp.export_columns import EXPORT_COLUMNS, EXPORT_FIELDS
    from useraudit.webapp.filters import Filters, zone

    store = _store(args)
    f = Filters.parse(MultiDict(parse_qsl(args.qs)))
    query = f.query(ACCOUNT)
    tz = zone(f.tz)
    fields = EXPORT_FIELDS if fmt == "csv" else None

    def write(docs: Any, path: str) -> int:
        n = 0
        with open(path, "w", encoding="utf-8", newline="") as fh:
            if fmt == "csv":
                writer = csv.writer(fh, lineterminator="\r\n")
                writer.writerow([c.label for c in EXPORT_COLUMNS])
                for doc in docs:
                    writer.writerow(csv_row(doc, tz))
                    n += 1
            else:
                for doc in docs:
                    fh.write(json.dumps(nest(doc), ensure_ascii=False, separators=(",", ":")))
                    fh.write("\n")
                    n += 1
        return n

    out = tempfile.NamedTemporaryFile(suffix="." + fmt, delete=False).name
    data = list(store.iterate(query, batch_size=3000, fields=fields))  # not timed
    t0 = time.perf_counter()
    n = write(data, out)
    raw_s = time.perf_counter() - t0
    del data
    t0 = time.perf_counter()
    write(store.iterate(query, batch_size=3000, fields=fields), out)
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


def measure_text(fmt: str, args: argparse.Namespace, qs: str, log: Any) -> dict[str, Any]:
    """The CSV or NDJSON endpoint vs its standard library writer, ``--repeat`` rounds."""
    app_runs, raw_runs = [], []
    for i in range(args.repeat):
        app_runs.append(run_child(fmt, args, qs))
        raw_runs.append(run_child(f"{fmt}-raw", args, qs))
        log(
            f"{fmt} run {i + 1}: app {app_runs[-1]['rows_per_s']:,} rows/s "
            f"(peak RSS {app_runs[-1]['peak_rss_mb']} MB) | fetch+{fmt} writer "
            f"{raw_runs[-1]['fetch_and_write_rows_per_s']:,} rows/s | writer alone "
            f"{raw_runs[-1]['rows_per_s']:,} rows/s"
        )
    med = lambda runs, k: sorted(r[k] for r in runs)[len(runs) // 2]  # noqa: E731
    app, raw = med(app_runs, "rows_per_s"), med(raw_runs, "fetch_and_write_rows_per_s")
    return {
        "rows": app_runs[0]["rows"],
        "app_rows_per_s": app,
        "fetch_and_write_rows_per_s": raw,
        "writer_alone_rows_per_s": med(raw_runs, "rows_per_s"),
        "ratio": round(app / raw, 3),
        "ratio_runs": [
            round(a["rows_per_s"] / r["fetch_and_write_rows_per_s"], 3)
            for a, r in zip(app_runs, raw_runs, strict=True)
        ],
        "app_peak_rss_mb": max(r["peak_rss_mb"] for r in app_runs),
        "mb": round(app_runs[0]["bytes"] / 1e6, 1),
        "target_ratio": 0.8,
    }


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
    ap.add_argument(
        "--formats",
        default="xlsx,csv,ndjson",
        help="comma-separated: which exports to compare (xlsx, csv, ndjson)",
    )
    ap.add_argument(
        "--child",
        choices=["app", "raw", "csv", "csv-raw", "ndjson", "ndjson-raw"],
        help=argparse.SUPPRESS,
    )
    ap.add_argument("--qs", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.prefix = args.prefix or f"bench-ui-{args.events}"
    if args.child:
        if args.child == "app":
            result = child_app(args)
        elif args.child == "raw":
            result = child_raw(args)
        elif args.child.endswith("-raw"):
            result = child_text_raw(args, args.child.removesuffix("-raw"))
        else:
            result = child_app(args, args.child)
        print(json.dumps(result))
        return 0

    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    store, seed_s = open_seeded(args.opensearch, args.prefix, args.events, log=log)
    now = datetime.now(UTC)
    qs = window_for(store, args.rows, now)
    formats = {f.strip() for f in args.formats.split(",") if f.strip()}
    result: dict[str, Any] = {
        "bench": "export",
        "events": args.events,
        "seed_seconds": round(seed_s, 1) if seed_s else None,
    }
    if "xlsx" in formats:
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
        result.update(
            {
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
            }
        )
        if args.big_rows:
            big_qs = (
                "period=30d"
                if args.big_rows
                >= store.count(
                    __import__("useraudit.store", fromlist=["Query"]).Query(account=ACCOUNT)
                )
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
    for fmt in ("csv", "ndjson"):
        if fmt in formats:
            result[fmt] = measure_text(fmt, args, qs, log)
    peaks = [
        result.get("app_peak_rss_mb", 0),
        result.get("child_peak_rss_mb", 0),
        result.get("big_peak_rss_mb", 0),
        result.get("big_child_peak_rss_mb", 0),
        *(result[f]["app_peak_rss_mb"] for f in ("csv", "ndjson") if f in result),
    ]
    ratios = [result[f]["ratio"] for f in ("csv", "ndjson") if f in result]
    if "ratio" in result:
        ratios.append(result["ratio"])
    result["ok"] = all(r >= 0.8 for r in ratios) and max(peaks) < 150
    result["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
