"""`make demo` is light and safe to run twice: a demo-sized install, PORT=..., and a second
demo while one runs reports the busy port (or the busy data folder) before seeding, leaving
the running demo's data alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import free_port

from useraudit.store import Query, open_store

ROOT = Path(__file__).resolve().parents[2]


def _wait_for_ui(port: int, proc: subprocess.Popen, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"demo exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"no UI on {port}: {log.read_text()[-3000:]}")
        time.sleep(0.5)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def running_demo(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A demo serving on a free port, its data in tmp/home/demo."""
    port = free_port()
    log = tmp_path / "first.log"
    env = {**os.environ, "USERAUDIT_HOME": str(tmp_path / "home")}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "useraudit", "demo", "--port", str(port), "--events", "150"],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_ui(port, proc, log, 300)
        yield port, tmp_path / "home"
    finally:
        _stop(proc)


def _second(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "useraudit", "demo", "--events", "50", *args],
        env={**os.environ, "USERAUDIT_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _count(home: Path) -> int:
    store = open_store(f"sqlite:///{home / 'demo' / 'audit.db'}")
    try:
        return sum(store.count(Query(account=a)) for a in store.accounts())
    finally:
        store.close()


def test_second_demo_refuses_before_seeding(running_demo: tuple[int, Path]) -> None:
    """Same port: 'port N is already in use', exit 1; another port but the same data folder:
    'a demo (pid N) is running'; either way the running demo's data and UI are untouched."""
    port, home = running_demo
    before = _count(home)
    assert before > 0
    busy = _second(home, "--port", str(port))
    assert busy.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in busy.stderr
    assert f"make demo PORT={port + 1}" in busy.stderr
    same_home = _second(home, "--port", str(free_port()))
    assert same_home.returncode == 1 and "a demo (pid" in same_home.stderr
    assert _count(home) == before
    assert httpx.get(f"http://127.0.0.1:{port}/login", timeout=10).status_code == 200


def test_make_demo_installs_only_what_the_demo_needs(tmp_path: Path) -> None:
    """`make demo PORT=N` builds a venv of the base install (no pytest, Playwright, mypy,
    matplotlib or Django) and serves the UI on N."""
    port = free_port()
    venv = tmp_path / "demo-venv"
    log = tmp_path / "make.log"
    env = {**os.environ, "USERAUDIT_HOME": str(tmp_path / "home")}
    env.pop("MAKEFLAGS", None)
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            ["make", "-C", str(ROOT), "demo", f"PORT={port}", f"DEMO_VENV={venv}"],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_ui(port, proc, log, 600)
    finally:
        _stop(proc)
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    names = {line.split("==")[0] for line in installed.splitlines()}
    assert "useraudit" in names and "flask" in names
    for dev_only in ("pytest", "playwright", "mypy", "matplotlib", "django", "ruff"):
        assert dev_only not in names, dev_only
    print(f"demo venv: {len(names)} packages")
