"""Detection's cost in the indexer, and how soon an alert is stored, same run.

    python -m bench.detect [--events 30000] [--rounds 5] [--opensearch http://127.0.0.1:9250]
                           [--latency-seconds 20] [--rate-fraction 0.5]

1. **Throughput**: one spool of ``--events`` events is shipped by the
   in-process indexer into a fresh store three ways: ``bare`` (no stages),
   ``geoip`` (GeoIP enrichment only: **detection off**) and ``detect``
   (GeoIP + every detection rule on, working hours set so even the
   off-hours rule runs). A round runs the three back to back, the order
   reversed every other round (so neither side always goes first, after
   the previous run's merges, or second, on a warmer cache).
   ``ratio_detect_on_vs_off`` = detect / geoip (target ≥ 0.85) is the
   **median of the rounds' ratios**: every run is in this one process (so
   the two sides share its memory layout and hash seed, which alone moved
   separate processes' throughput by 5–15 %), the two runs of a round are
   seconds apart and see the same load, and the median drops a round where
   a hiccup hit either side. (A best-per-side figure pairs runs from
   different moments: at 20,000 events × 2 rounds, 2–3 s each, one
   scheduler hiccup moved it by 0.1.) ``ratio_rounds`` lists every round's
   ratio, ``ratio_best_vs_best`` is the best run of one side against the
   best of the other, and the events/s figures are each side's median.
   ``ratio_cpu_on_vs_off`` is the same median over the process's CPU time
   per run (every thread, ``time.process_time``, plus the detection worker
   process's CPU where detection runs in one: on SQLite, see
   ``detection_runs_in``): what detection costs the machine, steadier than
   wall time while other processes share the cores, though it does not see
   the time one thread waits for another.
   GeoIP is on in both, since it is enrichment of its own (the country
   filter and facet) that a deployment turns on with or without detection;
   ``ratio_detect_on_vs_bare`` (detect / bare) is reported beside it, and
   ``ratio_geoip_vs_bare`` says what GeoIP costs. The defaults (30,000
   events, 5 rounds: runs of 3–5 s) take about three minutes with
   ``--opensearch``.

   The mix is the demo's (``demo.traffic``): every catalog action equally
   likely with the demo's request bodies (6 % failures), one sign-in per
   session of about ten actions (5 % of them failed; 1 % from another
   network and device), 1 % of actions done by support staff on a user's
   behalf, and now and then a role update that grants USER_ADMIN; 7
   accounts, 2,000 users, each with a home network and device, IPs in 256
   networks a GeoIP database places in 8 cities.
2. **Latency**: the indexer runs as a daemon (``run()``, default polling)
   with GeoIP and every rule on while a writer appends the same mix at
   ``--rate-fraction`` × the detection-off throughput (its best run) and, every 0.25 s, a
   burst of five failed sign-ins for a new user. Each burst's alert id is
   known in advance (rule + account + subject + window); a poller reads it
   by id every 20 ms (realtime on OpenSearch) and the time from the fifth
   failure's append to the stored alert is one sample: ``alert_p95_ms``
   (target ≤ 2000).

The store is SQLite in a temporary folder, and OpenSearch too with
``--opensearch``. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from mmdb_writer import MmdbF64, MMDBWriter
from netaddr import IPSet

from useraudit.catalog import CATALOG
from useraudit.demo import traffic
from useraudit.detect.pipeline import build_stages
from useraudit.indexer.shipper import Indexer
from useraudit.spool import SpoolWriter
from useraudit.store import Store
from useraudit.store.alerts import alert_id, detection_store

from ._data import user_agents

ACCOUNTS = [f"acc-{i}" for i in range(7)]
USERS = 2000
# The demo's traffic (demo.traffic.plan): every catalog action equally likely
# (sign-ins, sign-outs and blocks come from the host's own sign-in page, not
# from random picks), with the demo's request bodies and 6 % failures.
DEMO_CODES = [
    a.code
    for p in ("common", "jaicp")
    for a in CATALOG.actions(p)
    if a.code not in traffic.HOST_ACTIONS
]
# One sign-in starts a session of about ten actions.
SIGN_IN_SHARE = 0.1
BODY_FIELDS = {
    "target_user": "user.target.id",
    "project": "audit.project.id",
    "project_name": "audit.project.name",
    "token_id": "audit.token.id",
    "params": "audit.params",
    "comments": "audit.comments",
    "reason": "event.reason",
    "outcome": "event.outcome",
}
# Working hours set (so the off-hours rule evaluates every admin action) and
# wide enough that the bench's own clock falls inside them, as on a workday.
SETTINGS = """
[defaults]
working_hours = { start = "00:00", end = "23:59", days = [0, 1, 2, 3, 4, 5, 6], timezone = "UTC" }
"""
CITIES = [
    ("DE", "Berlin", 52.52, 13.40),
    ("FR", "Paris", 48.86, 2.35),
    ("US", "New York", 40.71, -74.0),
    ("JP", "Tokyo", 35.68, 139.69),
    ("BR", "São Paulo", -23.55, -46.63),
    ("AU", "Sydney", -33.87, 151.21),
    ("IN", "Mumbai", 19.08, 72.88),
    ("RU", "Moscow", 55.75, 37.62),
]


def write_geo(folder: Path) -> Path:
    """A small GeoIP2-City database: 10.X.0.0/16 placed in one of CITIES."""
    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
    for x in range(256):
        iso, city, lat, lon = CITIES[x % len(CITIES)]
        writer.insert_network(
            IPSet([f"10.{x}.0.0/16"]),
            {
                "country": {"iso_code": iso, "names": {"en": iso}},
                "city": {"names": {"en": city}},
                "location": {"latitude": MmdbF64(lat), "longitude": MmdbF64(lon)},
            },
        )
    path = folder / "city.mmdb"
    writer.to_db_file(str(path))
    return path


class Mix:
    """Raw events as record() spools them; each user keeps a home network and device."""

    def __init__(self, seed: int = 7) -> None:
        self.rnd = random.Random(seed)
        self.uas = user_agents(40, self.rnd)
        self.home = {
            u: (
                f"10.{self.rnd.randrange(256)}.{self.rnd.randrange(256)}",
                self.rnd.choice(self.uas),
            )
            for u in range(USERS)
        }
        self.n = 0

    def event(self, action: str, user: int, **extra: Any) -> dict[str, Any]:
        self.n += 1
        net, ua = self.home[user]
        raw = {
            "event.id": f"{int(time.time() * 1000):012x}{uuid.uuid4().hex[:20]}",
            "@timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event.action": action,
            "event.outcome": "success",
            "organization.id": ACCOUNTS[user % len(ACCOUNTS)],
            "user.id": f"u{user}",
            "user.name": f"user{user}",
            "source.address": f"{net}.{self.rnd.randrange(1, 255)}",
            "user_agent.original": ua,
        }
        raw.update(extra)
        return raw

    def next(self) -> dict[str, Any]:
        """One event of the demo's mix (see the module doc)."""
        r = self.rnd.random()
        user = self.rnd.randrange(USERS)
        if r < SIGN_IN_SHARE:  # a session starts
            outcome = "failure" if self.rnd.random() < 0.05 else "success"
            extra: dict[str, Any] = {"event.outcome": outcome}
            if self.rnd.random() < 0.01:  # travelling, or a new phone
                extra["source.address"] = f"10.{self.rnd.randrange(256)}.7.7"
                extra["user_agent.original"] = self.rnd.choice(self.uas)
            return self.event("user.signed_in", user, **extra)
        if r < SIGN_IN_SHARE + 0.01:  # support staff acting on a user's behalf
            return self.event(
                self.rnd.choice(DEMO_CODES), user, **{"audit.impersonator.id": "u-support"}
            )
        code = self.rnd.choice(DEMO_CODES)
        others = [f"u{self.rnd.randrange(USERS)}" for _ in range(3)]
        body = traffic._details(code, self.rnd, others, self.n)
        extra = {}
        if code == "user.roles_updated" and self.rnd.random() < 0.05:
            # Now and then someone is made an admin (the demo leaves this to its attack).
            body["params"] = {"roles": [*body["params"]["roles"], "USER_ADMIN"]}
        for key, field in BODY_FIELDS.items():
            if body.get(key) is not None:
                extra[field] = body[key]
        return self.event(code, user, **extra)


def fill(spool: Path, events: int) -> None:
    mix = Mix()
    writer = SpoolWriter(spool, max_bytes=4 * 1024**3)
    writer.append_many([orjson.dumps(mix.next()) for _ in range(events)])
    writer.close()


def open_backend(kind: str, folder: Path, url: str | None) -> Store:
    if kind == "sqlite":
        from useraudit.store.sqlite import SQLiteStore

        store: Store = SQLiteStore(f"sqlite:///{folder / f'audit-{uuid.uuid4().hex[:6]}.db'}")
    else:
        from useraudit.store.opensearch import OpenSearchStore

        store = OpenSearchStore(str(url), prefix=f"bench-dt-{uuid.uuid4().hex[:6]}")
    store.install()
    return store


def drop(store: Store) -> None:
    alerts = detection_store(store)
    for thing in (alerts, store):
        uninstall = getattr(thing, "uninstall", None)
        if uninstall is not None:
            uninstall()
    alerts.close()
    store.close()


VARIANTS = ("bare", "geoip", "detect")


def ship(
    kind: str, spool: Path, folder: Path, url: str | None, variant: str, geo: Path, conf: Path
) -> tuple[float, float, dict]:
    """Seconds to ship the spool with: no stages, GeoIP only, or GeoIP + every rule."""
    copy = folder / f"spool-{uuid.uuid4().hex[:6]}"
    shutil.copytree(spool, copy)
    store = open_backend(kind, folder, url)
    stages = (
        []
        if variant == "bare"
        else build_stages(store, settings_path=conf, geoip_city=geo, detect=variant == "detect")[0]
    )
    try:
        engine = next((s for s in stages if getattr(s, "name", "") == "detect"), None)
        # Detection in a worker process (SQLite): its CPU counts as the indexer's.
        worker_cpu = getattr(engine, "worker_cpu", lambda: 0.0)
        with Indexer(copy, store, stages=stages) as ix:
            start, cpu, child = time.perf_counter(), time.process_time(), worker_cpu()
            stats = ix.drain()
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu + worker_cpu() - child
        info = {
            "read": stats.read,
            "detection": engine.stats.as_dict() if engine else {},
            "worker": type(engine).__name__ if engine else None,
        }
        assert stats.shipped == stats.read and stats.stage_errors == 0, stats
        return elapsed, cpu, info
    finally:
        drop(store)
        shutil.rmtree(copy, ignore_errors=True)


def latency(
    kind: str, folder: Path, url: str | None, rate: float, seconds: float, geo: Path, conf: Path
) -> list[float]:
    """Milliseconds from each burst's fifth failure appended to its alert stored."""
    spool = folder / f"live-{uuid.uuid4().hex[:6]}"
    store = open_backend(kind, folder, url)
    stages = build_stages(store, settings_path=conf, geoip_city=geo)[0]
    alerts = detection_store(store)
    writer = SpoolWriter(spool, max_bytes=4 * 1024**3)
    stop = threading.Event()
    pending: dict[str, tuple[str, float]] = {}  # alert id → (account, appended at)
    samples: list[float] = []
    lock = threading.Lock()
    mix = Mix(seed=99)

    def write() -> None:
        burst, next_burst, sent, start = 0, time.monotonic(), 0, time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            due = int((now - start) * rate) - sent
            if due > 0:
                writer.append_many([orjson.dumps(mix.next()) for _ in range(min(due, 500))])
                sent += min(due, 500)
            if now >= next_burst:
                user = USERS + burst
                mix.home[user] = ("10.200.1", mix.uas[0])
                events = [
                    mix.event("user.signed_in", user, **{"event.outcome": "failure"})
                    for _ in range(5)
                ]
                writer.append_many([orjson.dumps(e) for e in events])
                appended = time.monotonic()
                ts = datetime.fromisoformat(events[-1]["@timestamp"])
                window = int(ts.timestamp() * 1000) // 3_600_000
                account = events[-1]["organization.id"]
                with lock:
                    pending[alert_id(account, "brute_force", f"u{user}", window)] = (
                        account,
                        appended,
                    )
                burst += 1
                next_burst += 0.25
            time.sleep(0.005)

    def poll() -> None:
        # Every 20 ms, one read of every pending alert (realtime by id on OpenSearch).
        while not stop.is_set() or pending:
            with lock:
                todo = list(pending.items())
            for aid, (account, appended) in todo:
                if alerts.get(account, aid) is not None:
                    samples.append((time.monotonic() - appended) * 1000)
                    with lock:
                        del pending[aid]
            if stop.is_set() and time.monotonic() > deadline:
                break
            time.sleep(0.02)

    ix = Indexer(spool, store, stages=stages)
    ix_stop = threading.Event()
    threads = [
        threading.Thread(target=ix.run, args=(ix_stop,), daemon=True),
        threading.Thread(target=write, daemon=True),
        threading.Thread(target=poll, daemon=True),
    ]
    deadline = float("inf")
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    deadline = time.monotonic() + 10
    writer.close()
    threads[2].join(20)
    ix_stop.set()
    threads[0].join(30)
    ix.close()
    missing = len(pending)
    drop(store)
    shutil.rmtree(spool, ignore_errors=True)
    if missing:
        raise RuntimeError(f"{missing} bursts raised no alert within 10 s")
    return samples


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--opensearch", default=None, help="also measure on this node")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--rate-fraction", type=float, default=0.5)
    args = parser.parse_args()

    result: dict[str, Any] = {
        "bench": "detect",
        "events": args.events,
        "target_ratio": 0.85,
        "target_p95_ms": 2000,
    }
    kinds = ["sqlite"] + (["opensearch"] if args.opensearch else [])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        geo = write_geo(folder)
        conf = folder / "detections.toml"
        conf.write_text(SETTINGS)
        spool = folder / "spool"
        fill(spool, args.events)
        for kind in kinds:
            runs: dict[str, list[float]] = {v: [] for v in VARIANTS}
            cpus: dict[str, list[float]] = {v: [] for v in VARIANTS}
            info: dict = {}
            for rnd in range(args.rounds):
                order = VARIANTS if rnd % 2 == 0 else tuple(reversed(VARIANTS))
                for variant in order:
                    elapsed, cpu, info_ = ship(
                        kind, spool, folder, args.opensearch, variant, geo, conf
                    )
                    runs[variant].append(elapsed)
                    cpus[variant].append(cpu)
                    info = info_ if variant == "detect" else info
                    print(
                        f"{kind} round {rnd + 1} {variant:>6}: "
                        f"{args.events / elapsed:,.0f} events/s, "
                        f"{cpu / args.events * 1e6:.1f} us CPU/event",
                        flush=True,
                    )
            best = {v: args.events / min(runs[v]) for v in VARIANTS}
            median = {v: args.events / statistics.median(runs[v]) for v in VARIANTS}
            # Per round, on / off of the two runs seconds apart (see the module doc).
            paired = [off / on for on, off in zip(runs["detect"], runs["geoip"], strict=True)]
            paired_cpu = [off / on for on, off in zip(cpus["detect"], cpus["geoip"], strict=True)]
            rate = best["geoip"] * args.rate_fraction
            samples = latency(kind, folder, args.opensearch, rate, args.latency_seconds, geo, conf)
            print(
                f"{kind} latency: {len(samples)} alerts at {rate:,.0f} events/s, "
                f"p50 {statistics.median(samples):.0f} ms, p95 {p95(samples):.0f} ms",
                flush=True,
            )
            result[kind] = {
                "bare_events_per_s": round(median["bare"]),
                "off_events_per_s": round(median["geoip"]),
                "on_events_per_s": round(median["detect"]),
                "ratio_detect_on_vs_off": round(statistics.median(paired), 3),
                "ratio_rounds": [round(r, 3) for r in paired],
                "ratio_cpu_on_vs_off": round(statistics.median(paired_cpu), 3),
                "cpu_us_per_event": {
                    v: round(statistics.median(cpus[v]) / args.events * 1e6, 1) for v in VARIANTS
                },
                "ratio_best_vs_best": round(best["detect"] / best["geoip"], 3),
                "ratio_detect_on_vs_bare": round(median["detect"] / median["bare"], 3),
                "ratio_geoip_vs_bare": round(median["geoip"] / median["bare"], 3),
                "detection_counters": info.get("detection", {}),
                "detection_runs_in": (
                    "a worker process" if info.get("worker") == "DetectionProcess" else "a thread"
                ),
                "findings_per_1000_events": round(
                    1000 * info.get("detection", {}).get("findings", 0) / args.events, 1
                ),
                "latency_load_events_per_s": round(rate),
                "alert_samples": len(samples),
                "alert_p50_ms": round(statistics.median(samples)),
                "alert_p95_ms": round(p95(samples)),
            }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
