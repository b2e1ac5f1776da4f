"""``useraudit capture ...``: check capture settings from the command line."""

from __future__ import annotations

import click

from ._common import client_ip, header_text
from .rules import Rules


@click.group()
def capture() -> None:
    """Capture settings: client IPs behind proxies, capture rules."""


@capture.command("client-ip")
@click.option("--peer", required=True, help="The connection's peer address (REMOTE_ADDR).")
@click.option("--forwarded-for", default=None, help="The X-Forwarded-For header as received.")
@click.option(
    "--trusted-proxies",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Reverse proxies in front of the app that append to X-Forwarded-For.",
)
def client_ip_command(peer: str, forwarded_for: str | None, trusted_proxies: int) -> None:
    """Print the client IP the middleware would record for these inputs."""
    xff = header_text(forwarded_for, 2048)
    ip = client_ip(peer, xff, trusted_proxies)
    click.echo(ip or "")
    if trusted_proxies == 0 and xff:
        click.echo("X-Forwarded-For ignored: no trusted proxies configured.", err=True)
    elif ip == peer and xff:
        click.echo("X-Forwarded-For had too few or invalid entries: using the peer.", err=True)


@capture.command("rule")
@click.argument("rules_path")
@click.argument("method")
@click.argument("path")
@click.argument("status", type=int)
def rule_command(rules_path: str, method: str, path: str, status: int) -> None:
    """Show which event RULES (module:attribute) derive from METHOD PATH STATUS."""
    import importlib

    module, _, attr = rules_path.partition(":")
    rules = getattr(importlib.import_module(module), attr or "RULES")
    if not isinstance(rules, Rules):
        rules = Rules(rules)
    hit = rules.match(method, path, status)
    if hit is None:
        click.echo("no event")
        raise SystemExit(1)
    action, kwargs = hit
    click.echo(f"{action} {kwargs}")
