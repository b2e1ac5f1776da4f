"""``useraudit dashboards``: print the saved objects, or import them into Dashboards."""

from __future__ import annotations

import sys

import click

from useraudit.cli_helpers import clean_exit

from . import DEFAULT_PREFIX
from .dashboards_client import DashboardsError, describe_errors, import_saved_objects
from .saved_objects import DASHBOARD_TITLE, dashboard_id, ndjson, render_ndjson


@click.group()
def dashboards() -> None:
    """OpenSearch Dashboards saved objects: index pattern, searches, visualisations, dashboard."""


@dashboards.command("export-ndjson")
@click.option(
    "--prefix", default=DEFAULT_PREFIX, show_default=True, help="Index prefix the objects read."
)
def export_ndjson(prefix: str) -> None:
    """Print the saved objects as NDJSON (for Dashboards' Saved objects > Import)."""
    click.echo(render_ndjson(prefix), nl=False)


@dashboards.command("import")
@click.option(
    "--url",
    required=True,
    envvar="USERAUDIT_DASHBOARDS_URL",
    show_envvar=True,
    help="Dashboards base URL, e.g. https://[user:pass@]dashboards:5601[/base-path].",
)
@click.option("--overwrite", is_flag=True, help="Replace objects that already exist (same ids).")
@click.option("--user", default=None, help="Basic-auth user (or put it in the URL).")
@click.option(
    "--password",
    default=None,
    envvar="USERAUDIT_DASHBOARDS_PASSWORD",
    show_envvar=True,
    help="Basic-auth password.",
)
@click.option(
    "--ca-certs",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CA bundle to verify Dashboards' certificate.",
)
@click.option("--insecure", is_flag=True, help="Do not verify the TLS certificate.")
@click.option(
    "--tenant", default=None, help="Security plugin tenant (sent as the securitytenant header)."
)
@click.option(
    "--prefix", default=DEFAULT_PREFIX, show_default=True, help="Index prefix the objects read."
)
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for Dashboards.")
def import_command(
    url: str,
    overwrite: bool,
    user: str | None,
    password: str | None,
    ca_certs: str | None,
    insecure: bool,
    tenant: str | None,
    prefix: str,
    timeout: float,
) -> None:
    """Import the saved objects into Dashboards through its saved-objects API."""
    if password is not None and user is None and "@" not in url:
        raise click.UsageError("--password needs --user")
    with clean_exit(DashboardsError):
        result = import_saved_objects(
            url,
            ndjson(prefix),
            overwrite=overwrite,
            user=user,
            password=password,
            ca_certs=ca_certs,
            insecure=insecure,
            tenant=tenant,
            timeout=timeout,
            filename=f"{prefix}.ndjson",
        )
    count = result.get("successCount", 0)
    errors = result.get("errors") or []
    if result.get("success") and not errors:
        click.echo(
            f"Imported {count} saved objects"
            + (" (overwrite)" if overwrite else "")
            + f"; open the dashboard {DASHBOARD_TITLE!r} (id {dashboard_id(prefix)})."
        )
        return
    click.echo(f"Imported {count} saved objects; {len(errors)} failed:", err=True)
    for line in describe_errors(errors):
        click.echo(f"  {line}", err=True)
    sys.exit(1)
