"""useraudit: who did what, when, from where, with what result.

The path of an event, and where each step lives::

    record() / WSGI+ASGI middleware / structlog processor   useraudit.middleware
        (masks secrets)
    → durable spool                                           useraudit.spool
    → indexer (enrich: user agent, IP; dead letters)          useraudit.indexer
      stages: detection, sealing, sinks                       useraudit.detect, .integrity
    → Store: OpenSearch or embedded SQLite                    useraudit.store
    → search API → admin UI, facets, XLSX export              useraudit.webapp
    OpenSearch → Dashboards (saved objects)                   useraudit.index_templates

Fields are named once, in :mod:`useraudit.schema`; actions in
:mod:`useraudit.catalog`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["configure", "record", "diff", "__version__"]


def record(action: str, **kwargs: Any) -> str | None:
    """Record an audit event; see :meth:`useraudit.middleware.recorder.Recorder.record`."""
    from useraudit.middleware.recorder import record as _record

    return _record(action, **kwargs)


def configure(**kwargs: Any) -> Any:
    """Configure the process-wide recorder; see :class:`useraudit.middleware.recorder.Recorder`."""
    from useraudit.middleware.recorder import configure as _configure

    return _configure(**kwargs)


def diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(comments, params) describing a settings change; see ``recorder.diff``."""
    from useraudit.middleware.recorder import diff as _diff

    return _diff(before, after)
