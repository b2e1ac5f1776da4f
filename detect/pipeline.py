"""The indexer stages this package provides, built from the indexer's options."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from useraudit.store.alerts import detection_store
from useraudit.store.base import Store, StoreError
from useraudit.store.sqlite.alerts import SQLiteDetectionStore

from .engine import DetectionEngine
from .rules import BUILTIN_RULES, Rule
from .settings import DetectionSettings
from .worker import DetectionProcess, worker_possible

log = logging.getLogger("useraudit.detect")


def build_stages(
    store: Store,
    *,
    detect: bool = True,
    settings_path: Path | None = None,
    geoip_city: Path | None = None,
    geoip_asn: Path | None = None,
    install: bool = True,
    worker: str = "auto",
    rules: Sequence[Rule] = BUILTIN_RULES,
) -> tuple[list[Any], list[str]]:
    """(stages in pipeline order, lines saying what is on and off).

    ``worker``: where the detection engine runs. ``"auto"``: in a worker
    process on a SQLite store (see :mod:`.worker`), else on a thread;
    ``"thread"``: on a thread of the indexer's process. ``rules``: the
    built-in ones by default; a host app passes its own beside them.
    """
    if worker not in ("auto", "thread"):
        raise ValueError(f"worker must be 'auto' or 'thread', not {worker!r}")
    stages: list[Any] = []
    notes: list[str] = []
    geo_levels: set[str] = set()
    if geoip_city or geoip_asn:
        from .geoip import GeoIPStage

        geo = GeoIPStage(city=geoip_city, asn=geoip_asn)
        stages.append(geo)
        geo_levels = geo.levels
        notes.append(f"geoip: {geo.describe()}")
    if not detect:
        notes.append("detection: off (--no-detect)")
        return stages, notes
    settings = DetectionSettings.load(settings_path)
    alerts = detection_store(store)
    if install:
        notes += alerts.install()
    notifier = None
    if any((conf.get("notify") or {}) for conf in settings.accounts.values()):
        from .notify import Notifier, NotifierThread

        notifier = NotifierThread(Notifier(alerts, settings))
        notes.append(
            "notifications: on for "
            + ", ".join(sorted(a for a, c in settings.accounts.items() if c.get("notify")))
        )
    on_alert = notifier.wake if notifier else None
    engine = DetectionEngine(alerts, rules, settings, geo=geo_levels, on_alert=on_alert)
    stage: Any = None
    if worker == "auto" and isinstance(alerts, SQLiteDetectionStore):
        why_not = worker_possible(engine)
        if why_not is None:
            try:
                stage = DetectionProcess(engine, alerts.path, on_alert=on_alert)
                notes.append("detection: in a worker process")
            except StoreError as exc:
                why_not = str(exc)
        if why_not is not None:
            log.warning("detect: detection runs on a thread: %s", why_not)
            notes.append(f"detection: on a thread ({why_not})")
    if stage is None:
        engine = DetectionEngine(
            alerts, rules, settings, geo=geo_levels, on_alert=on_alert, background=True
        )
        stage = engine
    stages.append(stage)
    if notifier is not None:
        stages.append(notifier)
    off = [f"{r['rule']} ({r['why']})" for r in engine.status("") if r["state"] == "off"]
    notes.append(
        f"detection: {len(engine.rules) - len(off)} rules on"
        + (f"; off: {', '.join(off)}" if off else "")
    )
    return stages, notes
