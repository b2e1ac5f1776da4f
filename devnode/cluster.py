"""A real local OpenSearch *cluster*: N nodes, each its own ``java`` process.

The runner's ``main`` can run several nodes, but all in one JVM, so one node
can never be stopped (or killed) alone. Here every node is a separate runner
process with ``-numOfNode 1`` and its own home and ``opensearch.yml``
(``discovery.seed_hosts`` = the N transport addresses,
``cluster.initial_cluster_manager_nodes`` = the N node names). Layout::

    home/
      lib/                  the runner's jars (shared, fetched once with Maven)
      classes/              UseraudiClusterNode.class (compiled once, see below)
      cluster.json          nodes, ports, version, java, heap
      node-1/ node-2/ ...   one node home each, laid out as in :mod:`.node`
                            (base/conf/opensearch.yml, node.log, node.pid, node.json)

Node *i* listens for HTTP on ``port + i - 1`` and for transport on that
plus 100 (``9261`` → ``9361``); all HTTP ports must lie in 9200-9299.

Why a tiny main class of our own: the runner passes ``node.name = "Node 1"``
to every single-node process and that overrides ``opensearch.yml``, so three
processes would all be "Node 1" and could not be told apart for the initial
cluster-manager election. ``UseraudiClusterNode`` only sets ``node.name``
from ``-Duseraudit.node.name`` and then does what the runner's main does. It
also pins ``discovery.type: zen``: runner 3.x sets ``single-node`` for any
process with one node, which refuses ``cluster.initial_cluster_manager_nodes``.
It is compiled once per home with the ``javac`` next to the ``java`` used.

As in :mod:`.node`, only PIDs recorded in a node's own home are signalled,
and only after checking they still are our runner for that home.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from useraudit import config

from . import node
from .node import CLUSTER_MAIN_CLASS, HOST, Echo, NodeError

DEFAULT_NODES = 3
DEFAULT_PORT = 9261
DEFAULT_HEAP = "512m"
DEFAULT_WAIT = 300.0
TRANSPORT_OFFSET = 100

_JAVA_SOURCE = """\
import org.codelibs.opensearch.runner.OpenSearchRunner;
import org.opensearch.common.settings.Settings;

/** The runner's main, but with node.name from -Duseraudit.node.name, and zen discovery. */
public class UseraudiClusterNode {
    public static void main(final String[] args) throws Exception {
        final String name = System.getProperty("useraudit.node.name");
        final OpenSearchRunner runner = new OpenSearchRunner();
        runner.onBuild(new OpenSearchRunner.Builder() {
            @Override
            public void build(final int index, final Settings.Builder settings) {
                if (name != null && !name.isEmpty()) {
                    settings.put("node.name", name);
                }
                // Runner 3.x makes a one-node process single-node unless told otherwise.
                settings.put("discovery.type", "zen");
            }
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                runner.close();
            } catch (final Exception e) {
                e.printStackTrace();
            }
        }));
        try {
            runner.build(args);
        } catch (final Exception e) {
            e.printStackTrace();
            System.exit(1);
        }
        while (!runner.isClosed()) {
            Thread.sleep(1000);
        }
    }
}
"""


@dataclass
class ClusterNodeStatus:
    index: int
    name: str
    home: Path
    http_port: int
    transport_port: int
    running: bool
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}"


@dataclass
class ClusterStatus:
    home: Path
    nodes: list[ClusterNodeStatus] = field(default_factory=list)
    version: str | None = None
    health: dict[str, Any] | None = None

    @property
    def running(self) -> list[ClusterNodeStatus]:
        return [n for n in self.nodes if n.running]

    @property
    def health_status(self) -> str | None:
        return (self.health or {}).get("status")

    @property
    def store_url(self) -> str:
        """All nodes' HTTP addresses in one URL, as OpenSearchStore accepts it."""
        return "http://" + ",".join(f"{HOST}:{n.http_port}" for n in self.nodes)


# -- layout -----------------------------------------------------------------------


def default_home() -> Path:
    """``$USERAUDIT_HOME/opensearch-cluster``."""
    return config.devcluster_home()


def _home(home: Path | str | None) -> Path:
    return Path(home).expanduser().absolute() if home else default_home().absolute()


def node_name(index: int) -> str:
    return f"ua-node-{index}"


def node_home(home: Path | str, index: int) -> Path:
    return Path(home) / f"node-{index}"


def _cluster_file(home: Path) -> Path:
    return home / "cluster.json"


def _read_cluster(home: Path) -> dict[str, Any]:
    try:
        return json.loads(_cluster_file(home).read_text())
    except (OSError, ValueError):
        return {}


def _layout(home: Path) -> dict[str, Any]:
    layout = _read_cluster(home)
    if not layout:
        raise NodeError(f"no cluster in {home} (no cluster.json): start it first")
    return layout


def render_config(index: int, nodes: int, port: int, cluster_name: str) -> str:
    """The ``opensearch.yml`` of node *index* (1-based) of an *nodes*-node cluster."""
    transports = [f"{HOST}:{port + i + TRANSPORT_OFFSET}" for i in range(nodes)]
    names = [node_name(i + 1) for i in range(nodes)]
    return "\n".join(
        [
            "# Written by `useraudit opensearch cluster start`: one node of a local",
            "# development/test cluster. Loopback only (no security plugin).",
            f"cluster.name: {cluster_name}",
            f"node.name: {node_name(index)}",
            f"network.host: {HOST}",
            f"http.port: {port + index - 1}",
            f"transport.port: {port + index - 1 + TRANSPORT_OFFSET}",
            f"discovery.seed_hosts: {json.dumps(transports)}",
            f"cluster.initial_cluster_manager_nodes: {json.dumps(names)}",
            "# A nearly full developer disk must not flip indices to read-only mid-test.",
            "cluster.routing.allocation.disk.threshold_enabled: false",
            "",
        ]
    )


# -- the main class -----------------------------------------------------------------


def _compile_main(home: Path, java: str, lib: Path, echo: Echo) -> Path:
    """Compile :data:`_JAVA_SOURCE` into ``home/classes`` (once per java + jars)."""
    classes = home / "classes"
    marker = classes / ".built-for"
    digest = hashlib.sha256(_JAVA_SOURCE.encode()).hexdigest()
    key = f"{java}\n{(lib / '.version').read_text().strip()}\n{digest}"
    if (
        marker.is_file()
        and marker.read_text() == key
        and (classes / f"{CLUSTER_MAIN_CLASS}.class").is_file()
    ):
        return classes
    javac = Path(java).with_name("javac")
    if not os.access(javac, os.X_OK):
        raise NodeError(
            f"need a JDK (javac beside {java}) to compile the cluster node's main "
            "class; on Debian: apt-get install -y openjdk-17-jdk-headless"
        )
    src = home / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / f"{CLUSTER_MAIN_CLASS}.java").write_text(_JAVA_SOURCE)
    classes.mkdir(parents=True, exist_ok=True)
    echo(f"Compiling {CLUSTER_MAIN_CLASS} with {javac}")
    proc = subprocess.run(
        [
            str(javac),
            "-nowarn",
            "-d",
            str(classes),
            "-cp",
            f"{lib}{os.sep}*",
            str(src / f"{CLUSTER_MAIN_CLASS}.java"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise NodeError(f"javac failed:\n{proc.stdout}{proc.stderr}")
    marker.write_text(key)
    return classes


# -- one node -----------------------------------------------------------------------


def _spawn(home: Path, index: int, layout: dict[str, Any], echo: Echo) -> int:
    """Start node *index*'s java process (no waiting). Returns its PID."""
    nhome = node_home(home, index)
    port = layout["port"] + index - 1
    transport = port + TRANSPORT_OFFSET
    with node._locked(nhome):
        pid = node._read_pid(nhome)
        if pid is not None and node.is_our_node(pid, nhome):
            echo(f"{node_name(index)} already running (pid {pid}, port {port})")
            return pid
        node._clear_state(nhome)
        for p in (port, transport):
            if node._port_in_use(p):
                raise NodeError(
                    f"port {p} on {HOST} is already in use by another process "
                    f"(needed by {node_name(index)})"
                )
        base = node._base(nhome)
        conf = base / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "opensearch.yml").write_text(
            render_config(index, layout["nodes"], layout["port"], layout["cluster_name"])
        )
        heap = layout["heap"]
        cmd = node.runner_command(
            layout["java"],
            heap,
            f"{home / 'classes'}{os.pathsep}{home / 'lib'}{os.sep}*",
            CLUSTER_MAIN_CLASS,
            base,
            conf,
            port,
            layout["cluster_name"],
            properties=(f"-Duseraudit.node.name={node_name(index)}",),
        )
        log_path = node._log_file(nhome)
        proc = node.launch(cmd, nhome, log_path, append=True)
        node._state_file(nhome).write_text(
            json.dumps(
                {
                    "pid": proc.pid,
                    "port": port,
                    "transport_port": transport,
                    "name": node_name(index),
                    "version": layout["version"],
                    "java": layout["java"],
                    "heap": heap,
                    "started": time.time(),
                },
                indent=2,
            )
            + "\n"
        )
        echo(
            f"Started {node_name(index)} (pid {proc.pid}) on {HOST}:{port}, "
            f"transport {transport}, log {log_path}"
        )
        return proc.pid


def _node_status(home: Path, index: int, layout: dict[str, Any]) -> ClusterNodeStatus:
    nhome = node_home(home, index)
    port = layout["port"] + index - 1
    pid = node._read_pid(nhome)
    running = pid is not None and node.is_our_node(pid, nhome)
    return ClusterNodeStatus(
        index=index,
        name=node_name(index),
        home=nhome,
        http_port=port,
        transport_port=port + TRANSPORT_OFFSET,
        running=running,
        pid=pid if running else None,
    )


def _check_alive(home: Path, indices: Iterable[int]) -> None:
    for i in indices:
        nhome = node_home(home, i)
        pid = node._read_pid(nhome)
        if pid is not None and pid in node._children:
            # Our own child: waitpid decides. (Its /proc cmdline may still be
            # ours, not java's, for a moment after fork: no is_our_node here.)
            alive = node._alive(pid)
        else:
            alive = pid is not None and node.is_our_node(pid, nhome)
        if not alive:
            node._clear_state(nhome)
            raise NodeError(
                f"{node_name(i)} exited while starting\n--- {node._log_file(nhome)} "
                f"(tail) ---\n{node._tail(node._log_file(nhome))}"
            )


def wait_for(
    home: Path | str | None = None,
    status: str = "green",
    nodes: int | None = None,
    timeout: float = DEFAULT_WAIT,
    echo: Echo = print,
) -> dict[str, Any]:
    """Wait until a running node reports *status* (or better) with *nodes* nodes joined.

    *nodes* defaults to the cluster's size. Raises :class:`NodeError` when a
    node we are waiting for dies, or on timeout.
    """
    home = _home(home)
    layout = _layout(home)
    nodes = layout["nodes"] if nodes is None else nodes
    ok = ("green",) if status == "green" else ("yellow", "green")
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    last: dict[str, Any] | None = None
    while True:
        states = [_node_status(home, i, layout) for i in range(1, layout["nodes"] + 1)]
        for st in states:
            if not st.running:
                continue
            health = node.cluster_health(st.http_port, timeout=2)
            if health is None:
                continue
            last = health
            if health.get("status") in ok and health.get("number_of_nodes") == nodes:
                echo(
                    f"cluster {health.get('cluster_name')} is {health['status']} with "
                    f"{nodes} nodes ({time.monotonic() - started:.0f}s)"
                )
                return health
            break
        if time.monotonic() > deadline:
            raise NodeError(
                f"cluster in {home} not {status} with {nodes} nodes after "
                f"{timeout:.0f}s; last health: {json.dumps(last)}"
            )
        time.sleep(0.5)


# -- public API ---------------------------------------------------------------------


def start_cluster(
    nodes: int = DEFAULT_NODES,
    port: int = DEFAULT_PORT,
    home: Path | str | None = None,
    heap: str = DEFAULT_HEAP,
    wait: float = DEFAULT_WAIT,
    version: str | None = None,
    java_home: Path | str | None = None,
    echo: Echo = print,
) -> ClusterStatus:
    """Start *nodes* nodes on HTTP ports *port*.. and wait for a green cluster of all of them.

    All processes are started first (none can be healthy before a quorum
    exists), then we wait. Idempotent for nodes already running. On failure
    every node started here is stopped again and :class:`NodeError` raised.
    """
    home = _home(home)
    version = version or os.environ.get("USERAUDIT_OPENSEARCH_VERSION") or node.DEFAULT_VERSION
    if not re.fullmatch(r"\d+(\.\d+)*", version):
        raise NodeError(f"bad runner version {version!r}")
    if nodes < 1:
        raise NodeError("a cluster needs at least one node")
    last = port + nodes - 1
    if port not in node.PORT_RANGE or last not in node.PORT_RANGE:
        raise NodeError(
            f"HTTP ports {port}-{last} must lie within {node.PORT_RANGE.start}-"
            f"{node.PORT_RANGE.stop - 1} (an OpenSearchRunner limit)"
        )
    if not re.fullmatch(r"\d+[kKmMgG]?", heap):
        raise NodeError(f"bad heap size {heap!r} (examples: 512m, 1g)")
    with node._locked(home):
        existing = _read_cluster(home)
        if existing and any(
            _node_status(home, i, existing).running for i in range(1, existing["nodes"] + 1)
        ):
            if (existing["nodes"], existing["port"], existing["version"]) != (nodes, port, version):
                raise NodeError(
                    f"a cluster of {existing['nodes']} nodes on port "
                    f"{existing['port']} (runner {existing['version']}) runs in "
                    f"{home}; stop it first"
                )
        java = node.find_java(java_home)
        node._check_java(java, version)
        lib = node.fetch_jars(home, version, echo)
        _compile_main(home, java, lib, echo)
        layout = {
            "nodes": nodes,
            "port": port,
            "version": version,
            "java": java,
            "heap": heap,
            "cluster_name": f"useraudit-cluster-{port}",
        }
        _cluster_file(home).write_text(json.dumps(layout, indent=2) + "\n")
    echo(
        f"Starting a {nodes}-node OpenSearch {version.rsplit('.', 1)[0]} cluster "
        f"on {HOST}:{port}-{last} (home {home})"
    )
    started: list[int] = []
    try:
        for i in range(1, nodes + 1):
            before = _node_status(home, i, layout).running
            _spawn(home, i, layout, echo)
            if not before:
                started.append(i)
        deadline = time.monotonic() + wait
        while True:
            _check_alive(home, range(1, nodes + 1))
            try:
                health = wait_for(home, "green", nodes, timeout=min(5.0, wait), echo=echo)
                break
            except NodeError:
                if time.monotonic() > deadline:
                    raise
    except BaseException as exc:
        for i in started:
            with contextlib.suppress(NodeError):
                stop_node(home, i, echo=echo)
        if isinstance(exc, NodeError):
            tails = "\n".join(
                f"--- {node_name(i)} log (tail) ---\n"
                f"{node._tail(node._log_file(node_home(home, i)), 15)}"
                for i in started
            )
            raise NodeError(f"{exc}\n{tails}") from exc
        raise
    status = cluster_status(home)
    status.health = health
    return status


def start_node(
    home: Path | str | None, index: int, wait: float | None = None, echo: Echo = print
) -> int:
    """(Re)start node *index* of an existing cluster; with *wait*, wait until all are green."""
    home = _home(home)
    layout = _layout(home)
    if not 1 <= index <= layout["nodes"]:
        raise NodeError(f"no node {index} in a {layout['nodes']}-node cluster")
    pid = _spawn(home, index, layout, echo)
    if wait:
        # Ask the restarted node itself: the others may not have noticed yet
        # that its previous incarnation left, and still count it.
        port = layout["port"] + index - 1
        started = time.monotonic()
        deadline = started + wait
        while True:
            _check_alive(home, [index])
            health = node.cluster_health(port, timeout=2)
            if (
                health
                and health.get("status") == "green"
                and health.get("number_of_nodes") == layout["nodes"]
                and node._serves_pid(port, pid)
            ):
                echo(
                    f"{node_name(index)} is back; cluster green with {layout['nodes']} nodes "
                    f"({time.monotonic() - started:.0f}s)"
                )
                break
            if time.monotonic() > deadline:
                raise NodeError(
                    f"{node_name(index)} restarted but the cluster is not green with "
                    f"it after {wait:.0f}s; last health: {json.dumps(health)}"
                )
            time.sleep(0.5)
    return pid


def stop_node(
    home: Path | str | None,
    index: int,
    sig: int = signal.SIGTERM,
    timeout: float = 30.0,
    echo: Echo = print,
) -> bool:
    """Stop node *index* (SIGTERM, then SIGKILL after *timeout*; ``sig=SIGKILL`` at once).

    Returns False if it was not running.
    """
    home = _home(home)
    nhome = node_home(home, index)
    with node._locked(nhome):
        pid = node._read_pid(nhome)
        if pid is None or not node.is_our_node(pid, nhome):
            node._clear_state(nhome)
            return False
        name = node_name(index)
        if sig == signal.SIGKILL:
            echo(f"Killing {name} (pid {pid}, SIGKILL)")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while node._alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            node._clear_state(nhome)
            if node._alive(pid):
                raise NodeError(f"pid {pid} survived SIGKILL")
        else:
            echo(f"Stopping {name} (pid {pid})")
            node._terminate(pid, nhome, timeout, echo)
        return True


def stop_cluster(home: Path | str | None = None, timeout: float = 30.0, echo: Echo = print) -> int:
    """Stop every node of the cluster (SIGTERM to all first). Returns how many ran."""
    home = _home(home)
    layout = _read_cluster(home)
    if not layout:
        echo(f"no cluster in {home}")
        return 0
    indices = range(1, layout["nodes"] + 1)
    running = [st for st in (_node_status(home, i, layout) for i in indices) if st.running]
    for st in running:  # all at once: nobody waits for a re-election per node
        with contextlib.suppress(ProcessLookupError):
            assert st.pid is not None
            os.kill(st.pid, signal.SIGTERM)
    for st in running:
        stop_node(home, st.index, timeout=timeout, echo=echo)
    echo(f"stopped {len(running)} node(s) of the cluster in {home}")
    return len(running)


def cluster_status(home: Path | str | None = None) -> ClusterStatus:
    """Which nodes run, and the health as the first answering node sees it."""
    home = _home(home)
    layout = _read_cluster(home)
    if not layout:
        return ClusterStatus(home=home)
    nodes = [_node_status(home, i, layout) for i in range(1, layout["nodes"] + 1)]
    health = None
    for st in nodes:
        if st.running:
            health = node.cluster_health(st.http_port)
            if health:
                break
    return ClusterStatus(home=home, nodes=nodes, version=layout.get("version"), health=health)
