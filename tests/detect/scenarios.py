"""Scripted attacks, driven over HTTP against the host app under gunicorn.

Each scenario makes its requests and names the alerts it must raise, as
(rule, subject) pairs, with the number of events behind each. Together they
run in one spool; subjects never overlap, so "exactly these alerts" is
checked over the whole store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from .conftest import CHROME_WIN, SAFARI_IPHONE
from .live_host import PASSWORD

ACCOUNT = "acme"
# Rules tuned for a short script: the host blocks at 5 failures, so brute
# force is shown at 4.
SETTINGS = """
[defaults.rules.brute_force]
threshold = 4
"""


@dataclass
class Scenario:
    name: str
    run: Callable[[str], None]
    expected: dict[tuple[str, str], int]  # (rule, subject) → events behind the alert


def _client(base: str, ip: str, ua: str = CHROME_WIN) -> httpx.Client:
    return httpx.Client(
        base_url=f"{base}/a/{ACCOUNT}",
        headers={"X-Forwarded-For": ip, "User-Agent": ua},
        timeout=30,
    )


def sign_in(c: httpx.Client, user: str, password: str = PASSWORD, expect: int = 200) -> None:
    r = c.post("/login", data={"username": user, "password": password})
    assert r.status_code == expect, (user, r.status_code, r.text)


def act(c: httpx.Client, code: str, ip: str | None = None, **body: object) -> None:
    headers = {"X-Forwarded-For": ip} if ip else None
    r = c.post(f"/api/{code}", json=body, headers=headers)
    assert r.status_code == 200, (code, r.status_code, r.text)


def spraying(base: str) -> None:
    for i in range(6):
        with _client(base, f"100.64.9.{i + 1}") as c:
            sign_in(c, f"sprayed{i}", "Winter2026!", expect=401)


def brute_then_success(base: str) -> None:
    with _client(base, "100.64.5.5") as c:
        for _ in range(4):
            sign_in(c, "brute", "guess", expect=401)
        sign_in(c, "brute")


def new_device(base: str) -> None:
    with _client(base, "100.64.7.7") as c:
        sign_in(c, "device")
    with _client(base, "100.64.7.7", SAFARI_IPHONE) as c:
        sign_in(c, "device")


def new_country(base: str) -> None:
    with _client(base, "192.0.2.5") as c:  # Kehl, Germany
        sign_in(c, "country")
    with _client(base, "100.64.1.5") as c:  # Strasbourg, France: 5 km away
        sign_in(c, "country")


def impossible_travel(base: str) -> None:
    with _client(base, "198.51.100.20") as c:  # Berlin
        sign_in(c, "travel")
    with _client(base, "203.0.113.20") as c:  # Sydney, seconds later
        sign_in(c, "travel")


def privilege_escalation(base: str) -> None:
    with _client(base, "100.64.3.3") as c:
        sign_in(c, "root")
        act(c, "user.roles_updated", target_user="grantee", params={"roles": ["EDITOR"]})
        act(
            c,
            "user.roles_updated",
            target_user="grantee",
            params={"roles": ["EDITOR", "USER_ADMIN"]},
        )


def token_from_new_network(base: str) -> None:
    with _client(base, "198.51.100.40") as c:
        sign_in(c, "token")
        act(c, "token.created", token_id="tok-usual", comments="from the office")
        act(c, "token.refreshed", ip="100.64.1.40", token_id="tok-usual", comments="from elsewhere")


def bulk_download(base: str) -> None:
    with _client(base, "100.64.8.8") as c:
        sign_in(c, "down")
        for i in range(21):
            act(c, "message_log.downloaded", project="bank-bot", comments=f"log {i}")


def calm_user(base: str) -> None:
    """Ordinary work: nothing to see."""
    with _client(base, "100.64.6.6") as c:
        sign_in(c, "calm")
        sign_in(c, "calm", "typo", expect=401)
        sign_in(c, "calm")
        act(c, "bot_project.created", project="hr-faq")
        act(c, "message_log.downloaded", project="hr-faq")
        c.post("/logout")


SCENARIOS = [
    Scenario("spraying", spraying, {("password_spraying", "100.64.9.0/24"): 6}),
    Scenario(
        "brute force then success",
        brute_then_success,
        {("brute_force", "u-brute"): 4, ("takeover", "u-brute"): 5},
    ),
    Scenario("new device", new_device, {("new_device", "u-device|Mobile Safari / iOS"): 1}),
    Scenario(
        "new country",
        new_country,
        {("new_network", "u-country|100.64.1.0/24"): 1, ("new_country", "u-country|FR"): 1},
    ),
    Scenario(
        "impossible travel",
        impossible_travel,
        {
            ("new_network", "u-travel|203.0.113.0/24"): 1,
            ("new_country", "u-travel|AU"): 1,
            ("impossible_travel", "u-travel"): 2,
        },
    ),
    Scenario("privilege escalation", privilege_escalation, {("admin_granted", "u-grantee"): 1}),
    Scenario(
        "token from a new network",
        token_from_new_network,
        {("token_new_network", "u-token|100.64.1.0/24"): 1},
    ),
    Scenario("bulk download", bulk_download, {("bulk_download", "u-down"): 21}),
    Scenario("calm user", calm_user, {}),
]
