"""`useraudit web` is a production server; exports cannot crowd out the UI.

* The real command (waitress) in a subprocess: 40 slow clients that send
  half a request and go silent neither take the worker threads (the sign-in
  page keeps answering within 2 s) nor stay open past --channel-timeout;
  --threads sets the number of worker threads.
* Exports hold a slot while they stream: one per user and two per process;
  more get a 429 at once, and pages keep answering meanwhile.
* Secure cookies: on by default behind a trusted proxy even on loopback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import free_port

from .conftest import PASSWORD, make_app, signed_in


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    from useraudit.webapp.users import UserStore

    users = UserStore(tmp_path / "webusers.db")
    if users.by_username("ann") is None:
        users.add("ann", PASSWORD)
    port = free_port()
    env = {**os.environ, "USERAUDIT_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "useraudit",
            "web",
            "--store",
            f"sqlite:///{tmp_path / 'audit.db'}",
            "--users-db",
            str(tmp_path / "webusers.db"),
            "--secret-key",
            "k" * 32,
            "--port",
            str(port),
            *args,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2):
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("useraudit web did not start")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> int:
        proc, port = _start(tmp_path, *args)
        started.append(proc)
        return port

    start.procs = started  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for proc in started:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_slow_clients_take_no_worker_thread_and_are_closed(server: Any) -> None:
    port = server("--threads", "4", "--channel-timeout", "3")
    slow = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and then nothing
        slow.append(s)
    try:
        for _ in range(5):
            started = time.monotonic()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as page:
                assert page.status == 200
            assert time.monotonic() - started < 2
        time.sleep(6)  # past --channel-timeout (checked about once a second)
        closed = 0
        for s in slow:
            s.settimeout(2)
            try:
                closed += s.recv(1) == b""
            except (ConnectionResetError, BrokenPipeError):
                closed += 1
            except TimeoutError:
                pass
        assert closed == 40, f"{40 - closed} silent connections still open"
    finally:
        for s in slow:
            s.close()


def test_threads_option_sets_the_worker_threads(server: Any) -> None:
    few = server("--threads", "2")
    many = server("--threads", "12")
    assert few != many
    procs = server.procs
    assert _threads(procs[1].pid) - _threads(procs[0].pid) == 10


def test_exports_are_capped_per_user_and_per_process(
    tenants_store: Any, security_users: Any, ui_spool: Any
) -> None:
    from useraudit.webapp.users import UserStore

    app = make_app(tenants_store, security_users)
    ann = signed_in(app, "ann")
    # A second admin of tenant-a for the per-process cap.
    assert isinstance(security_users, UserStore)
    if security_users.by_username("ann2") is None:
        security_users.add("ann2", PASSWORD)
        security_users.grant("ann2", "tenant-a")
        security_users.add("ann3", PASSWORD)
        security_users.grant("ann3", "tenant-a")
    ann2, ann3 = signed_in(app, "ann2"), signed_in(app, "ann3")
    url = "/a/tenant-a/actions.xlsx?period=30d"
    first = ann.get(url, buffered=False)  # streaming, not yet read: holds a slot
    assert first.status_code == 200
    again = ann.get(url)
    assert again.status_code == 429 and again.headers["Retry-After"] == "30"
    other = ann2.get(url, buffered=False)
    assert other.status_code == 200
    third = ann3.get(url)
    assert third.status_code == 429  # two per process
    page_started = time.monotonic()
    assert ann3.get("/a/tenant-a/actions").status_code == 200  # pages still answer
    assert time.monotonic() - page_started < 10
    b"".join(first.response)
    first.close()
    other.close()
    assert ann.get(url).status_code == 200  # the slots came back
    assert ann3.get(url).status_code == 200


def test_cookies_are_secure_behind_a_trusted_proxy_on_loopback(tmp_path: Path, server: Any) -> None:
    port = server("--trusted-proxies", "1")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as token_page:
        cookie = token_page.headers.get("Set-Cookie") or ""
    assert "useraudit_session" in cookie and "Secure" in cookie
    plain = server()
    with urllib.request.urlopen(f"http://127.0.0.1:{plain}/login", timeout=10) as page:
        cookie = page.headers.get("Set-Cookie") or ""
    assert "useraudit_session" in cookie and "Secure" not in cookie
