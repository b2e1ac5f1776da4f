"""The ``useraudit`` command line.

Each command group lives beside the code it drives; this module only
assembles them, so ``useraudit --help`` lists everything.
"""

from __future__ import annotations

import importlib
import logging

import click

from useraudit import __version__

# (module, attribute): imported lazily so `useraudit --help` stays fast and
# a missing optional piece breaks only its own command.
COMMANDS: dict[str, tuple[str, str]] = {
    "opensearch": ("useraudit.devnode.commands", "opensearch"),
    "templates": ("useraudit.index_templates.commands", "templates"),
    "dashboards": ("useraudit.index_templates.dashboards_commands", "dashboards"),
    "indexer": ("useraudit.indexer.commands", "indexer"),
    "events": ("useraudit.catalog_commands", "events"),
    "api-tokens": ("useraudit.webapp.api_tokens_cli", "api_tokens"),
    "capture": ("useraudit.middleware.commands", "capture"),
    "demo": ("useraudit.demo", "demo"),
    "doctor": ("useraudit.doctor", "doctor"),
    "retention": ("useraudit.store_commands", "retention"),
    "web": ("useraudit.webapp.cli", "web"),
    "users": ("useraudit.webapp.users", "users"),
    "prune": ("useraudit.store_commands", "prune"),
    "migrate": ("useraudit.store_commands", "migrate"),
    "integrity": ("useraudit.integrity.commands", "integrity"),
    "verify": ("useraudit.integrity.commands", "verify"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            error = f"{name} is unavailable: {exc}"

            @click.command(name, help=f"(unavailable: {exc})")
            def broken() -> None:
                raise click.ClickException(error)

            return broken


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="useraudit")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
def main(verbose: bool) -> None:
    """User-action audit log: capture, ship, store, search."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # opensearch-py logs every request at INFO and expected 404s as warnings.
    logging.getLogger("opensearch").setLevel(logging.DEBUG if verbose else logging.ERROR)
