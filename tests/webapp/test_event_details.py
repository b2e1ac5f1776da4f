"""The event details page: every stored field, account-scoped, with pivots."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from .adminview_docs import ACCOUNT, ADMIN, AGENT, REQUEST_ID


@pytest.fixture
def ivan(initech: list[dict[str, Any]], as_user: Any) -> Any:
    return as_user(ADMIN)


def text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


def test_failed_sign_in_shows_reason_request_and_full_agent(
    ivan: Any, initech: list[dict[str, Any]]
) -> None:
    """A failure says why; method, route, status, request id and the whole user agent are there."""
    doc = initech[0]
    html = ivan.get(f"/a/{ACCOUNT}/events/{doc['event.id']}").get_data(as_text=True)
    page = text(html)
    assert "wrong password (attempt 3 in a row)" in page
    assert 'data-testid="event-reason"' in html
    for value in ("req-signin-1", "POST", "/login", "401", AGENT, "Ольга Петрова"):
        assert value in page, value


def test_settings_change_shows_before_and_after(ivan: Any, initech: list[dict[str, Any]]) -> None:
    """useraudit.diff's params become a Setting/Before/After table; secrets stay hidden."""
    doc = initech[1]
    html = ivan.get(f"/a/{ACCOUNT}/events/{doc['event.id']}").get_data(as_text=True)
    table = html.split('data-testid="event-changes"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(
        r'<tr><th scope="row">(.*?)</th><td class="before">(.*?)</td><td class="after">(.*?)</td>',
        table,
    )
    assert [(k, unescape(b), unescape(a)) for k, b, a in rows] == [
        ("api_key", "(hidden)", "(changed, hidden)"),
        ("name", "Support bot", "Sales bot"),
        ("tags", "—", '["beta"]'),
    ]
    assert "old-secret" not in html and "new-secret" not in html
    assert "Bill" in text(html) or "bill@initech.example" in text(html)  # the impersonator


def test_stored_document_is_shown_as_nested_ecs_json(
    ivan: Any, initech: list[dict[str, Any]]
) -> None:
    """The JSON block is the stored document, nested the ECS way."""
    doc = initech[1]
    html = ivan.get(f"/a/{ACCOUNT}/events/{doc['event.id']}").get_data(as_text=True)
    raw = re.search(r'<pre class="json" data-testid="event-json"[^>]*>(.*?)</pre>', html, re.S)
    assert raw
    shown = json.loads(unescape(raw.group(1)))
    assert shown["event"]["id"] == doc["event.id"]
    assert shown["http"]["request"]["id"] == REQUEST_ID
    assert shown["organization"]["id"] == ACCOUNT
    assert shown["audit"]["params"] == doc["audit.params"]
    assert shown["user_agent"]["original"] == AGENT


def test_pivot_links_narrow_the_table_to_user_ip_and_request(
    ivan: Any, initech: list[dict[str, Any]]
) -> None:
    """ "Same user", "same IP" and "same request" links each return this event among their rows."""
    doc = initech[1]
    html = ivan.get(f"/a/{ACCOUNT}/events/{doc['event.id']}?tz=Europe/Berlin").get_data(
        as_text=True
    )
    nav = html.split('data-testid="event-pivots"', 1)[1].split("</nav>", 1)[0]
    links = [unescape(h) for h in re.findall(r'href="([^"]+)"', nav)]
    assert len(links) == 3
    kinds = [
        next(k for k in ("history", "ip", "request") if k in parse_qs(urlsplit(u).query))
        for u in links
    ]
    assert kinds == ["history", "ip", "request"]
    for link in links:
        assert parse_qs(urlsplit(link).query)["tz"] == ["Europe/Berlin"]
        page = ivan.get(link).get_data(as_text=True)
        ids = re.findall(r'<tr data-event="([^"]+)"', page)
        assert doc["event.id"] in ids, link
    request_rows = re.findall(
        r'<tr data-event="([^"]+)"', ivan.get(links[2]).get_data(as_text=True)
    )
    assert sorted(request_rows) == sorted([initech[1]["event.id"], initech[2]["event.id"]])


def test_other_accounts_events_are_not_found(as_user: Any, initech: list[dict[str, Any]]) -> None:
    """An admin of acme asking for an initech event id gets 404, exactly as for a missing one."""
    alice = as_user("alice")
    foreign = alice.get(f"/a/acme/events/{initech[0]['event.id']}")
    missing = alice.get("/a/acme/events/doesnotexist0000")
    assert foreign.status_code == missing.status_code == 404
    assert alice.get(f"/a/{ACCOUNT}/events/{initech[0]['event.id']}").status_code == 403
    assert alice.get("/a/acme/events/bad%20id%3Cscript%3E").status_code == 404


def test_every_row_links_to_its_details(ivan: Any, initech: list[dict[str, Any]]) -> None:
    """Each table row's action is a link to that event's permalink."""
    html = ivan.get(f"/a/{ACCOUNT}/actions?tz=Asia/Tokyo").get_data(as_text=True)
    ids = re.findall(r'<tr data-event="([^"]+)"', html)
    links = re.findall(r'<a class="row-open" href="([^"]+)"', html)
    assert len(ids) == len(links) == 3
    for event_id, href in zip(ids, links, strict=True):
        assert unescape(href) == f"/a/{ACCOUNT}/events/{event_id}?tz=Asia/Tokyo"
