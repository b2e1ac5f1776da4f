"""SQLite vs OpenSearch: the same events, the same queries, side by side.

    python -m bench.backends                     # 1,000,000 events
    python -m bench.backends --events 200000 --opensearch http://127.0.0.1:9250

Events are enriched once (:class:`~useraudit.indexer.enrich.Enricher`) and
each batch of 5,000 is written to both stores; ingest rates count only the
``write`` calls. Queries start once the node runs no segment merge. Accounts
are skewed (the largest holds 30 % of the events) and every query runs
against the largest one: the worst case. The query set
is what the admin UI sends — every request also computes all ten facets and
the exact total — plus count and export:

    recent      the landing page: account only
    fulltext    one word from the comments vocabulary
    phrase      a two-word phrase or a prefix, with an exclusion
    filters     period (30 days) + product + failure outcome
    history     one user as actor, modified user or impersonator
    ip          a /24 network
    deep        the page at offset ~10,000 via the cursor
    count       the number of a user's events (no page, no facets)

The last line is one JSON object with the figures and SQLite/OpenSearch
ratios (> 1 means SQLite takes longer, or ingests faster for ``ingest``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from useraudit.catalog import CATALOG
from useraudit.indexer.enrich import Enricher
from useraudit.store.base import Store
from useraudit.store.opensearch import OpenSearchStore
from useraudit.store.query import Query, SearchRequest, encode_cursor, to_ms
from useraudit.store.sqlite import SQLiteStore

ACTIONS = [a for a in CATALOG.actions() if a.product in ("common", "jaicp")]
WEIGHTS = [30, 20, 10, 10, 6, 6, 6, 4, 4, 4]
WORDS_EN = (
    "role permission token project channel label report export rule template variable session "
    "client bot task billing support telegram webhook password profile sign access admin viewer "
    "editor owner deploy staging production"
).split()
WORDS_RU = (
    "роль право токен проект канал метка отчёт правило шаблон переменная сессия клиент бот "
    "задача оплата поддержка пароль профиль доступ администратор оператор погода"
).split()
UAS = (
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{v}.0.0.0 Safari/537.36"
    ),
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.{m} Safari/605.1.15"
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.{m} Mobile/15E148 Safari/604.1"
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel {m}) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{v}.0.0.0 Mobile Safari/537.36"
    ),
)
END = datetime(2026, 11, 1, tzinfo=UTC)
SPAN = timedelta(days=365)


class Data:
    """Deterministic synthetic events for ``accounts`` tenants."""

    def __init__(self, events: int, accounts: int = len(WEIGHTS), seed: int = 7) -> None:
        self.events = events
        self.rnd = random.Random(seed)
        self.accounts = [f"acct-{i}" for i in range(accounts)]
        self.weights = (WEIGHTS * (accounts // len(WEIGHTS) + 1))[:accounts]
        self.users = {a: [f"{a}-user{j}" for j in range(500)] for a in self.accounts}
        self.projects = [f"p-{j}" for j in range(40)]
        rnd = self.rnd
        self.uas = [
            t.format(v=rnd.randrange(100, 131), m=rnd.randrange(1, 9))
            for t in UAS
            for _ in range(8)
        ]
        self.enrich = Enricher(clock=lambda: END.timestamp())

    def comments(self) -> str:
        rnd = self.rnd
        words = rnd.choices(WORDS_EN, k=rnd.randrange(4, 12))
        if rnd.random() < 0.3:
            words += rnd.choices(WORDS_RU, k=rnd.randrange(2, 6))
        rnd.shuffle(words)
        return f"{words[0].capitalize()} {' '.join(words[1:])} #{rnd.randrange(100000)}"

    def batches(self, size: int) -> Iterator[list[dict]]:
        rnd = self.rnd
        step = SPAN / max(self.events, 1)
        start = END - SPAN
        batch: list[dict] = []
        for i in range(self.events):
            account = rnd.choices(self.accounts, self.weights)[0]
            users = self.users[account]
            action = rnd.choice(ACTIONS)
            user = rnd.choice(users)
            event = {
                "event.id": f"{i:012x}{rnd.getrandbits(64):016x}",
                "@timestamp": (start + step * i)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                "event.action": action.code,
                "event.outcome": "failure" if rnd.random() < 0.05 else "success",
                "organization.id": account,
                "user.id": user,
                "user.name": user.split("-", 2)[-1] + "@" + account,
                "user.email": f"{user}@example.com",
                "source.address": (
                    f"10.{rnd.randrange(4)}.{rnd.randrange(256)}.{rnd.randrange(256)}"
                ),
                "user_agent.original": rnd.choice(self.uas),
                "audit.project.id": rnd.choice(self.projects),
                "audit.comments": self.comments(),
                "audit.params": {"n": rnd.randrange(100)},
            }
            if action.targets_user or rnd.random() < 0.1:
                target = rnd.choice(users)
                event.update(
                    {
                        "user.target.id": target,
                        "user.target.name": target.split("-", 2)[-1],
                        "user.target.email": f"{target}@example.com",
                    }
                )
            if rnd.random() < 0.03:
                admin = rnd.choice(users[:5])
                event.update(
                    {
                        "audit.impersonator.id": admin,
                        "audit.impersonator.name": "admin-" + admin,
                        "audit.impersonator.email": f"{admin}@example.com",
                    }
                )
            batch.append(self.enrich(event))
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch


def queries(data: Data, reps: int) -> dict[str, list[Query]]:
    """``reps`` variants of each query kind on the largest account."""
    rnd = random.Random(11)
    account = data.accounts[0]
    users = data.users[account]
    out: dict[str, list[Query]] = {
        k: [] for k in ("recent", "fulltext", "phrase", "filters", "history", "ip")
    }
    for _ in range(reps):
        out["recent"].append(Query(account))
        out["fulltext"].append(Query(account, text=rnd.choice(WORDS_EN + WORDS_RU)))
        a, b, c = rnd.sample(WORDS_EN, 3)
        out["phrase"].append(Query(account, text=rnd.choice([f'"{a} {b}" -{c}', f"{a[:3]}* -{c}"])))
        start = END - timedelta(days=rnd.randrange(30, 300))
        out["filters"].append(
            Query(
                account,
                start=start,
                end=start + timedelta(days=30),
                products=(rnd.choice(("common", "jaicp")),),
                outcomes=("failure",),
            )
        )
        out["history"].append(Query(account, history=(rnd.choice(users),)))
        out["ip"].append(Query(account, ips=(f"10.{rnd.randrange(4)}.{rnd.randrange(256)}.0/24",)))
    return out


CPU: dict[str, list[float]] = {}


def timed(fn: Callable[[], object], cpu: list[float] | None = None) -> float:
    """Wall milliseconds of ``fn()``; this process's CPU milliseconds go to ``cpu``."""
    c = time.process_time()
    t = time.perf_counter()
    fn()
    wall = (time.perf_counter() - t) * 1000
    if cpu is not None:
        cpu.append((time.process_time() - c) * 1000)
    return wall


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def wait_for_merges(client: object, limit_s: float = 300.0) -> float:
    """Seconds until no segment merge runs on the node (twice in a row), at most ``limit_s``."""
    t = time.perf_counter()
    quiet = 0
    while quiet < 2 and time.perf_counter() - t < limit_s:
        stats = client.nodes.stats(metric="indices", index_metric="merge")  # type: ignore[attr-defined]
        running = sum(n["indices"]["merges"]["current"] for n in stats["nodes"].values())
        quiet = quiet + 1 if running == 0 else 0
        time.sleep(1)
    return time.perf_counter() - t


def run_queries(
    store: Store,
    qs: dict[str, list[Query]],
    deep_cursor: str,
    account: str,
    count_users: list[str],
    cpu: dict[str, list[float]],
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for name, variants in qs.items():
        store.search(SearchRequest(variants[0]))  # warm
        cpu[name] = []
        out[name] = [timed(lambda q=q: store.search(SearchRequest(q)), cpu[name]) for q in variants]
    reps = len(qs["recent"])
    cpu["deep"], cpu["count"] = [], []
    out["deep"] = [
        timed(lambda: store.search(SearchRequest(Query(account), cursor=deep_cursor)), cpu["deep"])
        for _ in range(reps)
    ]
    out["count"] = [
        timed(lambda u=u: store.count(Query(account, users=(u,))), cpu["count"])
        for u in count_users[:reps]
    ]
    return out


def query_phase(sqlite: Store, opensearch: Store, data: Data, reps: int) -> dict:
    """Every query kind on both stores, the totals compared, and export rates."""
    account = data.accounts[0]
    qs = queries(data, reps)
    largest = sqlite.count(Query(account))
    # A cursor ~10,000 events deep (or half-way), valid on both: same data, same order.
    depth = min(10_000, largest // 2)
    deep = None
    for i, doc in enumerate(sqlite.iterate(Query(account), batch_size=5000)):
        if i == depth - 1:
            deep = encode_cursor(to_ms(datetime.fromisoformat(doc["@timestamp"])), doc["event.id"])
            break
    count_users = random.Random(3).sample(data.users[account], reps)
    same = {
        name: (
            sqlite.search(SearchRequest(v[0])).total,
            opensearch.search(SearchRequest(v[0])).total,
        )
        for name, v in qs.items()
    }
    cpu: dict[str, dict[str, list[float]]] = {"sqlite": {}, "opensearch": {}}
    lat = {
        "sqlite": run_queries(sqlite, qs, deep, account, count_users, cpu["sqlite"]),
        "opensearch": run_queries(opensearch, qs, deep, account, count_users, cpu["opensearch"]),
    }
    export = {}
    for name, store in (("sqlite", sqlite), ("opensearch", opensearch)):
        t = time.perf_counter()
        n = sum(1 for _ in store.iterate(Query(data.accounts[-1]), batch_size=5000))
        export[name] = n / (time.perf_counter() - t)
    return {"largest": largest, "same": same, "lat": lat, "cpu": cpu, "export": export}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=30, help="variants per query kind")
    parser.add_argument(
        "--opensearch", default=os.environ.get("USERAUDIT_TEST_OPENSEARCH", "http://127.0.0.1:9250")
    )
    parser.add_argument(
        "--sqlite", type=Path, default=None, help="database file (default: a temporary one)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the SQLite file and the OpenSearch indices"
    )
    parser.add_argument("--query-phase", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.query_phase:  # the child the run below starts
        sqlite = SQLiteStore(f"sqlite:///{args.sqlite}")
        opensearch = OpenSearchStore(args.opensearch, prefix=args.prefix, timeout=120)
        try:
            print(json.dumps(query_phase(sqlite, opensearch, Data(args.events), args.reps)))
        finally:
            sqlite.close()
            opensearch.close()
        return 0

    tmp = tempfile.TemporaryDirectory(prefix="bench-backends-")
    path = args.sqlite or Path(tmp.name) / "audit.db"
    if path.exists():
        sys.exit(f"{path} exists; pass a new file")
    sqlite = SQLiteStore(f"sqlite:///{path}")
    sqlite.install()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    opensearch = OpenSearchStore(args.opensearch, prefix=prefix, timeout=120)
    opensearch.install()
    data = Data(args.events)
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    try:
        spent = {"sqlite": 0.0, "opensearch": 0.0}
        sqlite_cpu = 0.0
        load_before = os.getloadavg()[0]
        written = 0
        t_all = time.perf_counter()
        for batch in data.batches(args.batch):
            for name, store in (("sqlite", sqlite), ("opensearch", opensearch)):
                c = time.process_time()
                t = time.perf_counter()
                results = store.write(batch)
                spent[name] += time.perf_counter() - t
                if name == "sqlite":
                    sqlite_cpu += time.process_time() - c
                bad = [r for r in results if not r.delivered]
                if bad:
                    raise SystemExit(f"{name}: {len(bad)} not stored, e.g. {bad[0]}")
            written += len(batch)
            if written % (args.batch * 20) == 0:
                log(f"  {written:,} written ({time.perf_counter() - t_all:.0f}s)")
        t = time.perf_counter()
        opensearch.refresh()
        spent["opensearch"] += time.perf_counter() - t
        ingest = {k: written / v for k, v in spent.items()}
        db_mb = sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6
        os_mb = (
            sum(
                float(i["store.size"])
                for i in opensearch.client.cat.indices(
                    index=f"{prefix}-events-*", format="json", bytes="b"
                )
            )
            / 1e6
        )

        # Searches are served by the admin UI's process, not by the process
        # that wrote a million events: a common-word SQLite search took p50
        # ~300 ms in the writing process and ~235 ms in a fresh one on the
        # same file (the Python heap a long ingest leaves behind). So the
        # queries run in a child process, for both backends alike, once the
        # node runs no segment merge.
        merging = wait_for_merges(opensearch.client)
        log(f"  node merges finished after {merging:.0f}s; queries in a new process")
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.backends",
                "--query-phase",
                "--events",
                str(args.events),
                "--reps",
                str(args.reps),
                "--opensearch",
                args.opensearch,
                "--sqlite",
                str(path),
                "--prefix",
                prefix,
            ],
            stdout=subprocess.PIPE,
            check=True,
            text=True,
        )
        phase = json.loads(child.stdout.strip().splitlines()[-1])
        largest, same, lat, cpu, export = (
            phase[k] for k in ("largest", "same", "lat", "cpu", "export")
        )
        load_after = os.getloadavg()[0]
    finally:
        if not args.keep:
            opensearch.uninstall()
        opensearch.close()
        sqlite.close()
        if not args.keep:
            tmp.cleanup()

    print(
        f"\n{written:,} events, {len(data.accounts)} accounts; "
        f"queries on the largest ({largest:,} events); "
        f"load average {load_before:.1f} → {load_after:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"{'':<12}{'SQLite':>24}{'OpenSearch':>24}{'ratio':>8}")
    print(
        f"{'ingest/s':<12}{ingest['sqlite']:>24,.0f}{ingest['opensearch']:>24,.0f}"
        f"{ingest['sqlite'] / ingest['opensearch']:>8.2f}"
    )
    print(
        f"{'export/s':<12}{export['sqlite']:>24,.0f}{export['opensearch']:>24,.0f}"
        f"{export['sqlite'] / export['opensearch']:>8.2f}"
    )
    print(f"{'ingest/cpu-s':<12}{written / sqlite_cpu:>24,.0f}{'(Java process)':>24}")
    print(f"{'size MB':<12}{db_mb:>24,.0f}{os_mb:>24,.0f}{db_mb / os_mb:>8.2f}")
    print(f"{'ms p50/p95':<12}{'(SQLite CPU p95)':>40}")
    ratios = {}
    for name in lat["sqlite"]:
        s, o = lat["sqlite"][name], lat["opensearch"][name]
        ratios[name] = round(pct(s, 0.95) / pct(o, 0.95), 2)
        print(
            f"  {name:<10}{pct(s, 0.5):>14.1f} /{pct(s, 0.95):>7.1f}"
            f"{pct(o, 0.5):>16.1f} /{pct(o, 0.95):>7.1f}"
            f"{ratios[name]:>8.2f}   ({pct(cpu['sqlite'][name], 0.95):.1f})"
        )
    mismatched = {k: v for k, v in same.items() if v[0] != v[1]}
    if mismatched:
        print(f"totals differ (sqlite, opensearch): {mismatched}")
    result = {
        "bench": "backends",
        "events": written,
        "accounts": len(data.accounts),
        "largest_account": largest,
        "ingest_per_s": {k: round(v) for k, v in ingest.items()},
        "sqlite_ingest_per_cpu_s": round(written / sqlite_cpu),
        "sqlite_cpu_p95_ms": {k: round(pct(v, 0.95), 1) for k, v in cpu["sqlite"].items()},
        "loadavg": [round(load_before, 1), round(load_after, 1)],
        "merge_wait_s": round(merging, 1),
        "cpus": os.cpu_count(),
        "export_per_s": {k: round(v) for k, v in export.items()},
        "size_mb": {"sqlite": round(db_mb, 1), "opensearch": round(os_mb, 1)},
        "p50_ms": {b: {k: round(pct(v, 0.5), 1) for k, v in lat[b].items()} for b in lat},
        "p95_ms": {b: {k: round(pct(v, 0.95), 1) for k, v in lat[b].items()} for b in lat},
        "ratio_sqlite_vs_opensearch": {
            "ingest": round(ingest["sqlite"] / ingest["opensearch"], 2),
            "export": round(export["sqlite"] / export["opensearch"], 2),
            "p95": ratios,
        },
        "sqlite_targets": {
            "ingest_20k_per_s": ingest["sqlite"] >= 20_000,
            "ingest_20k_per_cpu_s": written / sqlite_cpu >= 20_000,
            "search_p95_300ms": max(pct(v, 0.95) for k, v in lat["sqlite"].items()) <= 300,
        },
        "totals_match": not mismatched,
    }
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
