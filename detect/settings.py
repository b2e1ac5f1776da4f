"""Detection settings: rule switches and thresholds, per account, from one TOML file.

``useraudit indexer run --detect-config detections.toml`` (or
``USERAUDIT_DETECT_CONFIG``)::

    [defaults]
    admin_roles = ["USER_ADMIN"]

    [defaults.rules.brute_force]
    threshold = 5           # failed sign-ins of one user ...
    window_s = 600          # ... within 10 minutes

    [accounts.acme.rules.brute_force]
    threshold = 10          # acme's users mistype more

    [accounts.acme.rules.new_device]
    enabled = false

    [accounts.acme.working_hours]
    start = "08:00"
    end = "19:00"
    days = [0, 1, 2, 3, 4]  # Monday = 0
    timezone = "Europe/Berlin"

    [accounts.acme.notify]
    webhook_url = "https://hooks.example.com/useraudit"
    webhook_secret = "..."
    email_to = ["security@acme.example"]
    rate_per_hour = 30

    [smtp]
    host = "smtp.example.com"
    port = 587
    starttls = true
    username = "useraudit"
    password = "..."
    sender = "useraudit@example.com"

A rule's parameters are its built-in defaults, overridden by
``[defaults.rules.<rule>]``, overridden by ``[accounts.<id>.rules.<rule>]``.
Unknown rules or parameters are refused when the file is read, naming them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """The detection settings file says something that cannot be used."""


@dataclass
class DetectionSettings:
    defaults: dict[str, Any] = field(default_factory=dict)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    smtp: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None) -> DetectionSettings:
        if path is None:
            return cls()
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read detection settings {path}: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DetectionSettings:
        unknown = set(data) - {"defaults", "accounts", "smtp"}
        if unknown:
            raise SettingsError(f"unknown sections in detection settings: {sorted(unknown)}")
        return cls(
            defaults=dict(data.get("defaults") or {}),
            accounts={str(k): dict(v) for k, v in (data.get("accounts") or {}).items()},
            smtp=dict(data.get("smtp") or {}),
        )

    def account(self, account: str) -> dict[str, Any]:
        return self.accounts.get(account) or {}

    def value(self, account: str, name: str, default: Any = None) -> Any:
        """An account-level setting (admin_roles, working_hours), else the default's."""
        acc = self.account(account)
        if name in acc:
            return acc[name]
        return self.defaults.get(name, default)

    def rule_params(self, account: str, rule: str, builtin: Mapping[str, Any]) -> dict[str, Any]:
        params = dict(builtin)
        params.setdefault("enabled", True)
        params.update((self.defaults.get("rules") or {}).get(rule) or {})
        params.update((self.account(account).get("rules") or {}).get(rule) or {})
        return params

    def notify(self, account: str) -> dict[str, Any]:
        return dict(self.account(account).get("notify") or {})

    def check(self, rules: Mapping[str, Mapping[str, Any]]) -> None:
        """Refuse rule names and parameters no rule knows (typos must not silently do nothing)."""
        scopes = [("defaults", self.defaults)] + [
            (f"accounts.{k}", v) for k, v in self.accounts.items()
        ]
        for where, scope in scopes:
            for rule, params in (scope.get("rules") or {}).items():
                if rule not in rules:
                    raise SettingsError(
                        f"{where}.rules.{rule}: no such rule (rules: {', '.join(sorted(rules))})"
                    )
                extra = set(params) - set(rules[rule]) - {"enabled"}
                if extra:
                    raise SettingsError(
                        f"{where}.rules.{rule}: unknown parameters {sorted(extra)} "
                        f"(known: {sorted(rules[rule])})"
                    )
