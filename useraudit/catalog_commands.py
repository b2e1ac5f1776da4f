"""``useraudit events``: search, follow and fetch events (:mod:`useraudit.webapp.events_cli`),
and ``events catalog``, which prints every known action."""

from __future__ import annotations

import json

import click

from useraudit.catalog import CATALOG
from useraudit.webapp.events_cli import events


@events.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per action.")
@click.option("--product", default=None, help="Only this product's actions (common, jaicp, ...).")
def catalog(as_json: bool, product: str | None) -> None:
    """Print every action: code, label, product and group."""
    for prod in CATALOG.products():
        if product and prod.code != product:
            continue
        actions = list(CATALOG.actions(prod.code))
        if as_json:
            for a in actions:
                click.echo(
                    json.dumps(
                        {
                            "code": a.code,
                            "label": a.label,
                            "product": prod.code,
                            "product_label": prod.label,
                            "group": a.group,
                            "category": list(a.category),
                            "type": list(a.type),
                        },
                        ensure_ascii=False,
                    )
                )
            continue
        click.secho(f"{prod.label} ({prod.code})", bold=True)
        for group in CATALOG.groups(prod.code):
            click.echo(f"  {group}")
            for a in actions:
                if a.group == group:
                    click.echo(f"    {a.code:<45} {a.label}")
