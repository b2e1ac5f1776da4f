"""The detection engine: an indexer stage that runs every rule once per stored event.

Per batch the indexer hands over (``delivered``, after the store
acknowledged the events and before the spool position moves):

1. the events some enabled rule looks at, per account, in time order;
2. the state keys those rules name, loaded in one store round trip;
3. each rule evaluated on each event, reading and adding state;
4. the findings turned into alerts with stable ids (rule, account, subject,
   window) and upserted together with the changed state, in one store write
   (one SQLite transaction, one OpenSearch bulk request): **never the state
   before the alerts**, so a crash before the state is saved replays the
   batch against the same state and finds the same alerts, which merge into
   the stored ones instead of doubling;
5. the state saved compare-and-set; where another indexer saved a
   key meanwhile, the two values are merged (a union) and saved again.

A rule that raises is logged and counted (``rule_errors``) and the other
rules still run. A store that cannot be reached raises
:class:`~useraudit.store.base.StoreUnavailable` out of ``delivered``, and
the indexer holds the batch and retries.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from useraudit.stages import Stage
from useraudit.store.alerts import NEW, Alert, DetectionStore, alert_id, merge_alert
from useraudit.store.base import StoreUnavailable
from useraudit.store.sqlite.store import gc_paused

from .rules import BUILTIN_RULES, Finding, Rule, ts_ms
from .settings import DetectionSettings
from .state import StateView, bound, merge_values

log = logging.getLogger("useraudit.detect")

# An enabled rule for an (account, action): the rule, its parameters, and its
# ``wants`` when it overrides Rule.wants (None: it takes every such event).
Dispatch = tuple[Rule, dict[str, Any], Any]

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2}
ACCOUNT_SETTINGS = ("admin_roles", "working_hours")


@dataclass
class DetectStats:
    examined: int = 0
    findings: int = 0
    alerts_created: int = 0
    alerts_updated: int = 0
    state_conflicts: int = 0
    rule_errors: int = 0
    # Events a detection worker process died on, again and again, and that
    # detection skipped (they are stored; see worker.DEATHS_BEFORE_SET_ASIDE).
    events_set_aside: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)

    def plus(self, other: DetectStats) -> DetectStats:
        return DetectStats(**{k: v + getattr(other, k) for k, v in self.__dict__.items()})


class DetectionEngine(Stage):
    """Runs rules on delivered events; an indexer :class:`~useraudit.stages.Stage`.

    Args:
        store: where alerts and state live (:func:`useraudit.store.alerts.detection_store`).
        rules: the built-in rules by default; host apps add theirs.
        settings: per-account switches and thresholds.
        geo: which GeoIP levels enrichment provides: ``set()`` (no database),
            ``{"country"}``, or ``{"country", "city"}``. Rules that need a
            level not provided are off, and :meth:`status` says why.
        on_alert: called with every alert created or updated (after it is
            stored), e.g. to wake the notifier.
        background: evaluate on a worker thread of its own, so a batch's
            detection overlaps the next batch's write; ``flush()`` (before
            the indexer commits spool positions) waits until every batch
            handed over is done, or raises ``StoreUnavailable`` after
            ``flush_timeout`` seconds so the positions are held.
        write_behind: keep state in memory between batches and save what
            changed at ``flush()`` (default: when ``background``). Alerts are
            still stored batch by batch; the state is durable before the
            spool positions move, so a crash replays against the state of
            the last commit and finds the same alerts. Off: every batch
            loads and saves its keys (several engines fed directly).
        max_cached_keys: state keys kept in memory; unchanged ones are
            forgotten (and read again when needed) beyond this.
        state_ttl: seconds a key held in memory is trusted; a batch that
            needs it later reads it again (merging what this engine has not
            saved yet), so entries another indexer saved are seen within
            this time.
    """

    name = "detect"

    def __init__(
        self,
        store: DetectionStore,
        rules: Sequence[Rule] = BUILTIN_RULES,
        settings: DetectionSettings | None = None,
        *,
        geo: Iterable[str] = (),
        on_alert: Any = None,
        background: bool = False,
        flush_timeout: float = 30.0,
        write_behind: bool | None = None,
        max_cached_keys: int = 200_000,
        state_ttl: float = 2.0,
    ) -> None:
        names = [r.name for r in rules]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates or not all(names):
            raise ValueError(f"rule names must be unique and non-empty: {sorted(duplicates)}")
        self.store = store
        self.rules = list(rules)
        self.settings = settings or DetectionSettings()
        self.settings.check({r.name: r.defaults for r in self.rules})
        self.geo = set(geo)
        self.on_alert = on_alert
        self.stats = DetectStats()
        self._params: dict[tuple[str, str], dict[str, Any]] = {}
        self._enabled_cache: dict[tuple[Any, Any], tuple[Dispatch, ...]] = {}
        self._lock = threading.Lock()
        self.flush_timeout = flush_timeout
        # State kept in memory between batches, saved at flush (write-behind):
        # (account, key) -> value and the version it was loaded or saved as.
        self.write_behind = background if write_behind is None else write_behind
        self.max_cached_keys = max_cached_keys
        self._values: dict[tuple[str, str], dict] = {}
        self._versions: dict[tuple[str, str], Any] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._pending: dict[str, Alert] = {}  # alerts found, not yet stored
        self.state_ttl = state_ttl
        self._fresh_at: dict[tuple[str, str], float] = {}  # when a key was last read or saved
        self._queue: queue.Queue[Sequence[dict] | None] | None = None
        self._worker: threading.Thread | None = None
        self._closing = False
        if background:
            self._queue = queue.Queue(maxsize=2)  # bounded: a slow store slows the indexer
            self._worker = threading.Thread(target=self._work, name="useraudit-detect", daemon=True)
            self._worker.start()
        self.by_action: dict[str, list[Rule]] = {}
        self.any_action: list[Rule] = []
        for rule in self.rules:
            if rule.needs_geo and rule.needs_geo not in self.geo:
                continue
            if rule.actions is None:
                self.any_action.append(rule)
            else:
                for action in rule.actions:
                    self.by_action.setdefault(action, []).append(rule)

    # -- what is on ------------------------------------------------------------------

    def params(self, account: str, rule: Rule) -> dict[str, Any]:
        cached = self._params.get((account, rule.name))
        if cached is None:
            cached = self.settings.rule_params(account, rule.name, rule.defaults)
            rule_level = (self.settings.account(account).get("rules") or {}).get(rule.name) or {}
            for name in ACCOUNT_SETTINGS:
                value = self.settings.value(account, name)
                if value is not None and name not in rule_level:
                    cached[name] = value
            self._params[(account, rule.name)] = cached
        return cached

    def status(self, account: str) -> list[dict[str, Any]]:
        """Each rule: on or off for the account, and why, with its parameters."""
        out = []
        for rule in self.rules:
            params = self.params(account, rule)
            if rule.needs_geo and rule.needs_geo not in self.geo:
                state, why = "off", f"needs a GeoIP {rule.needs_geo} database (none configured)"
            elif not params.get("enabled", True):
                state, why = "off", "disabled in the settings"
            else:
                state, why = "on", ""
            out.append(
                {
                    "rule": rule.name,
                    "title": rule.title,
                    "severity": rule.severity,
                    "state": state,
                    "why": why,
                    "params": {k: v for k, v in params.items() if k != "enabled"},
                }
            )
        return out

    def _enabled(self, account: str, action: str) -> tuple[Dispatch, ...]:
        """Enabled rules that look at ``action`` in ``account``: (rule, params, wants).

        ``wants`` is None for a rule that takes every event of its actions
        (it does not override :meth:`Rule.wants`), so nothing is called for it.
        """
        key = (account, action)
        found = self._enabled_cache.get(key)
        if found is None:
            found = tuple(
                (rule, params, None if type(rule).wants is Rule.wants else rule.wants)
                for rule in (*self.by_action.get(action, ()), *self.any_action)
                if (params := self.params(account, rule)).get("enabled", True)
            )
            if len(self._enabled_cache) > 100_000:
                self._enabled_cache.clear()
            self._enabled_cache[key] = found
        return found

    # -- the stage ---------------------------------------------------------------------

    def prepare(self, doc: dict) -> None:
        pass

    def close(self) -> None:
        if self._queue is not None and self._worker is not None:
            try:
                self.flush()
            finally:
                self._closing = True
                self._queue.put(None)
                self._worker.join(timeout=self.flush_timeout)

    def delivered(self, docs: Sequence[dict], results: Sequence[object] = ()) -> None:
        if self._queue is not None:
            self._queue.put(list(docs))
            return
        with self._lock:
            self._run(docs)

    def ready(self) -> bool:
        """Whether every batch handed over was evaluated (``flush`` would not wait for one)."""
        return self._queue is None or not self._queue.unfinished_tasks

    def flush(self) -> None:
        """Wait until every batch handed over was evaluated, then save the state it changed."""
        if self._queue is not None:
            deadline = time.monotonic() + self.flush_timeout
            with self._queue.all_tasks_done:
                while self._queue.unfinished_tasks:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise StoreUnavailable("detection has not caught up; spool positions held")
                    self._queue.all_tasks_done.wait(left)
        # Batches were written without waiting for the disk: all of them
        # durable now, before the indexer moves the spool positions on.
        self.save()

    def _work(self) -> None:
        assert self._queue is not None
        while True:
            docs = self._queue.get()
            try:
                if docs is None:
                    return
                self.until_stored(partial(self._run_locked, docs), lambda: not self._closing)
            finally:
                self._queue.task_done()

    def _run_locked(self, docs: Sequence[dict]) -> None:
        with self._lock:
            self._run(docs)

    def until_stored(self, run: Callable[[], None], go_on: Callable[[], bool]) -> bool:
        """``run()`` one batch, again with a growing pause while the store is unavailable.

        Any other failure is logged and counted (``rule_errors``): the events
        are stored already, only their detection is lost. False when
        ``go_on()`` said to stop before the batch was done.
        """
        attempt = 0
        while go_on():
            try:
                run()
            except StoreUnavailable as exc:
                delay = min(10.0, 0.1 * 2**attempt)
                log.warning("detect: store unavailable (%s); again in %.1fs", exc, delay)
                time.sleep(delay)
                attempt += 1
            except Exception:  # noqa: BLE001 - counted; the events are stored already
                self.stats.rule_errors += 1
                log.exception("detect: a batch failed")
                return True
            else:
                return True
        return False

    def run_batch(self, docs: Sequence[dict], *, with_state: bool) -> None:
        """Evaluate one batch and store its alerts (and, ``with_state``, the changed state).

        What a detection worker process runs per batch (:mod:`.worker`);
        :meth:`save` at its flush.
        """
        with gc_paused():
            self._evaluate(docs)
            self._store(with_state=with_state)

    def save(self) -> None:
        """Store what is pending and every changed key, then make it all durable."""
        with self._lock:
            self._store(with_state=True)
            self.store.sync()

    def _run(self, docs: Sequence[dict]) -> None:
        # Like a store's batch write: the batch's objects are freed by reference
        # counting, and cyclic collections set off meanwhile find nothing.
        with gc_paused():
            self._evaluate(docs)
            if not self.write_behind:
                self._store(with_state=True)
                self._forget(everything=True)
            else:
                # Alerts every batch (alert latency); the state with them when
                # no batch waits (so the indexer's next commit does not wait for
                # it), else coalesced with a later batch's or at flush().
                self._store(with_state=self._queue is not None and self._queue.empty())

    def examined(self, docs: Sequence[dict]) -> list[dict]:
        """The events of ``docs`` some enabled rule looks at, in their order."""
        return [doc for doc, _account, _rules in self._select(docs, None)]

    def _select(
        self, docs: Sequence[dict], keys: dict[tuple[str, str], None] | None
    ) -> list[tuple[dict, str, list[tuple[Rule, dict[str, Any]]]]]:
        """(event, account, rules that look at it) for each event some enabled rule wants.

        ``keys`` (when given) collects the state keys those rules name.
        """
        work: list[tuple[dict, str, list[tuple[Rule, dict[str, Any]]]]] = []
        cache, enabled_for = self._enabled_cache, self._enabled
        pause = self._queue is not None
        for n, doc in enumerate(docs):
            if pause and n % 256 == 255:
                time.sleep(0)  # see _evaluate
            # Every stored event passes here: an event no enabled rule looks at
            # costs two dict lookups (and the wants() of rules on every action).
            account = doc.get("organization.id")
            if not account:
                continue
            action = doc.get("event.action")
            enabled = cache.get((account, action))
            if enabled is None:
                enabled = enabled_for(str(account), str(action))
            if not enabled:
                continue
            rules = []
            for rule, params, wants in enabled:
                if wants is not None:
                    try:
                        if not wants(doc, params):
                            continue
                    except Exception:  # noqa: BLE001 - a host rule's bug must not stop detection
                        self.stats.rule_errors += 1
                        log.exception(
                            "detect: rule %s failed on event %s", rule.name, doc.get("event.id")
                        )
                        continue
                rules.append((rule, params))
                if keys is not None:
                    for key in rule.keys(doc, params):
                        keys[(str(account), key)] = None
            if rules:
                work.append((doc, str(account), rules))
        return work

    def _evaluate(self, docs: Sequence[dict]) -> None:
        keys: dict[tuple[str, str], None] = {}
        pause = self._queue is not None
        work = self._select(docs, keys)
        if not work:
            return
        work.sort(key=lambda w: (str(w[0]["@timestamp"]), str(w[0]["event.id"])))
        values, fresh_at = self._values, self._fresh_at
        now = time.monotonic()
        oldest = now - self.state_ttl
        missing = [k for k in keys if k not in values or fresh_at.get(k, 0.0) < oldest]
        if missing:
            for k, (value, version) in self.store.load_state(missing).items():
                if k in self._dirty:  # read again while changed here: keep both sides
                    value = merge_values(value, values[k])
                values[k], self._versions[k], fresh_at[k] = value, version, now
        views: dict[str, StateView] = {}
        alerts = self._pending
        self.stats.examined += len(work)
        for n, (doc, account, rules) in enumerate(work):
            if pause and n % 32 == 31:
                # On the worker thread: let the indexer's thread take the GIL when
                # its bulk answer arrives, instead of waiting out a switch interval
                # (a 0.5 ms interval for the whole indexer instead cost the
                # detection-off indexer more than it saved here).
                time.sleep(0)
            view = views.get(account)
            if view is None:
                view = views[account] = StateView(account, values)
            for rule, params in rules:
                try:
                    findings = rule.evaluate(doc, view, params)
                except Exception:  # noqa: BLE001 - a host rule's bug must not stop detection
                    self.stats.rule_errors += 1
                    log.exception(
                        "detect: rule %s failed on event %s", rule.name, doc.get("event.id")
                    )
                    continue
                for finding in findings:
                    self.stats.findings += 1
                    alert = self._alert(account, rule, params, doc, finding)
                    known = alerts.get(alert.id)
                    alerts[alert.id] = merge_alert(known, alert)[0] if known else alert
        for view in views.values():
            self._dirty |= view.dirty

    def _store(self, with_state: bool) -> None:
        """Store the pending alerts and (``with_state``) the changed state, in one write.

        Alerts are never stored after the state (one transaction on SQLite,
        alerts first in one bulk request on OpenSearch): a crash before the
        state is saved replays the batch into the same alerts. Alerts stay
        pending until the store took them, so a retry after a failed write
        stores them even where replaying the batch would not find them again.
        State keys are saved compare-and-set; where another indexer saved a
        key meanwhile, the two values are merged and saved again.
        """
        dirty = self._dirty if with_state else set()
        alerts = list(self._pending.values())
        if not alerts and not dirty:
            self._forget()
            return
        values = {k: bound(self._values[k]) for k in dirty}
        versions = {k: self._versions.get(k, NEW) for k in dirty}
        items = [(a, k, values[(a, k)], versions[(a, k)]) for a, k in values]
        results, conflicts, saved = self.store.write(alerts, items)
        self._pending = {}
        self.stats.alerts_created += results.count("created")
        self.stats.alerts_updated += results.count("updated")
        if self.on_alert is not None and any(r != "unchanged" for r in results):
            self.on_alert()
        for _attempt in range(20):
            now = time.monotonic()
            for key, (value, version) in saved.items():
                self._values[key], self._versions[key] = value, version
                self._fresh_at[key] = now
            dirty.difference_update(saved)
            if not conflicts:
                self._forget()
                return
            self.stats.state_conflicts += len(conflicts)
            fresh = self.store.load_state(conflicts)
            values = {k: merge_values(fresh[k][0], values[k]) for k in conflicts}
            versions = {k: fresh[k][1] for k in conflicts}
            for k in conflicts:  # what detection sees from now on includes the other's entries
                self._values[k] = values[k]
                self._fresh_at[k] = time.monotonic()
            items = [(a, k, values[(a, k)], versions[(a, k)]) for a, k in values]
            conflicts, saved = self.store.save_state_versions(items)
        raise StoreUnavailable("detection state kept changing under this indexer; retrying")

    def _forget(self, everything: bool = False) -> None:
        """Drop unchanged keys from memory when over the bound (or all of them)."""
        if everything or len(self._values) > self.max_cached_keys:
            for key in [k for k in self._values if k not in self._dirty]:
                del self._values[key]
                self._versions.pop(key, None)
                self._fresh_at.pop(key, None)

    def _alert(
        self, account: str, rule: Rule, params: Mapping[str, Any], doc: dict, finding: Finding
    ) -> Alert:
        ts = ts_ms(doc)
        window_s = int(finding.window_s or params.get("dedup_s") or 3600)
        window = ts // (window_s * 1000)
        when = datetime.fromtimestamp(ts / 1000, UTC)
        iso = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        details = {**finding.details, "dedup_s": window_s}
        return Alert(
            id=alert_id(account, rule.name, finding.subject, window),
            account=account,
            rule=rule.name,
            severity=finding.severity or rule.severity,
            subject=finding.subject,
            title=finding.title or rule.title,
            first_seen=iso,
            last_seen=iso,
            event_ids=list(dict.fromkeys(finding.event_ids)),
            user_id=finding.user_id,
            details=details,
        )
