"""What useraudit installs into OpenSearch and Dashboards, and the commands that install it.

``events.json`` beside this file is the composable index template for
prefix ``useraudit`` that :mod:`useraudit.store.opensearch.template` renders
from the schema, committed so reviewers and Dashboards users can read the
mapping; a test keeps the two equal (regenerate with ``make regen``).
``saved_objects.py`` renders the Dashboards saved objects (committed in
``dashboards/``), ``dashboards_client.py`` imports them over HTTP,
``retention.py`` is the retention policy; the ``templates``, ``retention``
and ``dashboards`` commands live in ``commands.py`` and ``dashboards_commands.py``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from useraudit.store.opensearch.template import (
    DEFAULT_PREFIX,
    NORMALIZER,
    index_pattern,
    properties,
    read_alias,
    render,
    template_name,
)

__all__ = [
    "DEFAULT_PREFIX",
    "GOLDEN",
    "NORMALIZER",
    "index_pattern",
    "load_golden",
    "properties",
    "read_alias",
    "render",
    "template_name",
    "write_golden",
]

GOLDEN = Path(__file__).parent / "events.json"


def load_golden(prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    """The committed template, re-targeted to ``prefix``."""
    body = json.loads(GOLDEN.read_text())
    if prefix == DEFAULT_PREFIX:
        return body
    text = json.dumps(body).replace(f'"{DEFAULT_PREFIX}-events', f'"{prefix}-events')
    return copy.deepcopy(json.loads(text))


def write_golden() -> None:
    GOLDEN.write_text(json.dumps(render(), indent=2, sort_keys=True) + "\n")
