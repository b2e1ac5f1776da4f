"""Suspicious-activity detection: rules run by the indexer as events arrive.

The engine (:class:`DetectionEngine`) is an indexer stage: it sees every
stored event once (at least once, idempotently), keeps per-account state in
the store and writes alerts there (:mod:`useraudit.store.alerts`). Rules are
in :mod:`.rules`; host apps add their own by subclassing :class:`Rule`.
See docs/detections.md.
"""

from __future__ import annotations

from .engine import DetectionEngine, DetectStats
from .rules import BUILTIN_RULES, Finding, Rule, device_of, network_of, user_of
from .settings import DetectionSettings, SettingsError
from .state import StateView

__all__ = [
    "BUILTIN_RULES",
    "DetectStats",
    "DetectionEngine",
    "DetectionSettings",
    "Finding",
    "Rule",
    "SettingsError",
    "StateView",
    "device_of",
    "network_of",
    "user_of",
]
