"""Fixtures for capture tests: the example apps under their real servers.

``live_app`` starts an example (gunicorn for Flask and Django, uvicorn for
FastAPI) on a free 127.0.0.1 port with its own spool, and stops it by the
PID we started — SIGTERM, so batch spools flush, or SIGKILL when a test
asks for it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent

CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)


@dataclass
class LiveApp:
    kind: str
    url: str
    proc: subprocess.Popen
    spool: Path
    log: Path
    stopped: bool = field(default=False)

    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.url, **kwargs)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server we started, by its PID (and its workers' for SIGKILL)."""
        if self.stopped:
            return
        self.stopped = True
        if sig == signal.SIGKILL:
            for pid in [*children(self.proc.pid), self.proc.pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        else:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@pytest.fixture(scope="session")
def django_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Django example's SQLite database, migrated and with its users."""
    db = tmp_path_factory.mktemp("django") / "example.sqlite3"
    env = {
        **os.environ,
        "EXAMPLE_DB": str(db),
        "PYTHONPATH": str(EXAMPLES),
        "DJANGO_SETTINGS_MODULE": "django_app.settings",
    }
    subprocess.run(
        [sys.executable, "-m", "django_app.setup_db"],
        cwd=EXAMPLES,
        env=env,
        check=True,
        timeout=120,
    )
    return db


@pytest.fixture
def live_app(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A factory: ``live_app(kind, workers=1, durability="batch", trusted_proxies=1)``."""
    started: list[LiveApp] = []

    def start(
        kind: str,
        *,
        workers: int = 1,
        durability: str = "batch",
        trusted_proxies: int = 1,
        spool: Path | None = None,
    ) -> LiveApp:
        port = free_port()
        spool = spool or tmp_path / f"spool-{kind}-{port}"
        spool.mkdir(exist_ok=True)
        log = tmp_path / f"{kind}-{port}.log"
        env = {
            **os.environ,
            "USERAUDIT_SPOOL": str(spool),
            "USERAUDIT_DURABILITY": durability,
            "USERAUDIT_TRUSTED_PROXIES": str(trusted_proxies),
            "PYTHONPATH": str(EXAMPLES),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        bind = f"127.0.0.1:{port}"
        gunicorn = [
            str(BIN / "gunicorn"),
            "-w",
            str(workers),
            "-b",
            bind,
            "--chdir",
            str(EXAMPLES),
            "--graceful-timeout",
            "10",
        ]
        if kind == "flask":
            cmd = [*gunicorn, "flask_app.app:create_app()"]
        elif kind == "django":
            env["EXAMPLE_DB"] = str(request.getfixturevalue("django_db"))
            env["DJANGO_SETTINGS_MODULE"] = "django_app.settings"
            cmd = [*gunicorn, "django_app.wsgi:application"]
        elif kind == "fastapi":
            # --no-proxy-headers: uvicorn would otherwise rewrite the client
            # address from X-Forwarded-For itself; trusted_proxies decides.
            cmd = [
                str(BIN / "uvicorn"),
                "--app-dir",
                str(EXAMPLES),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-proxy-headers",
                "--log-level",
                "warning",
                "fastapi_app.app:app",
            ]
            if workers > 1:
                cmd += ["--workers", str(workers)]
        else:
            raise ValueError(kind)
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, cwd=EXAMPLES, env=env, stdout=fh, stderr=subprocess.STDOUT)
        app = LiveApp(kind, f"http://{bind}", proc, spool, log)
        started.append(app)
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{kind} server exited: {app.log_text()}")
            try:
                httpx.get(f"{app.url}/no-such-page", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} server did not start: {app.log_text()}") from None
                time.sleep(0.1)
        return app

    yield start
    for app in started:
        app.stop()


def ship(spool: Path, store: Any) -> Any:
    """Everything in the spool into the store with the real indexer; then refresh."""
    from useraudit.indexer.shipper import Indexer

    with Indexer(spool, store) as ix:
        stats = ix.drain()
    store.refresh()
    return stats


def stored(store: Any) -> list[dict]:
    return list(store.get(store.all_ids()).values())


def spool_events(spool: Path) -> list[dict]:
    from useraudit.spool import iter_all

    return [json.loads(p) for p in iter_all(spool)]


def spool_bytes(spool: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(spool.glob("*.seg")))


def find(docs: list[dict], **fields: Any) -> list[dict]:
    """Docs whose flat fields equal every given value (``__`` stands for ``.``)."""
    want = {k.replace("__", "."): v for k, v in fields.items()}
    return [d for d in docs if all(d.get(k) == v for k, v in want.items())]
