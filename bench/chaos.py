"""End-to-end zero-loss chaos run: requests in, faults injected, every event out exactly once.

    python -m bench.chaos [--requests 100000] [--faults 3] [--concurrency 16]

What runs, all on 127.0.0.1:

* a dedicated OpenSearch node (``useraudit opensearch start``, own home and port);
* the Flask host app under gunicorn (4 workers) and the FastAPI app under
  uvicorn, both in ``sync`` durability, appending to one spool
  (``bench/_chaos_apps.py``);
* one indexer process (``useraudit indexer run``);
* a load generator: each request ``POST /event/<id>`` carries an id chosen
  here; a 200 is an acknowledgement. A request that fails (a worker killed
  under it, say) is retried with the same id until acknowledged, so every id
  ends up acknowledged and the store must hold exactly that set.

Faults, spread over the run: the OpenSearch node stopped and restarted
``--faults`` times, the indexer killed with -9 ``--faults`` times (restarted
at once), one gunicorn worker killed with -9 (gunicorn replaces it).

Checked at the end: ids in OpenSearch == ids acknowledged (no loss), no id
twice (no duplicates across indices), dead letters == 0. Printed: counts,
requests/s, retries, and the largest delivery lag seen (ack → searchable,
sampled each second). Last line: one JSON object; exit status 1 on any
mismatch.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from useraudit.devnode import node as devnode
from useraudit.indexer.deadletter import DeadLetters
from useraudit.store.opensearch import OpenSearchStore

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_node_port() -> int:
    """A free port in the range the dev node accepts (9200-9299), from the top."""
    for candidate in reversed(devnode.PORT_RANGE):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", candidate)) != 0:
                return candidate
    raise RuntimeError("no free port in 9200-9299 for the chaos node")


def wait_http(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Acks:
    times: dict[str, float] = field(default_factory=dict)
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Processes:
    """Everything the run starts, by PID, so it stops exactly those."""

    def __init__(self, workdir: Path, spool: Path, store_url: str) -> None:
        self.workdir = workdir
        self.spool = spool
        self.store_url = store_url
        self.env = {
            **os.environ,
            "USERAUDIT_SPOOL": str(spool),
            "USERAUDIT_HOME": str(workdir),
            "PYTHONPATH": str(REPO),
        }
        self.procs: dict[str, subprocess.Popen] = {}
        self.flask_port = free_port()
        self.fastapi_port = free_port()

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        log.close()
        self.procs[name] = proc
        return proc

    def start_apps(self) -> None:
        bin_dir = Path(sys.executable).parent
        self._spawn(
            "gunicorn",
            [
                str(bin_dir / "gunicorn"),
                "-w",
                "4",
                "-b",
                f"127.0.0.1:{self.flask_port}",
                "--graceful-timeout",
                "5",
                "bench._chaos_apps:flask_app()",
            ],
        )
        self._spawn(
            "uvicorn",
            [
                str(bin_dir / "uvicorn"),
                "--factory",
                "bench._chaos_apps:fastapi_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.fastapi_port),
                "--no-proxy-headers",
                "--log-level",
                "warning",
            ],
        )
        wait_http(self.flask_port)
        wait_http(self.fastapi_port)

    def start_indexer(self) -> None:
        self._spawn(
            "indexer",
            [
                sys.executable,
                "-m",
                "useraudit",
                "indexer",
                "run",
                "--spool",
                str(self.spool),
                "--store",
                self.store_url,
                "--batch",
                "1000",
                "--no-install",
            ],
        )

    def kill_indexer(self) -> None:
        proc = self.procs["indexer"]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def kill_a_gunicorn_worker(self) -> int:
        master = self.procs["gunicorn"].pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        victim = int(children[0])
        os.kill(victim, signal.SIGKILL)
        return victim

    def stop_all(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM if name != "indexer" else signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def load(ports: list[int], ids: queue.Queue, acks: Acks, stop: threading.Event) -> None:
    conns: dict[int, http.client.HTTPConnection] = {}
    try:
        while not stop.is_set():
            try:
                event_id = ids.get_nowait()
            except queue.Empty:
                return
            _send_until_acknowledged(ports, event_id, conns, acks, stop)
    finally:
        for conn in conns.values():
            conn.close()


def _send_until_acknowledged(
    ports: list[int],
    event_id: str,
    conns: dict[int, http.client.HTTPConnection],
    acks: Acks,
    stop: threading.Event,
) -> None:
    port = ports[int(event_id[-1], 16) % len(ports)]
    while not stop.is_set():
        conn = conns.get(port) or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conns[port] = conn
        try:
            conn.request("POST", f"/event/{event_id}", headers={"Content-Length": "0"})
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                with acks.lock:
                    acks.times[event_id] = time.monotonic()
                return
        except (OSError, http.client.HTTPException):
            conn.close()
            conns.pop(port, None)
        with acks.lock:
            acks.retries += 1
        time.sleep(0.05)  # same id again: idempotent by event id


def run(
    requests: int,
    faults: int,
    concurrency: int = 16,
    workdir: Path | None = None,
    port: int | None = None,
    echo: Any = print,
) -> dict[str, Any]:
    own_workdir = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="useraudit-chaos-"))
    spool = workdir / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    node_home = workdir / "opensearch"
    port = port or free_node_port()
    echo(f"starting a dedicated OpenSearch node on 127.0.0.1:{port}")
    devnode.start(port=port, home=node_home, echo=lambda *_: None)
    store_url = f"http://127.0.0.1:{port}/?prefix=chaos"
    store = OpenSearchStore(store_url, timeout=10)
    store.install()
    procs = Processes(workdir, spool, store_url)
    acks = Acks()
    stop = threading.Event()
    lag = {"max_s": 0.0}
    try:
        procs.start_apps()
        procs.start_indexer()
        rnd = random.Random(5)
        ids: queue.Queue = queue.Queue()
        for i in range(requests):
            ids.put(f"{i:012x}{rnd.getrandbits(80):020x}")
        threads = [
            threading.Thread(
                target=load, args=([procs.flask_port, procs.fastapi_port], ids, acks, stop)
            )
            for _ in range(concurrency)
        ]
        started = time.monotonic()
        for t in threads:
            t.start()

        def watch_lag() -> None:
            while not stop.is_set():
                time.sleep(1)
                try:
                    store.refresh()
                    stored = store.count_all()
                except Exception:  # noqa: BLE001 - the node is down on purpose now and then
                    stored = None
                with acks.lock:
                    times = sorted(acks.times.values())
                if stored is not None and stored < len(times):
                    lag["max_s"] = max(lag["max_s"], time.monotonic() - times[stored])

        watcher = threading.Thread(target=watch_lag, daemon=True)
        watcher.start()

        # Fault schedule: fractions of the acknowledged requests.
        schedule: list[tuple[float, str]] = [(0.15, "worker")]
        for k in range(faults):
            schedule.append((0.25 + 0.6 * k / max(faults, 1), "indexer"))
            schedule.append((0.35 + 0.6 * k / max(faults, 1), "node"))
        schedule.sort()
        log: list[str] = []
        for fraction, fault in schedule:
            while len(acks.times) < fraction * requests and any(t.is_alive() for t in threads):
                time.sleep(0.05)
            t0 = time.monotonic()
            at = len(acks.times)
            if fault == "worker":
                pid = procs.kill_a_gunicorn_worker()
                log.append(f"killed gunicorn worker {pid} (-9) at {at} acks")
            elif fault == "indexer":
                procs.kill_indexer()
                procs.start_indexer()
                log.append(f"killed the indexer (-9) and restarted it at {at} acks")
            else:
                devnode.stop(home=node_home, echo=lambda *_: None)
                time.sleep(2)
                devnode.start(port=port, home=node_home, echo=lambda *_: None)
                log.append(
                    f"stopped and restarted OpenSearch at {at} acks "
                    f"({time.monotonic() - t0:.0f} s down)"
                )
            echo(log[-1])
        for t in threads:
            t.join()
        load_seconds = time.monotonic() - started
        echo(
            f"{len(acks.times)} requests acknowledged in {load_seconds:.1f}s "
            f"({acks.retries} retries)"
        )

        deadline = time.monotonic() + 600
        stored_ids: list[str] = []
        while time.monotonic() < deadline:
            store.refresh()
            if store.count_all() >= len(acks.times):
                break
            time.sleep(1)
        time.sleep(2)  # let a late duplicate show up if there were one
        store.refresh()
        stored_ids = store.all_ids()
        stop.set()
        procs.stop_all()
        dead = DeadLetters(spool / "deadletter.sqlite")
        dead_letters = dead.count()
        dead.close()
        acked = set(acks.times)
        stored = set(stored_ids)
        result = {
            "bench": "chaos",
            "requests": requests,
            "acknowledged": len(acked),
            "stored": len(stored_ids),
            "missing": len(acked - stored),
            "unexpected": len(stored - acked),
            "duplicates": len(stored_ids) - len(stored),
            "dead_letters": dead_letters,
            "retried_requests": acks.retries,
            "requests_per_s": round(len(acked) / load_seconds, 1),
            "max_delivery_lag_s": round(lag["max_s"], 1),
            "faults": log,
            "ok": acked == stored
            and len(stored_ids) == len(stored)
            and dead_letters == 0
            and len(acked) == requests,
        }
        return result
    finally:
        stop.set()
        procs.stop_all()
        store.close()
        devnode.stop(home=node_home, echo=lambda *_: None)
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--faults", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--port", type=int, default=None, help="port for the dedicated node (default: free)"
    )
    args = parser.parse_args()
    result = run(args.requests, args.faults, args.concurrency, port=args.port)
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
