"""The event catalog holds the product page's actions word for word, with stable codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import SEED_PAGE

from useraudit.catalog import ACTION_CODE, CATALOG, Catalog, UnknownProduct
from useraudit.cli import main as cli

PRODUCTS = {"Common events": "common", "Actions in JAICP": "jaicp"}


def seed_actions() -> list[tuple[str, str, str]]:
    """(product, group, label) for every action listed on the product page.

    The page nests lists: a capitalised bullet followed by lower-case
    bullets is a prefix ("Custom role" + "renamed"); a bullet ending in
    "actions" heads the bullets under it.
    """
    lines = SEED_PAGE.read_text().splitlines()
    start = lines.index("List of logged actions")
    out: list[tuple[str, str, str]] = []
    product = group = None
    bullets: list[str] = []

    def flush() -> None:
        nonlocal bullets
        prefix = ""
        for i, text in enumerate(bullets):
            nxt = bullets[i + 1] if i + 1 < len(bullets) else ""
            if text[0].isupper():
                prefix = text
            if text[0].islower():
                out.append((product, group, f"{prefix} {text}"))
            elif nxt and nxt[0].islower():
                continue  # a prefix, not an action of its own
            elif text.endswith("actions"):
                continue  # a heading over the bullets below it
            else:
                out.append((product, group, text))
        bullets = []

    for raw in lines[start + 1 :]:
        line = raw.strip()
        if not line or line == "Open list":
            continue
        if line in PRODUCTS:
            flush()
            product = PRODUCTS[line]
            continue
        if line.startswith("- "):
            bullets.append(line[2:].strip())
        else:
            flush()
            group = line
    flush()
    return out


def test_the_seed_parses_into_many_actions() -> None:
    """The parser finds every group of the page (guards the test below
    against a silent misparse)."""
    actions = seed_actions()
    assert len(actions) >= 65
    assert ("common", "Custom role", "Custom role renamed") in actions
    assert (
        "common",
        "User account",
        "Account is blocked, too many failed sign-in attempts",
    ) in actions
    assert ("jaicp", "Log obfuscation rules", "Masking rule template deleted") in actions
    assert ("jaicp", "Environment variables", "Environment variable delete") in actions
    assert ("jaicp", "Labels", "Task label removed from catalog") in actions


@pytest.mark.parametrize("product,group,label", seed_actions())
def test_every_seed_action_is_in_the_catalog(product: str, group: str, label: str) -> None:
    """Each action of the page has a catalog entry with its exact label, product and group."""
    matches = [a for a in CATALOG.actions(product) if a.label == label]
    assert len(matches) == 1, f"{label!r} missing from {product}"
    assert matches[0].group == group


def test_the_catalog_has_nothing_the_page_lacks() -> None:
    """Common events and JAICP hold exactly the page's actions, no inventions."""
    seeded = {(p, label) for p, _g, label in seed_actions()}
    catalogued = {
        (a.product, a.label) for a in CATALOG.actions() if a.product in ("common", "jaicp")
    }
    assert catalogued == seeded


def test_codes_are_stable_dotted_words_and_unique() -> None:
    """Every code is dotted lower-case and unique; a snapshot pins a few so renames are caught."""
    codes = [a.code for a in CATALOG.actions()]
    assert len(codes) == len(set(codes))
    assert all(ACTION_CODE.match(c) for c in codes)
    assert CATALOG.get("custom_role.renamed").label == "Custom role renamed"
    assert CATALOG.get("user.signed_in").category == ("authentication",)
    assert CATALOG.get("token.refreshed").group == "API tokens"


def test_hosts_register_their_own_products_and_actions() -> None:
    """A host app adds a product and actions; bad codes and unknown products are refused clearly."""
    catalog = Catalog()
    catalog.register_product("billing", "Billing")
    action = catalog.register_action(
        "invoice.paid", "Invoice paid", product="billing", group="Invoices"
    )
    assert catalog.get("invoice.paid") == action
    assert catalog.groups("billing") == ["Invoices"]
    with pytest.raises(ValueError, match="dotted lower-case"):
        catalog.register_action("Invoice Paid", "x", product="billing", group="g")
    with pytest.raises(UnknownProduct):
        catalog.register_action("x.y", "x", product="nope", group="g")
    with pytest.raises(ValueError, match="already registered"):
        catalog.register_action("invoice.paid", "Other label", product="billing", group="Invoices")


def test_events_catalog_command_prints_every_action() -> None:
    """`useraudit events catalog --json` prints one line per action with
    code, label, product and group."""
    result = CliRunner().invoke(cli, ["events", "catalog", "--json"])
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert len(rows) == len(CATALOG)
    assert {
        "code": "task_label.removed_from_catalog",
        "label": "Task label removed from catalog",
    }.items() <= next(r for r in rows if r["code"] == "task_label.removed_from_catalog").items()
    text = CliRunner().invoke(cli, ["events", "catalog"]).output
    assert re.search(r"Common events \(common\)", text) and "Environment variable delete" in text


def test_field_table_in_docs_is_generated_from_the_schema() -> None:
    """docs/fields.md carries the schema's current field table (regenerate it if this fails)."""
    from useraudit.schema import FIELDS, fields_markdown

    doc = (Path(__file__).resolve().parents[2] / "docs" / "fields.md").read_text()
    assert fields_markdown() in doc
    assert all(f"`{f.name}`" in doc for f in FIELDS)
