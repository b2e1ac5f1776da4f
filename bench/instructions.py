"""Instructions per request under the real servers, counted by callgrind:
``python -m bench.instructions`` (valgrind from Debian; peers: ``pip install -e '.[bench]'``).

``bench.middleware`` measures req/s with wrk. On a shared machine its
rounds move by a few per cent, more than a request that records nothing
costs, so a change of 0.5 % in that path cannot be seen there. Valgrind's
callgrind counts the instructions a process executes instead: under
gunicorn, one request at a time, the same count on every run. Under uvicorn,
with eight connections kept alive, how many requests the event loop takes
per wakeup depends on timing, and a configuration's count moves by about
0.5 % from run to run (bare: 557.7k, 559.4k and 564.7k in three runs).

Each configuration of ``bench.middleware`` (bare, quiet, record, the peers
and, with ``--floor``, the floor apps) is served by gunicorn (sync worker)
and by uvicorn (h11 on asyncio) running inside callgrind; ``--servers``
adds ``uvicorn-standard`` (uvloop and httptools, as ``uvicorn[standard]``).
After a warm-up, the worker's counters are zeroed, exactly ``-n`` requests
are made (over one connection under gunicorn, whose sync worker closes each
one, and eight kept alive under uvicorn, like wrk's eight) and the counters
are dumped. Figures per configuration: instructions per request; ``ratio``, bare's count over its
count (the × bare that req/s would show if time followed instructions);
``overhead``, its count over bare's − 1; the simulated first-level cache misses per request
(instruction and data), which instruction counts leave out; estimated
cycles per request and their ratio (``cycle_ratio``), which weigh those
misses in (see :func:`estimated_cycles`); and, as in ``bench.middleware``,
recording's overhead as a share of the cheapest peer's.

What the counts do not show, and why ``bench.middleware`` stays the target's
measure: time is not instructions (a cache miss costs tens of instructions'
time, and the kernel's network work is not counted). And under valgrind
the server runs some 50 times slower, so work done on a timer weighs 50
times more per request than at full speed: the proxy watch's counts file
every 10 s, the spool's flush 20 times a second, gunicorn's heartbeat. For
useraudit's configurations the counts are an upper bound.

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.middleware import (
    PEERS,
    ROOT,
    UA,
    _free_port,
    _stop,
    add_server_arguments,
    baseline,
    checked_servers,
    children,
    chosen,
    server_command,
)

CONNECTIONS = {"gunicorn": 1, "uvicorn": 8, "uvicorn-standard": 8}
# The caches simulated: this machine's first-level caches (AMD EPYC: 32 KiB,
# 8-way, per core) and, as the last level, its private 512 KiB L2 rather than
# the L3 that other tenants share; valgrind's own guess here is a 256 MiB
# direct-mapped cache. Fixed, so the counts are the same on any machine.
CACHES = ("--I1=32768,8,64", "--D1=32768,8,64", "--LL=524288,8,64")
# Weights of estimated_cycles: a first-level hit, a last-level hit, a miss of both.
L1_HIT, LL_HIT, RAM = 1, 5, 35
HASH_SEED = "0"  # the same dict layouts in every run, so the same counts


REQUEST = (f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {UA}\r\n\r\n").encode()


async def _requests(port: int, total: int, connections: int) -> None:
    """Exactly ``total`` requests over ``connections`` connections, reopened when closed."""
    left = [total]

    async def one_connection() -> None:
        reader = writer = None
        while left[0] > 0:
            left[0] -= 1
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert reader is not None
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"the server answered {head[:60]!r}")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            if re.search(rb"(?i)connection:\s*close", head):
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))


def _control(flag: str, pids: list[int]) -> None:
    for pid in pids:
        subprocess.run(["callgrind_control", flag, str(pid)], capture_output=True, check=False)


def _totals(path: Path) -> dict[str, int]:
    text = path.read_text(errors="replace")
    events = re.search(r"^events: (.*)$", text, re.M)
    totals = re.search(r"^(?:summary|totals): (.*)$", text, re.M)
    if not events or not totals:
        raise RuntimeError(f"no totals in {path}")
    return dict(zip(events.group(1).split(), map(int, totals.group(1).split()), strict=False))


def estimated_cycles(counts: dict[str, int]) -> float:
    """Cycles a callgrind count stands for: every instruction fetch and data access
    weighed by where the cache simulation found it.

    The weights (1, 5, 35) are Itamar Turner-Trauring's, from "Consistent
    benchmarking in CI" (pythonspeed.com), the model the iai benchmark
    harness uses too. Branch mispredictions and the kernel's work stay out.
    """
    accesses = counts["Ir"] + counts["Dr"] + counts["Dw"]
    l1_misses = counts["I1mr"] + counts["D1mr"] + counts["D1mw"]
    ll_misses = counts["ILmr"] + counts["DLmr"] + counts["DLmw"]
    return L1_HIT * (accesses - l1_misses) + LL_HIT * (l1_misses - ll_misses) + RAM * ll_misses


def measure(kind: str, target: str, requests: int, warmup: int, spool: Path) -> dict[str, float]:
    """Instructions and first-level cache misses per request of one configuration."""
    out = Path(tempfile.mkdtemp(prefix="callgrind-"))
    port = _free_port()
    env = {
        **os.environ,
        "USERAUDIT_SPOOL": str(spool),
        "PYTHONPATH": str(ROOT),
        "PYTHONHASHSEED": HASH_SEED,
    }
    proc = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--trace-children=yes",
            "--cache-sim=yes",
            *CACHES,
            f"--callgrind-out-file={out}/cg.%p",
            *server_command(kind, target, port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while True:  # valgrind starts a Python server in tens of seconds
            try:
                asyncio.run(_requests(port, 1, 1))
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} {target} did not start under valgrind") from None
                time.sleep(0.5)
        connections = CONNECTIONS[kind]
        asyncio.run(_requests(port, warmup, connections))
        pids = [proc.pid, *children(proc.pid)]
        _control("-z", pids)
        asyncio.run(_requests(port, requests, connections))
        _control("-d", pids)
    finally:
        _stop(proc, timeout=60)  # valgrind writes its last dump on the way out
    dumps = [_totals(p) for p in out.glob("cg.*.1")]
    shutil.rmtree(out, ignore_errors=True)
    if not dumps:
        raise RuntimeError(f"callgrind wrote no dump for {kind} {target}")
    worker = max(dumps, key=lambda d: d.get("Ir", 0))  # gunicorn's master idles meanwhile
    return {
        "instructions": worker["Ir"] / requests,
        "i1_misses": worker["I1mr"] / requests,
        "d1_misses": (worker["D1mr"] + worker["D1mw"]) / requests,
        "cycles": estimated_cycles(worker) / requests,
    }


def relate(figures: dict[str, dict[str, Any]]) -> None:
    """Give each configuration's counts their ratios against its baseline (bare's, or
    app_bare's for app_quiet), then round the counts for printing."""
    for name, f in figures.items():
        f["baseline"] = baseline(name)
        base = figures[f["baseline"]]
        f["ratio"] = round(base["instructions"] / f["instructions"], 4)
        f["overhead"] = round(f["instructions"] / base["instructions"] - 1, 4)
        f["cycle_ratio"] = round(base["cycles"] / f["cycles"], 4)
    for f in figures.values():  # after every ratio: a baseline's counts are used unrounded
        for key in ("instructions", "i1_misses", "d1_misses", "cycles"):
            f[key] = round(f[key], 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="requests counted per configuration")
    parser.add_argument("--warmup", type=int, default=300, help="requests before counting")
    add_server_arguments(parser)
    parser.add_argument(
        "--only", default="", help="comma-separated configurations (bare is always run)"
    )
    parser.add_argument("--floor", action="store_true", help="also the floor apps")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit(
            "bench.instructions counts instructions with valgrind's callgrind, which is not "
            "installed: apt-get install valgrind (make bench-deps does)"
        )
    servers = checked_servers(args.servers, args.only, args.floor, args.apps)
    result: dict[str, Any] = {"requests": args.n, "warmup": args.warmup}
    spool = Path(tempfile.mkdtemp(prefix="useraudit-bench-"))
    try:
        for kind in servers:
            configs = chosen(kind, args.only, args.floor, args.apps)
            del configs["bare_again"]  # counts repeat closely: one bare is enough
            figures = {}
            for name, target in configs.items():
                figures[name] = measure(kind, target, args.n, args.warmup, spool / kind / name)
                print(
                    f"{kind:16} {name:12} {figures[name]['instructions']:>10,.0f} "
                    f"instructions/request, {figures[name]['cycles']:>10,.0f} estimated cycles",
                    flush=True,
                )
            relate(figures)
            for name, f in figures.items():
                result[f"{kind}_{name}_ratio"] = f["ratio"]
                result[f"{kind}_{name}_cycle_ratio"] = f["cycle_ratio"]
            result[kind] = figures
            peers = [p for p in PEERS if p in figures and figures[p]["overhead"] > 0]
            if "record" in figures and peers:
                cheapest = min(peers, key=lambda p: figures[p]["overhead"])
                result[f"{kind}_cheapest_peer"] = cheapest
                result[f"{kind}_record_share_of_cheapest_peer"] = round(
                    figures["record"]["overhead"] / figures[cheapest]["overhead"], 3
                )
                # The same share by estimated cycles (overhead: bare's over its ratio − 1).
                cycle_cheapest = max(peers, key=lambda p: figures[p]["cycle_ratio"])
                result[f"{kind}_record_cycle_share_of_cheapest_peer"] = round(
                    (1 / figures["record"]["cycle_ratio"] - 1)
                    / (1 / figures[cycle_cheapest]["cycle_ratio"] - 1),
                    3,
                )
            print(
                f"{kind}: "
                + ", ".join(
                    f"{name} ×{f['ratio']:.3f}"
                    + (f" of {f['baseline']}" if f["baseline"] != "bare" else "")
                    + f" (cycles ×{f['cycle_ratio']:.3f})"
                    for name, f in figures.items()
                ),
                flush=True,
            )
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
