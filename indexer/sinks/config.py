"""Sinks from a TOML file (``useraudit indexer run --sinks sinks.toml``).

::

    [sinks.siem]                  # the sink's name: its outbox folder, metrics label
    type = "webhook"              # webhook | syslog | kafka | file
    url = "https://siem.example.com/useraudit"
    secret_env = "SIEM_SECRET"    # HMAC key from the environment (or secret_file)
    # every sink also takes: accounts, actions, outcomes (filters: lists of
    # values, empty = all), backlog_bytes, batch_records, batch_bytes,
    # backoff_base, backoff_cap

Unknown keys are errors, so a typo never silently turns a filter off.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import EventFilter, Sink
from .outbox import ConfiguredSink, SinkSettings

COMMON = {
    "type",
    "accounts",
    "actions",
    "outcomes",
    "backlog_bytes",
    "batch_records",
    "batch_bytes",
    "backoff_base",
    "backoff_cap",
}


class SinkConfigError(ValueError):
    """The sinks file is wrong; the message names the sink and the key."""


def load_sinks(path: str | Path) -> list[ConfiguredSink]:
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SinkConfigError(f"{path}: {exc}") from exc
    return parse_sinks(data.get("sinks", {}), source=str(path))


def parse_sinks(table: dict[str, Any], source: str = "sinks") -> list[ConfiguredSink]:
    out = []
    for name, options in table.items():
        if not isinstance(options, dict):
            raise SinkConfigError(f"{source}: [sinks.{name}] must be a table")
        kind = options.get("type")
        if kind not in BUILDERS:
            raise SinkConfigError(
                f"{source}: sink {name}: type must be one of {sorted(BUILDERS)}, not {kind!r}"
            )
        build, keys = BUILDERS[kind]
        unknown = set(options) - COMMON - keys
        if unknown:
            raise SinkConfigError(f"{source}: sink {name}: unknown keys {sorted(unknown)}")
        specific = {k: v for k, v in options.items() if k in keys}
        try:
            sink = build(name, specific)
            settings = _settings(options)
        except (TypeError, ValueError, KeyError) as exc:
            raise SinkConfigError(f"{source}: sink {name}: {exc}") from exc
        out.append(ConfiguredSink(sink, settings))
    return out


def _settings(options: dict[str, Any]) -> SinkSettings:
    def values(key: str) -> frozenset[str]:
        raw = options.get(key, [])
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            raise ValueError(f"{key} must be a list of strings")
        return frozenset(raw)

    defaults = SinkSettings()
    return SinkSettings(
        filter=EventFilter(values("accounts"), values("actions"), values("outcomes")),
        backlog_bytes=int(options.get("backlog_bytes", defaults.backlog_bytes)),
        batch_records=int(options.get("batch_records", defaults.batch_records)),
        batch_bytes=int(options.get("batch_bytes", defaults.batch_bytes)),
        backoff_base=float(options.get("backoff_base", defaults.backoff_base)),
        backoff_cap=float(options.get("backoff_cap", defaults.backoff_cap)),
    )


def _secret(options: dict[str, Any]) -> bytes:
    if "secret_env" in options:
        value = os.environ.get(options["secret_env"])
        if not value:
            raise ValueError(f"environment variable {options['secret_env']} is not set")
        return value.encode()
    if "secret_file" in options:
        return Path(options["secret_file"]).read_bytes().strip()
    raise ValueError("set secret_env or secret_file (the HMAC key)")


def _webhook(name: str, o: dict[str, Any]) -> Sink:
    from .webhook import WebhookSink

    return WebhookSink(
        name,
        o["url"],
        secret=_secret(o),
        ca_file=o.get("ca_file"),
        timeout=float(o.get("timeout", 10)),
        headers=o.get("headers"),
    )


def _file(name: str, o: dict[str, Any]) -> Sink:
    from .files import FileSink

    return FileSink(
        name,
        o["directory"],
        prefix=o.get("prefix", "useraudit-events"),
        max_bytes=int(o.get("max_bytes", 64 * 1024 * 1024)),
        keep=int(o.get("keep", 0)),
    )


def _syslog(name: str, o: dict[str, Any]) -> Sink:
    from .syslog import SyslogSink

    return SyslogSink(
        name,
        o["host"],
        int(o["port"]),
        tls=bool(o.get("tls", False)),
        ca_file=o.get("ca_file"),
        facility=int(o.get("facility", 13)),
        app_name=o.get("app_name", "useraudit"),
        hostname=o.get("hostname"),
        confirm_after=float(o.get("confirm_after", 2.0)),
        timeout=float(o.get("timeout", 10)),
    )


def _kafka(name: str, o: dict[str, Any]) -> Sink:
    from .kafka import KafkaSink

    return KafkaSink(
        name,
        o["bootstrap_servers"],
        o["topic"],
        config=dict(o.get("config", {})),
        timeout=float(o.get("timeout", 30)),
    )


BUILDERS: dict[str, tuple[Callable[[str, dict[str, Any]], Sink], set[str]]] = {
    "webhook": (_webhook, {"url", "secret_env", "secret_file", "ca_file", "timeout", "headers"}),
    "file": (_file, {"directory", "prefix", "max_bytes", "keep"}),
    "syslog": (
        _syslog,
        {
            "host",
            "port",
            "tls",
            "ca_file",
            "facility",
            "app_name",
            "hostname",
            "confirm_after",
            "timeout",
        },
    ),  # fmt: skip
    "kafka": (_kafka, {"bootstrap_servers", "topic", "config", "timeout"}),
}
