"""``useraudit capture``: operators can check proxy and rule settings."""

from __future__ import annotations

import sys
import types

import pytest
from click.testing import CliRunner

from useraudit.cli import main
from useraudit.middleware.rules import Rule, Rules


def test_client_ip_command_follows_trusted_proxies() -> None:
    """The command prints what the middleware would record, and says when XFF was ignored."""
    runner = CliRunner()
    args = ["capture", "client-ip", "--peer", "10.0.0.1", "--forwarded-for", "6.6.6.6, 1.2.3.4"]
    trusted = runner.invoke(main, [*args, "--trusted-proxies", "1"])
    assert trusted.exit_code == 0 and trusted.stdout.strip() == "1.2.3.4"
    untrusted = runner.invoke(main, args)
    assert untrusted.stdout.strip() == "10.0.0.1" and "ignored" in untrusted.stderr


def test_rule_command_shows_the_derived_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rules object named by module:attribute is matched against method, path and status."""
    module = types.ModuleType("host_audit_rules")
    module.RULES = Rules([Rule("GET", "/", "client_report.downloaded")])  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "host_audit_rules", module)
    runner = CliRunner()
    hit = runner.invoke(main, ["capture", "rule", "host_audit_rules:RULES", "GET", "/", "200"])
    assert hit.exit_code == 0 and hit.stdout.startswith("client_report.downloaded")
    miss = runner.invoke(main, ["capture", "rule", "host_audit_rules:RULES", "POST", "/", "200"])
    assert miss.exit_code == 1 and "no event" in miss.stdout
