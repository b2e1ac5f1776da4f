"""Retention on OpenSearch: an ISM policy, or the same by index date.

The policy and its defaults are :mod:`useraudit.store.retention`'s.

Where the cluster has the Index State Management plugin, ``templates
install`` installs :func:`ism_policy` with an ``ism_template`` that attaches
it to every new ``<prefix>-events-*`` index: *hot* → *warm* after
``warm_after`` days (read-only, force-merged to one segment) → deleted after
``delete_after`` days.

Where it does not (the plain OpenSearch jars our dev node runs; ISM is not
published to Maven Central), ``useraudit retention apply`` does the same
from the outside, deciding by the date in each index's name. Run it daily
(cron, a Kubernetes CronJob). An index's age counts from the *end* of its
time bucket, so a monthly index is made read-only or deleted only when its
newest possible event is old enough.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opensearchpy import exceptions as os_exc

from useraudit.config import DEFAULT_DELETE_AFTER_DAYS, DEFAULT_WARM_AFTER_DAYS

from .template import index_pattern


def policy_id(prefix: str) -> str:
    return f"{prefix}-events-retention"


def ism_policy(
    prefix: str,
    warm_after: int | None = DEFAULT_WARM_AFTER_DAYS,
    delete_after: int = DEFAULT_DELETE_AFTER_DAYS,
) -> dict[str, Any]:
    """The ISM policy body for ``PUT _plugins/_ism/policies/<policy_id>``."""
    if warm_after is not None and warm_after >= delete_after:
        raise ValueError("warm_after must be shorter than delete_after")
    states: list[dict[str, Any]] = []
    delete_transition = {
        "state_name": "delete",
        "conditions": {"min_index_age": f"{delete_after}d"},
    }
    if warm_after is not None:
        states.append(
            {
                "name": "hot",
                "actions": [],
                "transitions": [
                    {"state_name": "warm", "conditions": {"min_index_age": f"{warm_after}d"}}
                ],
            }
        )
        states.append(
            {
                "name": "warm",
                "actions": [{"read_only": {}}, {"force_merge": {"max_num_segments": 1}}],
                "transitions": [delete_transition],
            }
        )
    else:
        states.append({"name": "hot", "actions": [], "transitions": [delete_transition]})
    states.append({"name": "delete", "actions": [{"delete": {}}], "transitions": []})
    return {
        "policy": {
            "description": f"useraudit retention for {index_pattern(prefix)}: "
            f"read-only after {warm_after} days, deleted after {delete_after} days",
            "default_state": "hot",
            "states": states,
            "ism_template": [{"index_patterns": [index_pattern(prefix)], "priority": 100}],
        }
    }


def has_ism(client: Any) -> bool:
    try:
        plugins = client.cat.plugins(format="json")
    except os_exc.TransportError:
        return False
    return any(p.get("component") == "opensearch-index-management" for p in plugins)


def install_policy(
    client: Any,
    prefix: str,
    warm_after: int | None = DEFAULT_WARM_AFTER_DAYS,
    delete_after: int = DEFAULT_DELETE_AFTER_DAYS,
) -> str:
    """Install the ISM policy when the plugin is there; otherwise say what to do instead."""
    if not has_ism(client):
        return (
            "ISM plugin not available on this cluster: run `useraudit retention apply` daily "
            "(same policy, decided by index date)"
        )
    body = ism_policy(prefix, warm_after, delete_after)
    client.transport.perform_request(
        "PUT", f"/_plugins/_ism/policies/{policy_id(prefix)}", body=body
    )
    return f"ISM policy {policy_id(prefix)} installed"


@dataclass(frozen=True)
class Decision:
    index: str
    bucket_end: datetime
    action: str  # "keep", "read_only", "delete"


_NAME = re.compile(r"-events-(\d{4})\.(\d{2})(?:\.(\d{2}))?$")


def bucket_end(index: str) -> datetime | None:
    """The first instant after the index's time bucket, from its name."""
    m = _NAME.search(index)
    if not m:
        return None
    year, month, day = int(m.group(1)), int(m.group(2)), m.group(3)
    if day is not None:
        return datetime(year, month, int(day), tzinfo=UTC) + timedelta(days=1)
    return datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)


def plan(
    indices: list[str], now: datetime, warm_after: int | None, delete_after: int
) -> list[Decision]:
    out = []
    for index in sorted(indices):
        end = bucket_end(index)
        if end is None:
            continue
        age = now - end
        if age >= timedelta(days=delete_after):
            action = "delete"
        elif warm_after is not None and age >= timedelta(days=warm_after):
            action = "read_only"
        else:
            action = "keep"
        out.append(Decision(index, end, action))
    return out


def apply(
    client: Any,
    prefix: str,
    *,
    warm_after: int | None = DEFAULT_WARM_AFTER_DAYS,
    delete_after: int = DEFAULT_DELETE_AFTER_DAYS,
    now: datetime | None = None,
    dry_run: bool = False,
    before_delete: Callable[[datetime], None] | None = None,
) -> list[tuple[Decision, str]]:
    """Make old indices read-only and force-merged, delete expired ones; returns what was done.

    ``before_delete(cutoff)`` runs once before the first index is deleted:
    every event before ``cutoff`` (the end of the newest bucket deleted) is
    in an index about to go. The integrity ledger signs it there.
    """
    now = now or datetime.now(UTC)
    indices = list(client.indices.get(index=index_pattern(prefix), ignore_unavailable=True))
    done: list[tuple[Decision, str]] = []
    decisions = plan(indices, now, warm_after, delete_after)
    doomed = [d.bucket_end for d in decisions if d.action == "delete"]
    if doomed and not dry_run and before_delete is not None:
        before_delete(max(doomed))
    for decision in decisions:
        if decision.action == "keep":
            done.append((decision, "kept"))
            continue
        if dry_run:
            done.append((decision, f"would {decision.action.replace('_', '-')}"))
            continue
        if decision.action == "delete":
            client.indices.delete(index=decision.index)
            done.append((decision, "deleted"))
            continue
        settings = client.indices.get_settings(index=decision.index)[decision.index]["settings"][
            "index"
        ]
        if settings.get("blocks", {}).get("write") == "true":
            done.append((decision, "already read-only"))
            continue
        client.indices.put_settings(index=decision.index, body={"index.blocks.write": True})
        client.indices.forcemerge(index=decision.index, max_num_segments=1)
        done.append((decision, "made read-only, force-merged to 1 segment"))
    return done
