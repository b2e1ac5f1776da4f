"""Indexer throughput with three live sinks attached against the indexer alone, same run.

    python -m bench.sinks [--events 50000] [--rounds 2] [--url http://127.0.0.1:9250]

Both sides ship the same spool with ``useraudit indexer run --once`` in a
process of its own into fresh indices of the same node. The "sinks" side adds
``--sinks`` with an HTTPS webhook (a receiver in this process that checks each
signature), syslog over TCP to a real rsyslogd and a real Kafka 4 broker
(KRaft), all on loopback and all on this machine's CPUs. The figure compared
is the indexer's own clock (``elapsed_s``, until its last batch is stored and
queued for every sink); how long the sinks then took to deliver the rest is
reported beside it (``sinks_wait_s``). Rounds alternate which side goes
first; each side's best round is compared. Last line: one JSON object.
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

from tests.support.kafka import KafkaBroker
from tests.support.receivers import WebhookReceiver
from tests.support.rsyslog import Rsyslog
from tests.support.tls import make_certificates
from useraudit.store.opensearch import OpenSearchStore

from .indexer import fill_spool

SECRET = "bench-secret-0123456789abcdef"


def run(url: str, spool: Path, sinks: Path | None) -> dict:
    prefix = f"bench-sinks-{uuid.uuid4().hex[:6]}"
    store = OpenSearchStore(url, prefix=prefix)
    store.install()
    cmd = [
        sys.executable, "-m", "useraudit", "indexer", "run", "--once", "--spool", str(spool),
        "--store", f"{url}/?prefix={prefix}", "--batch", "2000", "--no-install",
    ]  # fmt: skip
    if sinks is not None:
        cmd += ["--sinks", str(sinks), "--sink-wait", "600"]
    try:
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "USERAUDIT_HOME": home, "BENCH_SINK_SECRET": SECRET}
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"indexer failed: {done.stderr[-2000:]}")
        lines = done.stdout.strip().splitlines()
        out = json.loads(lines[-1])
        if sinks is not None:
            out.update(json.loads(lines[-2]))
        store.refresh()
        out["stored"] = store.count_all()
    finally:
        store.uninstall()
        store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--url", default="http://127.0.0.1:9250")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        certs = make_certificates(root / "tls")
        receiver = WebhookReceiver(SECRET.encode(), certs.cert, certs.key, keep_events=False)
        rsyslog = Rsyslog(root / "rsyslog")
        kafka = KafkaBroker(root / "kafka")
        try:
            rsyslog.start()
            kafka.start()
            source = root / "source-spool"
            fill_spool(str(source), args.events)
            alone: list[float] = []
            with_sinks: list[dict] = []
            for rnd in range(args.rounds):
                order = ("alone", "sinks") if rnd % 2 == 0 else ("sinks", "alone")
                for side in order:
                    spool = root / f"spool-{rnd}-{side}"
                    shutil.copytree(source, spool)
                    config = None
                    if side == "sinks":
                        config = root / f"sinks-{rnd}.toml"
                        config.write_text(
                            f'[sinks.hook]\ntype = "webhook"\nurl = "{receiver.url}"\n'
                            f'secret_env = "BENCH_SINK_SECRET"\nca_file = "{certs.ca}"\n\n'
                            f'[sinks.syslog]\ntype = "syslog"\nhost = "127.0.0.1"\n'
                            f"port = {rsyslog.port}\n\n"
                            f'[sinks.kafka]\ntype = "kafka"\n'
                            f'bootstrap_servers = "{kafka.bootstrap}"\n'
                            f'topic = "bench-{rnd}"\n'
                        )
                    stats = run(args.url, spool, config)
                    assert stats["stored"] == args.events, stats
                    eps = args.events / stats["elapsed_s"]
                    if side == "alone":
                        alone.append(eps)
                    else:
                        delivered = {s["sink"]: s["delivered"] for s in stats["sinks"]}
                        assert all(v == args.events for v in delivered.values()), delivered
                        with_sinks.append({"eps": eps, "sinks_wait_s": stats["sinks_wait_s"]})
                    shutil.rmtree(spool)
                    print(f"round {rnd + 1} {side:6s}: {eps:,.0f} events/s", flush=True)
            best = max(with_sinks, key=lambda r: r["eps"])
            webhook_count = receiver.count
        finally:
            receiver.close()
            rsyslog.stop()
            kafka.stop()
    result = {
        "bench": "sinks",
        "events": args.events,
        "indexer_alone_events_per_s": round(max(alone)),
        "indexer_with_3_sinks_events_per_s": round(best["eps"]),
        "ratio_with_sinks_vs_alone": round(best["eps"] / max(alone), 3),
        "target_ratio": 0.8,
        "sinks_wait_after_indexer_s": best["sinks_wait_s"],
        "webhook_events_received": webhook_count,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
