"""The Security tab: alerts by severity, states by whom and when (audited), links to events.

Events go through enrichment and the detection engine into a real store of
each backend, as the indexer would put them there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from support import CSRF_RE
from werkzeug.datastructures import MultiDict

from useraudit.detect import DetectionEngine
from useraudit.indexer.enrich import Enricher
from useraudit.store import SearchRequest
from useraudit.store.alerts import detection_store
from useraudit.webapp.filters import Filters

from .conftest import login, make_app

NOW = datetime.now(UTC) - timedelta(minutes=20)


# People whose events name them in full (the Security tab shows these, not ids).
NAMED = {"victim": {"user.full_name": "Vera Victim", "user.email": "vera@example.com"}}


def raw(action: str, user: str, minute: int, outcome: str = "success", **extra: Any) -> dict:
    ts = (NOW + timedelta(minutes=minute)).isoformat(timespec="milliseconds")
    return {
        **NAMED.get(user, {}),
        "event.id": f"sec-{user}-{minute}-{action}",
        "@timestamp": ts.replace("+00:00", "Z"),
        "event.action": action,
        "event.outcome": outcome,
        "organization.id": extra.pop("account", "acme"),
        "user.id": f"u-{user}",
        "user.name": user,
        "source.address": extra.pop("ip", "100.64.5.5"),
        **extra,
    }


STORY = [
    # brute force then success: brute_force (medium) + takeover (high)
    *[raw("user.signed_in", "victim", i, "failure") for i in range(5)],
    raw("user.signed_in", "victim", 6),
    # someone elsewhere: a quiet sign-in and a granted admin role
    raw("user.signed_in", "root", 1),
    raw(
        "user.roles_updated",
        "root",
        2,
        **{"user.target.id": "u-victim", "audit.params": {"roles": ["USER_ADMIN"]}},
    ),
    # globex: its own brute force, never visible to acme's admins
    *[raw("user.signed_in", "gina", i, "failure", account="globex") for i in range(5)],
]


@pytest.fixture(params=["sqlite", "opensearch"])
def detected(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A store of each backend holding STORY's events and the alerts they raised."""
    if request.param == "opensearch":
        store = request.getfixturevalue("os_store")
    else:
        from useraudit.store.sqlite import SQLiteStore

        store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
        store.install()
    alerts = detection_store(store)
    alerts.install()
    enrich = Enricher()
    docs = [enrich(r) for r in STORY]
    assert all(r.delivered for r in store.write(docs))
    DetectionEngine(alerts).delivered(docs)
    store.refresh()
    alerts.refresh()
    yield store
    uninstall = getattr(alerts, "uninstall", None)
    if uninstall:
        uninstall()
    alerts.close()
    if request.param == "sqlite":
        store.close()


@pytest.fixture
def sec_client(detected: Any, users_db: Any, audit_spool: Any) -> Any:
    app = make_app(detected, users_db)
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    return client


def page(client: Any, path: str = "/a/acme/security") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def test_security_tab_lists_open_alerts_by_severity(sec_client: Any) -> None:
    """acme: high takeover and admin grant, medium brute force; nothing of globex."""
    html = page(sec_client)
    assert 'data-rule="takeover"' in html and 'data-rule="admin_granted"' in html
    assert 'data-rule="brute_force"' in html
    tiles = html[html.index('data-testid="open-by-severity"') : html.index('id="timeline-h"')]
    assert '<span class="sec-n">2</span> <span class="sec-l">open: high' in tiles
    assert '<span class="sec-n">1</span> <span class="sec-l">open: medium' in tiles
    assert "u-gina" not in html
    assert html.index('data-rule="takeover"') < html.index('data-rule="brute_force"')  # high first
    per_user = html[html.index('data-testid="per-user"') :]
    assert "u-victim" in per_user
    assert "victim</a>: 5" in per_user  # failed sign-ins by user


def test_subjects_are_people_named_from_the_events_behind_the_alert(sec_client: Any) -> None:
    """Alerts about u-victim (their own failures, and a grant whose event names only the id)
    show "Vera Victim <vera@example.com>", the id small beside it and as the title."""
    html = page(sec_client)
    named = "Vera Victim &lt;vera@example.com&gt;"
    for rule in ("takeover", "brute_force", "admin_granted"):
        row = html[html.index(f'data-rule="{rule}"') :]
        start = row.index('data-testid="alert-subject"')
        cell = row[start : row.index("</td>", start)]
        expected = f'title="u-victim">{named} <span class="sub">u-victim</span>'
        assert cell == f'data-testid="alert-subject" {expected}', rule
    per_user = html[html.index('data-testid="per-user"') :]
    assert f'title="u-victim"><a href="/a/acme/actions?history=u-victim">{named}</a>' in per_user


def test_security_tab_speaks_russian(sec_client: Any) -> None:
    """With Russian chosen, headings, rule titles, severities and states are translated."""
    try:
        assert sec_client.get("/language/ru?next=/a/acme/security").status_code == 303
        html = page(sec_client)
        for text in (
            "Безопасность",
            "Важность",
            "Повторные неудачные входы одного пользователя",
            "Успешный вход сразу после неудачных",
            "Выдана роль администратора: USER_ADMIN",
            "высокая",
            "открыто",
            "Принять",
        ):
            assert text in html, text
        for english in ("Repeated failed sign-ins", "Severity", "Acknowledge", ">open<"):
            assert english not in html, english
    finally:
        sec_client.get("/language/en")


def test_every_builtin_rule_has_a_translated_title() -> None:
    """The tab's rule labels are the rules' own titles, one per built-in rule."""
    from useraudit.detect.rules import BUILTIN_RULES
    from useraudit.webapp.security import RULE_LABELS

    assert {r.name: r.title for r in BUILTIN_RULES} == {
        name: label._args[0] for name, label in RULE_LABELS.items()
    }


def test_each_alert_opens_exactly_its_events(sec_client: Any, detected: Any) -> None:
    """The link's filters, run by the User actions page, find the alert's events and no others."""
    alerts = detection_store(detected).list_alerts("acme")
    assert len(alerts) == 3
    html = page(sec_client)
    for alert in alerts:
        row = html[html.index(f'data-alert="{alert.id}"') :]
        href = row[row.index('href="') + 6 : row.index('" data-testid="alert-events"')]
        href = href.replace("&amp;", "&")
        assert sec_client.get(href).status_code == 200
        args = MultiDict([(k, v) for k, vs in parse_qs(urlsplit(href).query).items() for v in vs])
        query = Filters.parse(args, "UTC").query("acme", datetime.now(UTC))
        found = detected.search(SearchRequest(query, size=100, facets=(), highlight=False))
        assert sorted(h["event.id"] for h in found.hits) == sorted(alert.event_ids), alert.rule


def test_acknowledge_then_resolve_records_who_when_and_audits_it(
    sec_client: Any, detected: Any, audit_spool: Any
) -> None:
    """Each change is stored with the admin and time, and recorded as a security_alert.* event."""
    alert = next(a for a in detection_store(detected).list_alerts("acme") if a.rule == "takeover")
    token = CSRF_RE.search(page(sec_client))
    assert token
    for status in ("acknowledged", "resolved"):
        response = sec_client.post(
            f"/a/acme/security/alerts/{alert.id}",
            data={"status": status, "csrf_token": token.group(1)},
        )
        assert response.status_code == 302
    stored = detection_store(detected).get("acme", alert.id)
    assert stored is not None and stored.status == "resolved" and stored.status_by == "alice"
    assert [h["status"] for h in stored.history] == ["acknowledged", "resolved"]
    recorded = [e for e in audit_spool() if e["event.action"].startswith("security_alert.")]
    assert [e["event.action"] for e in recorded] == [
        "security_alert.acknowledged",
        "security_alert.resolved",
    ]
    assert all(e["organization.id"] == "acme" and e["user.name"] == "alice" for e in recorded)
    assert recorded[0]["audit.params"]["alert"] == alert.id
    html = page(sec_client)
    assert "by alice" in html


def test_other_accounts_alerts_are_out_of_reach(sec_client: Any, detected: Any) -> None:
    """alice (acme only) gets 403 on globex's tab and 404 changing globex's alert via acme."""
    theirs = detection_store(detected).list_alerts("globex")[0]
    token = CSRF_RE.search(page(sec_client))
    assert token
    assert sec_client.get("/a/globex/security").status_code == 403
    response = sec_client.post(
        f"/a/acme/security/alerts/{theirs.id}",
        data={"status": "resolved", "csrf_token": token.group(1)},
    )
    assert response.status_code == 404
    assert detection_store(detected).get("globex", theirs.id).status == "open"  # type: ignore[union-attr]


def test_a_made_up_status_is_a_400(sec_client: Any, detected: Any) -> None:
    """Only open, acknowledged and resolved are accepted."""
    alert = detection_store(detected).list_alerts("acme")[0]
    token = CSRF_RE.search(page(sec_client))
    assert token
    response = sec_client.post(
        f"/a/acme/security/alerts/{alert.id}",
        data={"status": "deleted", "csrf_token": token.group(1)},
    )
    assert response.status_code == 400
