"""The Security tab: alerts of one account, their states, failures over time, per-user summary.

Same authorization as the User actions page (USER_ADMIN on the route's
account, checked on every request). Routes:

* ``GET  /a/<account>/security``: open alerts by severity, the alert list
  (open and acknowledged first), a 7-day timeline of failed sign-ins and
  alerts, and a per-user summary. Each alert links to its events on the
  User actions page (period, subject and actions of the alert).
* ``POST /a/<account>/security/alerts/<id>``: form ``status`` =
  ``acknowledged`` / ``resolved`` / ``open``. The change is stored with who
  and when, and recorded in the audit trail (``security_alert.*``).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

import useraudit
from useraudit.schema import person_label
from useraudit.store import Query, SearchRequest, StoreError
from useraudit.store.alerts import SEVERITIES, STATUSES, Alert, DetectionStore, detection_store

from . import resources
from .actions import admin_required

bp = Blueprint("security", __name__)

SEVERITY_ORDER = {s: i for i, s in enumerate(reversed(SEVERITIES))}
STATUS_ORDER = {"open": 0, "acknowledged": 1, "resolved": 2}
TIMELINE_DAYS = 7
# The actions an alert's events are, per rule (None: don't narrow by action).
RULE_ACTIONS: dict[str, tuple[str, ...]] = {
    "brute_force": ("user.signed_in",),
    "password_spraying": ("user.signed_in",),
    "takeover": ("user.signed_in",),
    "new_device": ("user.signed_in",),
    "new_network": ("user.signed_in",),
    "new_country": ("user.signed_in",),
    "impossible_travel": ("user.signed_in",),
    "account_blocked": ("user_account.blocked_failed_sign_ins",),
    "admin_granted": ("user.roles_updated",),
    "token_new_network": ("token.created", "token.refreshed"),
}
# Each built-in rule's title (detect.rules), here so it is extracted and translated.
RULE_LABELS = {
    "brute_force": _l("Repeated failed sign-ins for one user"),
    "password_spraying": _l("Failed sign-ins for many users from one network"),
    "account_blocked": _l("Account blocked after too many failed sign-ins"),
    "takeover": _l("Successful sign-in right after failed ones"),
    "new_device": _l("Sign-in from a new device"),
    "new_network": _l("Sign-in from a new network"),
    "new_country": _l("Sign-in from a new country"),
    "impossible_travel": _l("Impossible travel between sign-ins"),
    "admin_granted": _l("Admin role granted"),
    "custom_role_changed": _l("Custom role changed"),
    "impersonation": _l("Actions performed on a user's behalf"),
    "token_new_network": _l("API token created from a new network"),
    "bulk_download": _l("Unusually many exports and downloads"),
    "off_hours_admin": _l("Admin action outside working hours"),
}
SEVERITY_LABELS = {"high": _l("high"), "medium": _l("medium"), "low": _l("low")}
STATUS_LABELS = {
    "open": _l("open"),
    "acknowledged": _l("acknowledged"),
    "resolved": _l("resolved"),
}
# Where, in an alert's events, a person named by id is described.
PERSON_PREFIXES = ("user", "user.target", "audit.impersonator")
EVENTS_PER_ALERT = 3  # read to name its people; the first usually names them all

AUDIT_ACTION = {
    "acknowledged": "security_alert.acknowledged",
    "resolved": "security_alert.resolved",
    "open": "security_alert.reopened",
}


def alerts_store() -> DetectionStore:
    ext = current_app.extensions["useraudit"]
    if ext.get("alerts") is None:
        ext["alerts"] = detection_store(resources.store())
    return ext["alerts"]


def _iso_minute(ts: str, delta: timedelta) -> str:
    when = datetime.fromisoformat(ts.replace("Z", "+00:00")) + delta
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def events_link(account: str, alert: Alert) -> str:
    """The User actions page narrowed to the alert's events."""
    params: list[tuple[str, str]] = [
        ("period", "custom"),
        ("tz", "UTC"),
        ("from", _iso_minute(alert.first_seen, -timedelta(minutes=int(_window(alert)) // 60 + 1))),
        ("to", _iso_minute(alert.last_seen, timedelta(minutes=1))),
    ]
    if alert.rule == "password_spraying":
        params.append(("ip", alert.subject))
    elif alert.rule == "impersonation":
        params.append(("impersonator", alert.subject.split("->", 1)[0]))
        params.append(("user", alert.subject.split("->", 1)[1]))
    elif alert.user_id:
        params.append(("history", alert.user_id))
    for action in RULE_ACTIONS.get(alert.rule, ()):
        params.append(("action", action))
    base = url_for("useraudit.actions.actions", account=account)
    return f"{base}?{urlencode(params)}"


def rule_label(alert: Alert) -> str:
    """The rule's translated title, with what a "new ..." alert found new."""
    label = RULE_LABELS.get(alert.rule)
    if label is None:  # a host app's own rule: its title as it wrote it
        return alert.title
    found = next(
        (alert.details[k] for k in ("device", "network", "country") if alert.details.get(k)),
        None,
    )
    if alert.rule == "admin_granted" and alert.details.get("roles"):
        found = ", ".join(str(r) for r in alert.details["roles"])
    return f"{label}: {found}" if found else str(label)


class People:
    """Names and e-mails of the people alerts name by id, from the events behind them."""

    def __init__(self, docs: list[dict]) -> None:
        self.known: dict[str, str] = {}
        for doc in docs:
            for prefix in PERSON_PREFIXES:
                ident = doc.get(f"{prefix}.id")
                if ident and str(ident) not in self.known:
                    label = person_label(doc, prefix)
                    if label and label != ident:
                        self.known[str(ident)] = label

    def name(self, ident: str) -> str:
        return self.known.get(ident, ident)

    def subject(self, alert: Alert) -> dict[str, str]:
        """{"label": what to show, "id": the raw subject (shown small, and as the title)}."""
        raw = alert.subject
        if alert.rule == "impersonation" and "->" in raw:
            who, whom = raw.split("->", 1)
            label = _("%(who)s as %(whom)s", who=self.name(who), whom=self.name(whom))
        elif "|" in raw:  # user|what was new
            ident, what = raw.split("|", 1)
            label = f"{self.name(ident)} · {what}"
        else:
            label = self.name(raw)
        return {"label": label, "id": raw if label != raw else ""}


def people_of(store: Any, alerts: list[Alert]) -> People:
    ids = list(dict.fromkeys(i for a in alerts for i in a.event_ids[:EVENTS_PER_ALERT]))
    docs: list[dict] = []
    for i in range(0, len(ids), 500):
        docs += store.get(ids[i : i + 500]).values()
    return People(docs)


def _window(alert: Alert) -> int:
    # Rules that look back (failures before a success) start before first_seen.
    return int(alert.details.get("window_s", 0))


def _day(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d")


@bp.get("/a/<account>/security")
@admin_required
def security(account: str) -> Any:
    now = datetime.now(UTC)
    try:
        alerts = alerts_store().list_alerts(account, limit=500)
        start = (now - timedelta(days=TIMELINE_DAYS - 1)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        store = resources.store()
        failures_by_day = []
        for i in range(TIMELINE_DAYS):
            day_start = start + timedelta(days=i)
            day_end = day_start + timedelta(days=1) - timedelta(milliseconds=1)
            failures_by_day.append(
                store.count(
                    Query(
                        account,
                        start=day_start,
                        end=day_end,
                        actions=("user.signed_in",),
                        outcomes=("failure",),
                    )
                )
            )
        failed_users = store.search(
            SearchRequest(
                Query(account, start=start, actions=("user.signed_in",), outcomes=("failure",)),
                size=1,
                facets=("user",),
                facet_size=20,
                highlight=False,
            )
        ).facets.get("user", [])
        named = people_of(store, alerts)
    except StoreError as exc:
        return render_template(
            "useraudit/error.html", status=503, title=_("Store unavailable"), message=str(exc)
        ), 503
    open_alerts = [a for a in alerts if a.status != "resolved"]
    by_severity = Counter(a.severity for a in alerts if a.status == "open")
    alerts_by_day = Counter(a.last_seen[:10] for a in alerts)
    timeline: list[dict[str, Any]] = []
    for i in range(TIMELINE_DAYS):
        day = _day(start + timedelta(days=i))
        timeline.append({"day": day, "failures": failures_by_day[i], "alerts": alerts_by_day[day]})
    peak = max([1] + [max(t["failures"], t["alerts"]) for t in timeline])
    people: dict[str, dict[str, Any]] = {}
    for a in alerts:
        if not a.user_id:
            continue
        p = people.setdefault(
            a.user_id,
            {
                "user": a.user_id,
                "label": named.name(a.user_id),
                "alerts": 0,
                "open": 0,
                "worst": "low",
                "last": "",
            },
        )
        p["alerts"] += 1
        p["open"] += a.status == "open"
        if SEVERITY_ORDER[a.severity] < SEVERITY_ORDER[p["worst"]]:
            p["worst"] = a.severity
        p["last"] = max(p["last"], a.last_seen)
    users = sorted(
        people.values(), key=lambda p: (SEVERITY_ORDER[p["worst"]], -p["open"], p["user"])
    )
    # Newest first (as listed), then stably: open before acknowledged, high before low.
    ordered = sorted(alerts, key=lambda a: (STATUS_ORDER[a.status], SEVERITY_ORDER[a.severity]))
    return render_template(
        "useraudit/security.html",
        account=account,
        accounts=current_user.admin_accounts(),
        alerts=ordered,
        open_count=len(open_alerts),
        by_severity=[(s, by_severity.get(s, 0)) for s in reversed(SEVERITIES)],
        timeline=timeline,
        peak=peak,
        users=users,
        failed_users=failed_users,
        link=lambda a: events_link(account, a),
        subject=named.subject,
        rule_label=rule_label,
        severity_label=lambda s: SEVERITY_LABELS.get(s, s),
        status_label=lambda s: STATUS_LABELS.get(s, s),
        statuses=STATUSES,
    )


@bp.post("/a/<account>/security/alerts/<alert_id>")
@admin_required
def change_status(account: str, alert_id: str) -> Any:
    status = request.form.get("status", "")
    if status not in STATUSES or len(alert_id) > 64:
        return render_template(
            "useraudit/error.html",
            status=400,
            title=_("Cannot change the alert"),
            message=_("The state must be one of: %(states)s", states=", ".join(STATUSES)),
        ), 400
    at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    try:
        changed = alerts_store().set_status(account, alert_id, status, current_user.username, at)
    except KeyError:
        abort(404)
    except StoreError as exc:
        return render_template(
            "useraudit/error.html", status=503, title=_("Store unavailable"), message=str(exc)
        ), 503
    useraudit.record(
        AUDIT_ACTION[status],
        account=account,
        user=current_user.person(),
        params={"alert": changed.id, "rule": changed.rule, "subject": changed.subject},
        comments=f"{changed.title} ({changed.subject}) marked {status}",
    )
    flash(
        _(
            "Alert “%(title)s” marked %(state)s.",
            title=rule_label(changed),
            state=STATUS_LABELS[status],
        ),
        "info",
    )
    return redirect(url_for(".security", account=account))
