"""Alerts and detection state on OpenSearch: two indices with their own template.

* ``<prefix>-alerts``: one document per alert, ``_id`` = the alert id.
  An id this store has not written before goes as a plain ``create`` (half
  the node's work of a scripted upsert, and most alerts are new); where it
  exists already (another indexer's, or stored before a restart) the 409 is
  answered by a scripted upsert in a second request. Known ids go as
  scripted upserts (``retry_on_conflict``) straight away, so two indexers
  merging into one alert serialise on the document and neither loses the
  other's events; a replay that adds no event id is a ``noop``.
* ``<prefix>-detect-state``: one document per (account, key), value kept
  unindexed (``enabled: false``: rule state never grows the mapping). Reads
  are realtime ``mget``s; writes carry ``if_seq_no``/``if_primary_term``
  (or ``create`` for a new key), so a save over someone else's is refused
  with 409 and reported as a conflict.

Both are installed by the template ``<prefix>-alerts`` (pattern
``<prefix>-alerts*`` and ``<prefix>-detect-state*``), one shard each.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy import exceptions as os_exc

from useraudit._json import dumps

from ..alerts import (
    MAX_EVENT_IDS,
    NEW,
    Alert,
    DetectionStore,
    UpsertResult,
    check_status,
    status_change,
)
from ..base import StoreError, StoreUnavailable
from .errors import store_error

TEMPLATE_VERSION = 1
# Alert ids this store wrote or met, remembered so they skip the create attempt.
KNOWN_ALERT_IDS = 100_000

# Merges one incoming alert into the stored one, as alerts.merge_alert does.
_UPSERT = """
def s = ctx._source;
def a = params.alert;
if (s.id == null) { for (e in a.entrySet()) { s[e.getKey()] = e.getValue(); } return; }
int added = 0;
for (def i : a.event_ids) {
  if (!s.event_ids.contains(i)) {
    added++;
    if (s.event_ids.size() < params.cap) { s.event_ids.add(i); }
  }
}
if (added == 0) { ctx.op = 'none'; return; }
s.count += added;
if (a.first_seen.compareTo(s.first_seen) < 0) { s.first_seen = a.first_seen; }
if (a.last_seen.compareTo(s.last_seen) > 0) { s.last_seen = a.last_seen; }
if (s.status == 'resolved') {
  s.status = 'open';
  s.history.add(['status': 'open', 'by': 'detection', 'at': a.last_seen]);
}
"""


def _template(prefix: str) -> dict[str, Any]:
    return {
        "index_patterns": [f"{prefix}-alerts*", f"{prefix}-detect-state*"],
        "version": TEMPLATE_VERSION,
        "priority": 200,
        "template": {
            "settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1"},
            "mappings": {
                "dynamic": "false",
                "properties": {
                    "id": {"type": "keyword"},
                    "account": {"type": "keyword"},
                    "rule": {"type": "keyword"},
                    "severity": {"type": "keyword"},
                    "subject": {"type": "keyword"},
                    "user_id": {"type": "keyword"},
                    "title": {"type": "text"},
                    "status": {"type": "keyword"},
                    "status_by": {"type": "keyword"},
                    "status_at": {"type": "date"},
                    "first_seen": {"type": "date"},
                    "last_seen": {"type": "date"},
                    "count": {"type": "long"},
                    "event_ids": {"type": "keyword"},
                    "notified": {"type": "boolean"},
                    "details": {"type": "object", "enabled": False},
                    "history": {"type": "object", "enabled": False},
                    "key": {"type": "keyword"},
                    "value": {"type": "object", "enabled": False},
                },
            },
        },
    }


def _state_id(account: str, key: str) -> str:
    return hashlib.sha256(f"{account}\x1f{key}".encode()).hexdigest()[:40]


class OpenSearchDetectionStore(DetectionStore):
    def __init__(self, client: OpenSearch, prefix: str, url: str) -> None:
        self.client = client
        self.prefix = prefix
        self.url = url
        self.alerts_index = f"{prefix}-alerts"
        self.state_index = f"{prefix}-detect-state"
        self._known: OrderedDict[str, None] = OrderedDict()

    def _call(self, doing: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except os_exc.TransportError as exc:
            raise store_error(self.url, exc, doing) from exc

    def install(self) -> list[str]:
        name = f"{self.prefix}-alerts"
        self._call(
            "installing the alerts template",
            self.client.indices.put_index_template,
            name=name,
            body=_template(self.prefix),
        )
        for index in (self.alerts_index, self.state_index):
            try:
                self.client.indices.create(index=index)
            except os_exc.RequestError as exc:
                if "resource_already_exists" not in str(exc):
                    raise store_error(self.url, exc, f"creating {index}") from exc
            except os_exc.TransportError as exc:
                raise store_error(self.url, exc, f"creating {index}") from exc
        # Searches on an index whose shard has not started answer 503.
        self._call(
            "waiting for the alerts indices",
            self.client.cluster.health,
            index=f"{self.alerts_index},{self.state_index}",
            wait_for_status="yellow",
        )
        return [f"alerts template {name} installed (version {TEMPLATE_VERSION})"]

    def uninstall(self) -> None:
        """Delete both indices and the template (tests, operators)."""
        self.client.indices.delete(
            index=f"{self.alerts_index},{self.state_index}", ignore_unavailable=True
        )
        try:
            self.client.indices.delete_index_template(name=f"{self.prefix}-alerts")
        except os_exc.NotFoundError:
            pass

    # -- alerts ------------------------------------------------------------------

    def upsert(self, alerts: Sequence[Alert]) -> list[UpsertResult]:
        return self.write(alerts, [])[0]

    def write(
        self, alerts: Sequence[Alert], items: Sequence[tuple[str, str, dict, Any]]
    ) -> tuple[list[UpsertResult], list[tuple[str, str]], dict[tuple[str, str], tuple[dict, Any]]]:
        """Alerts and state in one bulk request (alerts first in it): one round trip.

        A bulk is not a transaction: if an alert item fails while the state
        items are saved, this raises and the engine writes the batch's
        alerts again (an upsert by stable id, so nothing doubles). A create
        that meets a stored alert is merged by a second request right after
        this one; either way rules decide the same on a replay (they compare
        an event only with entries before it), so a crash in between
        re-finds and merges the same alert.
        """
        if not alerts and not items:
            return [], [], {}
        creates = [alert.id not in self._known for alert in alerts]
        lines = self._alert_lines(alerts, creates) + self._state_lines(items)
        answers = self._bulk("the alerts and detection state bulk request", lines)
        if len(answers) != len(alerts) + len(items):
            raise StoreUnavailable(
                f"alerts and state bulk answered {len(answers)} of {len(alerts) + len(items)} items"
            )
        results: list[UpsertResult | None] = []
        again: list[int] = []  # creates that met a stored alert: merge them
        for n, item in enumerate(answers[: len(alerts)]):
            result = self._upsert_result(item)
            if result is None:
                again.append(n)
            results.append(result)
        conflicts, saved = self._state_results(items, answers[len(alerts) :])
        if again:
            merges = [alerts[n] for n in again]
            answers = self._bulk(
                "the alerts bulk request", self._alert_lines(merges, [False] * len(merges))
            )
            if len(answers) != len(merges):
                raise StoreUnavailable(
                    f"alerts bulk answered {len(answers)} of {len(merges)} items"
                )
            for n, item in zip(again, answers, strict=True):
                results[n] = self._upsert_result(item)
        self._remember(alerts)
        return [r or "unchanged" for r in results], conflicts, saved

    def _bulk(self, doing: str, lines: list[bytes]) -> list[dict]:
        lines.append(b"")
        response = self._call(doing, self.client.bulk, body=b"\n".join(lines))
        return list(response.get("items", []))

    def _remember(self, alerts: Sequence[Alert]) -> None:
        known = self._known
        for alert in alerts:
            known[alert.id] = None
            known.move_to_end(alert.id)
        while len(known) > KNOWN_ALERT_IDS:
            known.popitem(last=False)

    def _alert_lines(self, alerts: Sequence[Alert], creates: Sequence[bool]) -> list[bytes]:
        """NDJSON lines: a create for an alert new to this store, else a scripted upsert."""
        lines: list[bytes] = []
        for alert, create in zip(alerts, creates, strict=True):
            if create:
                lines.append(dumps({"create": {"_index": self.alerts_index, "_id": alert.id}}))
                lines.append(dumps(alert.as_dict()))
                continue
            lines.append(
                dumps(
                    {
                        "update": {
                            "_index": self.alerts_index,
                            "_id": alert.id,
                            "retry_on_conflict": 10,
                        }
                    }
                )
            )
            lines.append(
                dumps(
                    {
                        "scripted_upsert": True,
                        "upsert": {},
                        "script": {
                            "source": _UPSERT,
                            "lang": "painless",
                            "params": {"alert": alert.as_dict(), "cap": MAX_EVENT_IDS},
                        },
                    }
                )
            )
        return lines

    @staticmethod
    def _upsert_result(item: dict) -> UpsertResult | None:
        """What one alert item did; None for a create that met a stored alert (merge it)."""
        op, info = next(iter(item.items()))
        status = info.get("status", 500)
        if op == "create" and status == 409:
            return None
        if status == 429 or status >= 500:
            raise StoreUnavailable(f"alerts upsert answered {status}: {info.get('error')}")
        if status >= 300:
            raise StoreError(f"alerts upsert refused ({status}): {info.get('error')}")
        result = info.get("result")
        return (
            "created" if result == "created" else "updated" if result == "updated" else "unchanged"
        )

    def get(self, account: str, alert_id: str) -> Alert | None:
        try:
            doc = self.client.get(index=self.alerts_index, id=alert_id)
        except os_exc.NotFoundError:
            return None
        except os_exc.TransportError as exc:
            raise store_error(self.url, exc, "reading an alert") from exc
        alert = Alert.from_dict(doc["_source"])
        return alert if alert.account == account else None

    def _search(self, query: dict, sort: list, limit: int) -> list[Alert]:
        resp = self._call(
            "the alerts search",
            self.client.search,
            index=self.alerts_index,
            body={"query": query, "sort": sort, "size": limit},
            ignore_unavailable=True,  # not installed yet: no alerts
        )
        return [Alert.from_dict(h["_source"]) for h in resp["hits"]["hits"]]

    def list_alerts(
        self, account: str, statuses: Sequence[str] = (), limit: int = 500
    ) -> list[Alert]:
        filters: list[dict] = [{"term": {"account": account}}]
        if statuses:
            filters.append({"terms": {"status": list(statuses)}})
        return self._search(
            {"bool": {"filter": filters}}, [{"last_seen": "desc"}, {"id": "asc"}], limit
        )

    def set_status(self, account: str, alert_id: str, status: str, by: str, at: str) -> Alert:
        check_status(status)
        for _attempt in range(10):
            try:
                doc = self.client.get(index=self.alerts_index, id=alert_id)
            except os_exc.NotFoundError:
                raise KeyError(alert_id) from None
            except os_exc.TransportError as exc:
                raise store_error(self.url, exc, "reading an alert") from exc
            alert = Alert.from_dict(doc["_source"])
            if alert.account != account:
                raise KeyError(alert_id)
            changed = status_change(alert, status, by, at)
            try:
                self.client.index(
                    index=self.alerts_index,
                    id=alert_id,
                    body=changed.as_dict(),
                    if_seq_no=doc["_seq_no"],
                    if_primary_term=doc["_primary_term"],
                    refresh="wait_for",
                )
                return changed
            except os_exc.ConflictError:
                continue  # the indexer merged events meanwhile: apply to the new version
            except os_exc.TransportError as exc:
                raise store_error(self.url, exc, "changing an alert") from exc
        raise StoreUnavailable(f"alert {alert_id} kept changing; try again")

    def pending_notifications(self, limit: int = 100) -> list[Alert]:
        return self._search(
            {"bool": {"filter": [{"term": {"notified": False}}]}},
            [{"last_seen": "asc"}, {"id": "asc"}],
            limit,
        )

    def mark_notified(self, alerts: Sequence[Alert]) -> None:
        if not alerts:
            return
        body: list[dict] = []
        for alert in alerts:
            body.append(
                {"update": {"_index": self.alerts_index, "_id": alert.id, "retry_on_conflict": 10}}
            )
            body.append({"doc": {"notified": True}})
        self._call("marking alerts notified", self.client.bulk, body=body, refresh="wait_for")

    # -- state -----------------------------------------------------------------------

    def load_state(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[dict, Any]]:
        out: dict[tuple[str, str], tuple[dict, Any]] = {k: ({}, NEW) for k in keys}
        if not keys:
            return out
        by_id = {_state_id(a, k): (a, k) for a, k in keys}
        resp = self._call(
            "reading detection state",
            self.client.mget,
            index=self.state_index,
            body={"ids": list(by_id)},
            realtime=True,
        )
        for doc in resp["docs"]:
            if doc.get("found"):
                pair = by_id[doc["_id"]]
                out[pair] = (
                    doc["_source"].get("value") or {},
                    (doc["_seq_no"], doc["_primary_term"]),
                )
        return out

    def save_state(self, items: Sequence[tuple[str, str, dict, Any]]) -> list[tuple[str, str]]:
        return self.save_state_versions(items)[0]

    def save_state_versions(
        self, items: Sequence[tuple[str, str, dict, Any]]
    ) -> tuple[list[tuple[str, str]], dict[tuple[str, str], tuple[dict, Any]]]:
        if not items:
            return [], {}
        answers = self._bulk("saving detection state", self._state_lines(items))
        return self._state_results(items, answers)

    def _state_lines(self, items: Sequence[tuple[str, str, dict, Any]]) -> list[bytes]:
        lines: list[bytes] = []
        for account, key, value, version in items:
            meta: dict[str, Any] = {"_index": self.state_index, "_id": _state_id(account, key)}
            if version == NEW:
                lines.append(dumps({"create": meta}))
            else:
                meta["if_seq_no"], meta["if_primary_term"] = version
                lines.append(dumps({"index": meta}))
            lines.append(dumps({"account": account, "key": key, "value": value}))
        return lines

    @staticmethod
    def _state_results(
        items: Sequence[tuple[str, str, dict, Any]], answers: Sequence[dict]
    ) -> tuple[list[tuple[str, str]], dict[tuple[str, str], tuple[dict, Any]]]:
        conflicts: list[tuple[str, str]] = []
        saved: dict[tuple[str, str], tuple[dict, Any]] = {}
        for (account, key, value, _ver), item in zip(items, answers, strict=True):
            info = next(iter(item.values()))
            status = info.get("status", 500)
            if status == 409:
                conflicts.append((account, key))
            elif status == 429 or status >= 500:
                raise StoreUnavailable(f"saving detection state answered {status}")
            elif status >= 300:
                raise StoreError(f"saving detection state refused ({status}): {info.get('error')}")
            else:
                saved[(account, key)] = (value, (info["_seq_no"], info["_primary_term"]))
        return conflicts, saved

    def refresh(self) -> None:
        self._call(
            "refreshing alerts",
            self.client.indices.refresh,
            index=self.alerts_index,
            ignore_unavailable=True,
        )
