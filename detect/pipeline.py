"""The indexer stages this package provides, built from the indexer's options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from useraudit.store.alerts import detection_store
from useraudit.store.base import Store

from .engine import DetectionEngine
from .settings import DetectionSettings


def build_stages(
    store: Store,
    *,
    detect: bool = True,
    settings_path: Path | None = None,
    geoip_city: Path | None = None,
    geoip_asn: Path | None = None,
    install: bool = True,
) -> tuple[list[Any], list[str]]:
    """(stages in pipeline order, lines saying what is on and off)."""
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
    engine = DetectionEngine(
        alerts,
        settings=settings,
        geo=geo_levels,
        on_alert=notifier.wake if notifier else None,
        background=True,
    )
    stages.append(engine)
    if notifier is not None:
        stages.append(notifier)
    off = [f"{r['rule']} ({r['why']})" for r in engine.status("") if r["state"] == "off"]
    notes.append(
        f"detection: {len(engine.rules) - len(off)} rules on"
        + (f"; off: {', '.join(off)}" if off else "")
    )
    return stages, notes
