"""Indexer throughput against plain ``opensearchpy.helpers.bulk``, same node, same run.

    python -m bench.indexer [--events 200000] [--url http://127.0.0.1:9250] [--rounds 2]

Both sides index the same documents into fresh indices with the same
template and the same chunk size. The indexer's clock includes everything it
really does — reading the spool, decoding, enriching (user agent, IP),
serialising and committing spool positions; the baseline's clock covers only
``helpers.bulk`` over documents prepared beforehand. Rounds alternate which
side goes first; each side's best round is compared.

Also measures user-agent parsing per new string with the Rust backend
(ua-parser-rs) and the pure-Python one. Last line: one JSON object.
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

from opensearchpy import OpenSearch, helpers

from useraudit.indexer.enrich import Enricher
from useraudit.middleware import context
from useraudit.middleware.recorder import Recorder
from useraudit.schema import nest
from useraudit.store.opensearch import OpenSearchStore

from ._data import ACTIONS, user_agents


def fill_spool(spool: str, events: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    uas = user_agents(300, rnd)
    rec = Recorder(spool, durability="batch", max_spool_bytes=8 * 1024**3)
    for i in range(events):
        token = context.current.set(
            context.RequestContext(
                client_ip=f"10.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}",
                user_agent=rnd.choice(uas),
                account_id=f"acc-{i % 7}",
                user={
                    "id": f"u{i % 500}",
                    "name": f"user{i % 500}",
                    "email": f"user{i % 500}@example.com",
                },
            )
        )
        try:
            rec.record(
                rnd.choice(ACTIONS),
                project=f"p{i % 40}",
                comments=f"changed setting {i % 97} from {rnd.random():.3f} to {rnd.random():.3f}",
            )
        finally:
            context.current.reset(token)
    rec.close()


def run_indexer(url: str, spool: str) -> tuple[float, list[dict], OpenSearchStore]:
    """Ship the spool with ``useraudit indexer run --once``, as in production: its own process.

    In this process the baseline's 200,000 prepared documents sit on the
    heap, and every garbage collection would walk them in the middle of the
    indexer's work; a process of its own is also how the indexer runs. The
    clock is the indexer's own (``elapsed_s``: from when its parser is built
    to the last acknowledged batch), so interpreter start-up is not counted.
    """
    prefix = f"bench-ix-{uuid.uuid4().hex[:6]}"
    store = OpenSearchStore(url, prefix=prefix)
    store.install()
    cmd = [
        sys.executable,
        "-m",
        "useraudit",
        "indexer",
        "run",
        "--once",
        "--spool",
        spool,
        "--store",
        f"{url}/?prefix={prefix}",
        "--batch",
        "2000",
        "--no-install",
    ]
    with tempfile.TemporaryDirectory() as home:
        done = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, "USERAUDIT_HOME": home}
        )
    if done.returncode != 0:
        raise RuntimeError(f"indexer failed: {done.stderr[-2000:]}")
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["shipped"] == stats["read"], stats
    return float(stats["elapsed_s"]), [], store


def run_raw(url: str, docs: list[dict]) -> tuple[float, OpenSearchStore]:
    store = OpenSearchStore(url, prefix=f"bench-raw-{uuid.uuid4().hex[:6]}")
    store.install()
    actions = [
        {
            "_op_type": "create",
            "_index": store.index_for(d),
            "_id": d["event.id"],
            "_source": nest(d),
        }
        for d in docs
    ]
    client = OpenSearch([url], timeout=120)
    start = time.perf_counter()
    ok, errors = helpers.bulk(client, actions, chunk_size=2000, max_chunk_bytes=8 * 1024 * 1024)
    elapsed = time.perf_counter() - start
    assert ok == len(docs) and not errors
    client.close()
    return elapsed, store


def ua_rates(count: int = 1500) -> dict[str, float]:
    import ua_parser
    from ua_parser import basic

    strings = user_agents(count, random.Random(3))
    out: dict[str, float] = {}
    matchers = ua_parser.load_builtins()
    candidates = {"python": basic.Resolver(matchers)}
    if ua_parser.RegexResolver is not None:
        candidates["rust"] = ua_parser.RegexResolver(matchers)
    for name, resolver in candidates.items():
        parser = ua_parser.Parser(resolver)
        parser.parse(strings[0])  # build lazily-compiled state before timing
        start = time.perf_counter()
        for s in strings:
            parser.parse(s)
        out[f"ua_{name}_us_per_new_string"] = round(
            (time.perf_counter() - start) / len(strings) * 1e6, 1
        )
    if "ua_rust_us_per_new_string" in out:
        out["ua_rust_speedup"] = round(
            out["ua_python_us_per_new_string"] / out["ua_rust_us_per_new_string"], 1
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--url", default="http://127.0.0.1:9250")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    indexer_runs: list[float] = []
    raw_runs: list[float] = []
    enricher = Enricher()
    for rnd in range(args.rounds):
        with tempfile.TemporaryDirectory() as spool:
            fill_spool(spool, args.events, seed=rnd)
            from useraudit.spool import iter_all

            docs = [enricher(json.loads(p)) for p in iter_all(spool)]
            order = ("indexer", "raw") if rnd % 2 == 0 else ("raw", "indexer")
            for side in order:
                if side == "indexer":
                    elapsed, _, store = run_indexer(args.url, spool)
                    indexer_runs.append(elapsed)
                else:
                    elapsed, store = run_raw(args.url, docs)
                    raw_runs.append(elapsed)
                store.refresh()
                assert store.count_all() == args.events
                store.uninstall()
                store.close()
                print(
                    f"round {rnd + 1} {side:8s}: {args.events / elapsed:,.0f} events/s", flush=True
                )
    indexer_eps = args.events / min(indexer_runs)
    raw_eps = args.events / min(raw_runs)
    result = {
        "bench": "indexer",
        "events": args.events,
        "indexer_events_per_s": round(indexer_eps),
        "raw_bulk_events_per_s": round(raw_eps),
        "ratio_indexer_vs_raw_bulk": round(indexer_eps / raw_eps, 3),
        "target_ratio": 0.9,
        **ua_rates(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
