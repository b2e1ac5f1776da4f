"""`useraudit opensearch start|status|stop` against a second, real node.

The suite's own node (USERAUDIT_TEST_OPENSEARCH, port 9250 under `make test`)
is never touched: this starts another node on a free port with a temporary
home, through the installed CLI in a subprocess, exactly as a developer would
(the node is then not a child of pytest, as in real use).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from useraudit.devnode import node


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "useraudit"), "opensearch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _free_port(exclude: int = 0) -> int:
    """A free port in the runner's range, preferring 9270 (the suite's node is on 9250)."""
    for port in [9270, *range(9260, 9300)]:
        if port == exclude:
            continue
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    pytest.fail("no free port in 9260-9299 for a second OpenSearch node")


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def node_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "opensearch"
    yield home
    # Whatever happened in the test, do not leave a java process behind.
    node.stop(home, echo=lambda _msg: None)


def test_start_status_stop_a_second_node(node_home: Path) -> None:
    port = _free_port()
    home = str(node_home)

    before = _cli("status", "--home", home)
    assert before.returncode == 1 and "stopped" in before.stdout

    started = _cli("start", "--port", str(port), "--home", home, "--heap", "512m", "--wait", "240")
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"http://127.0.0.1:{port}" in started.stdout

    pid = int((node_home / "node.pid").read_text())
    assert node.is_our_node(pid, node_home)
    health = _get(f"http://127.0.0.1:{port}/_cluster/health")
    assert health["status"] in ("green", "yellow")
    assert health["cluster_name"] == node.CLUSTER_NAME
    # The node answering on the port is the process in the PID file.
    procs = _get(f"http://127.0.0.1:{port}/_nodes/_local/process")["nodes"]
    assert [n["process"]["id"] for n in procs.values()] == [pid]
    # Bound to loopback only.
    http = _get(f"http://127.0.0.1:{port}/_nodes/_local/http")["nodes"]
    assert all(
        addr.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:"))
        for n in http.values()
        for addr in n["http"]["bound_address"]
    )

    shown = _cli("status", "--home", home)
    assert shown.returncode == 0, shown.stderr
    assert f"running at http://127.0.0.1:{port} (pid {pid}" in shown.stdout
    assert "health green" in shown.stdout or "health yellow" in shown.stdout

    st = node.status(node_home)
    assert st.running and st.pid == pid and st.port == port
    assert st.health_status in ("green", "yellow")

    # Idempotent: a second start reports the running node, starts nothing.
    again = _cli("start", "--port", str(port), "--home", home)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    assert int((node_home / "node.pid").read_text()) == pid

    # The same home cannot be started on another port at the same time.
    other = _cli("start", "--port", str(_free_port(exclude=port)), "--home", home)
    assert other.returncode != 0 and "already runs on port" in other.stderr

    stopped = _cli("stop", "--home", home)
    assert stopped.returncode == 0, stopped.stderr
    assert not (node_home / "node.pid").exists()
    assert not (node_home / "node.json").exists()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _pid_exists(pid):
        time.sleep(0.2)
    assert not _pid_exists(pid), f"pid {pid} still running after stop"
    assert node.cluster_health(port) is None

    after = _cli("status", "--home", home)
    assert after.returncode == 1 and "stopped" in after.stdout
    # Stopping a stopped node is not an error.
    assert _cli("stop", "--home", home).returncode == 0


def _pid_exists(pid: int) -> bool:
    """Alive and not a zombie (a zombie has exited; only its parent can reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_start_refuses_a_port_in_use(node_home: Path) -> None:
    """The runner would silently pick the next free port; we refuse instead."""
    port = _free_port()
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", port))
        busy.listen()
        result = _cli("start", "--port", str(port), "--home", str(node_home))
    assert result.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert not (node_home / "node.pid").exists()


def test_port_outside_the_runner_range_is_refused(node_home: Path) -> None:
    result = _cli("start", "--port", "45000", "--home", str(node_home))
    assert result.returncode != 0 and "9200<=x<=9299" in result.stderr
    with pytest.raises(node.NodeError, match="within 9200-9299"):
        node.start(port=45000, home=node_home)


def test_stale_pid_file_is_ignored_and_nothing_is_signalled(node_home: Path) -> None:
    """A PID file naming some other live process must never get that process killed."""
    node_home.mkdir(parents=True)
    (node_home / "node.pid").write_text(f"{os.getpid()}\n")
    (node_home / "node.json").write_text(json.dumps({"pid": os.getpid(), "port": 1}))
    assert not node.status(node_home).running
    assert node.stop(node_home, echo=lambda _msg: None) is False
    assert not (node_home / "node.pid").exists()  # and we are still alive to check it


def test_in_process_start_and_stop_leave_no_warning_or_zombie(node_home: Path) -> None:
    """Harnesses call node.start()/stop() in-process (bench.chaos does): the Popen
    must not be collected while java runs (ResourceWarning "subprocess is still
    running", an error under this suite's -W error), and stop() must reap it."""
    import gc
    import warnings

    port = _free_port()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        st = node.start(port=port, home=node_home, heap="512m", echo=lambda _m: None)
        pid = st.pid
        assert pid is not None and st.health_status in ("green", "yellow")
        del st
        gc.collect()
        assert node.stop(node_home, echo=lambda _m: None) is True
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [
        str(w.message) for w in caught
    ]
    # Our own child, so stop() reaped it: no zombie left in the process table.
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists(), (stat.read_text(), node._children)
