"""One event in full: the details panel and its permalink.

``GET <prefix>/a/<account>/events/<event_id>`` renders every stored field of
one event of that account: what happened and why (reason, comments, the
parameters, a before/after table of a settings change written by
``useraudit.diff``), who (user, modified user, impersonator), where from
(IP, the full user agent), the request (id, method, route, status) and the
stored document as ECS JSON, with links to the same user's history, the
same IP and the same request.

The same page is the table's details panel: the page's script fetches it and
shows its ``#event-details`` part in a dialog; without the script, the
row's link simply opens this page. An event of another account answers 404
exactly like a missing one, so ids cannot be probed across accounts.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, render_template, request, url_for

from useraudit.catalog import CATALOG
from useraudit.schema import FIELD_BY_NAME, device_label
from useraudit.store import QueryError

from . import resources
from .actions import admin_required
from .columns import action_label, parse_ts
from .filters import zone
from .i18n import gettext as _
from .i18n import label
from .prefs import default_tz
from .zones import offset_label

bp = Blueprint("event", __name__)

EVENT_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
PEOPLE = (
    ("user", "User"),
    ("user.target", "Modified user"),
    ("audit.impersonator", "Impersonator"),
)


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Flat dotted keys → the nested ECS document (a key both leaf and parent stays dotted)."""
    out: dict[str, Any] = {}
    for key in sorted(flat):
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict) or key in FIELD_BY_NAME and part == leaf:
                break
            node = nxt
        else:
            node[leaf] = flat[key]
            continue
        out[key] = flat[key]
    return out


def changes(params: Any) -> list[tuple[str, str, str]] | None:
    """(setting, before, after) rows when ``params`` is a settings change, else None.

    ``useraudit.diff`` writes ``{key: {"from": old, "to": new}}`` (``from``
    or ``to`` missing for added or removed settings, ``{"changed": true}``
    for secrets); a single value change may be ``{"from": old, "to": new}``.
    """
    if not isinstance(params, dict) or not params:
        return None
    if set(params) <= {"from", "to"} and params:
        return [("", _show(params.get("from")), _show(params.get("to")))]
    rows = []
    for key, change in params.items():
        if (
            not isinstance(change, dict)
            or not change
            or not set(change) <= {"from", "to", "changed"}
        ):
            return None
        if change.get("changed") is True and set(change) == {"changed"}:
            rows.append((str(key), _("(hidden)"), _("(changed, hidden)")))
        else:
            rows.append((str(key), _show(change.get("from")), _show(change.get("to"))))
    return rows


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _person(doc: dict, prefix: str) -> dict[str, str] | None:
    found = {
        part: str(doc[f"{prefix}.{part}"])
        for part in ("full_name", "name", "email", "id")
        if doc.get(f"{prefix}.{part}")
    }
    return found or None


def _history_key(doc: dict) -> str | None:
    for part in ("email", "name", "id"):
        if doc.get(f"user.{part}"):
            return str(doc[f"user.{part}"])
    return None


def pivots(account: str, doc: dict, tz: str) -> list[tuple[str, str]]:
    """(label, URL) of the table narrowed to this user, this IP, this request.

    The links keep the time zone and cover the event's time: the last 30 days
    when it is that recent, else a month around it.
    """
    ts = parse_ts(doc.get("@timestamp")) or datetime.now(UTC)
    base: list[tuple[str, str]] = [("tz", tz)] if tz != "UTC" else []
    if datetime.now(UTC) - ts < timedelta(days=29):
        base.append(("period", "30d"))
    else:
        from zoneinfo import ZoneInfo

        local = ts.astimezone(ZoneInfo(tz))
        base += [
            ("period", "custom"),
            ("from", (local - timedelta(days=15)).strftime("%Y-%m-%dT%H:%M")),
            ("to", (local + timedelta(days=15)).strftime("%Y-%m-%dT%H:%M")),
        ]
    out = []
    page = url_for("useraudit.actions.actions", account=account)
    user = _history_key(doc)
    if user:
        out.append(
            (_("Everything by or on %(user)s", user=user), _link(page, [("history", user), *base]))
        )
    ip = doc.get("source.ip") or doc.get("source.address")
    if ip and doc.get("source.ip"):
        out.append((_("Everything from %(ip)s", ip=ip), _link(page, [("ip", str(ip)), *base])))
    request_id = doc.get("http.request.id")
    if request_id:
        out.append(
            (
                _("Everything in request %(id)s", id=request_id),
                _link(page, [("request", str(request_id)), *base]),
            )
        )
    return out


def _link(page: str, args: list[tuple[str, str]]) -> str:
    from urllib.parse import urlencode

    return page + "?" + urlencode(args)


def details(account: str, doc: dict, tz_name: str) -> dict[str, Any]:
    """What the details template shows, from one stored flat document."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(tz_name)
    ts = parse_ts(doc.get("@timestamp"))
    code = str(doc.get("event.action") or "")
    action = CATALOG.get(code)
    product = CATALOG.product(action.product) if action else None
    params = doc.get("audit.params")
    return {
        "id": doc.get("event.id"),
        "title": label(action.label)
        if action
        else action_label(code, str(doc.get("message") or "")),
        "code": code,
        "where": " › ".join(
            label(p)
            for p in (product.label if product else "", action.group if action else "")
            if p
        ),
        "outcome": str(doc.get("event.outcome") or "unknown"),
        "reason": doc.get("event.reason") or "",
        "comments": doc.get("audit.comments") or "",
        "local": ts.astimezone(tz) if ts else None,
        "utc": ts,
        "offset": offset_label(tz, ts) if ts else "",
        "people": [(title, p) for prefix, title in PEOPLE if (p := _person(doc, prefix))],
        "project": (doc.get("audit.project.name") or "", doc.get("audit.project.id") or ""),
        "token": doc.get("audit.token.id") or "",
        "changes": changes(params),
        "params": json.dumps(params, ensure_ascii=False, indent=2, sort_keys=True)
        if params not in (None, {}, [])
        else "",
        "ip": doc.get("source.ip") or "",
        "address": doc.get("source.address") or "",
        "device": device_label(doc),
        "agent": doc.get("user_agent.original") or "",
        "request": [
            (_("Request id"), doc.get("http.request.id")),
            (_("Method"), doc.get("http.request.method")),
            (_("Route"), doc.get("url.path")),
            (_("Status"), doc.get("http.response.status_code")),
        ],
        "flags": doc.get("audit.flags") or [],
        "ingested": parse_ts(doc.get("event.ingested")),
        "json": json.dumps(nest(doc), ensure_ascii=False, indent=2, sort_keys=True, default=str),
        "pivots": pivots(account, doc, tz_name),
    }


@bp.get("/a/<account>/events/<event_id>")
@admin_required
def event(account: str, event_id: str) -> Any:
    if not EVENT_ID_RE.match(event_id):
        abort(404)
    doc = resources.store().get([event_id]).get(event_id)
    if not doc or doc.get("organization.id") != account:
        abort(404)
    tz = (request.args.get("tz") or "").strip() or default_tz()
    try:
        zone(tz)
    except QueryError:
        tz = default_tz()
    back = request.args.get("back") or ""
    if not back.startswith(url_for("useraudit.actions.actions", account=account)):
        back = url_for("useraudit.actions.actions", account=account)
    return render_template(
        "useraudit/event.html",
        account=account,
        accounts=[account],
        e=details(account, doc, tz),
        back=back,
        permalink=url_for(".event", account=account, event_id=event_id),
    )
