"""Realistic traffic for the demo host: real HTTP requests, as browsers would send them.

Several accounts with admins and users; every catalog action at least once
per account; sign-ins and sign-outs; in each account a burst of failed
sign-ins that ends in an account block (the only blocks: random traffic
never posts the actions the host's sign-in page records itself); an
administrator acting on a user's behalf; API tokens created, refreshed and
deleted; clients on IPv4 and IPv6 with assorted
browsers and devices. Deterministic for a given seed.
"""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookiejar import CookieJar
from typing import Any

from useraudit.catalog import CATALOG

ACCOUNTS = {"acme": "Acme Corp", "globex": "Globex Bank"}
PASSWORD = "demo-password"
# Actions the host records itself from what happens on its sign-in page. The
# random traffic never posts them: a block nobody's failures caused is not
# normal traffic (and each would raise an account_blocked alert).
HOST_ACTIONS = frozenset(
    {"user.signed_in", "user.signed_out", "user_account.blocked_failed_sign_ins"}
)

_PEOPLE = [
    ("anna", "Anna Ivanova", True),
    ("boris", "Boris Smirnov", False),
    ("chen", "Chen Li", False),
    ("dmitri", "Dmitri Kowalski", False),
    ("elena", "Elena Garcia", True),
    ("farid", "Farid Haddad", False),
    ("grace", "Grace Hopper", False),
    ("hiro", "Hiro Tanaka", False),
    ("ines", "Inès Moreau", False),
    ("jonas", "Jonas Berg", False),
    ("kira", "Кира Новак", False),
    ("leo", "Leo Petrov", False),
]

AGENTS = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36"
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Safari/605.1.15"
    ),
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Safari/537.36 Edg/130.0.2849.80"
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.6778.39 Mobile Safari/537.36"
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Mobile/15E148 Safari/604.1"
    ),
]

PROJECTS = [
    ("bank-bot", "Bank assistant"),
    ("hr-faq", "HR FAQ"),
    ("shop-support", "Shop support"),
    ("voice-ivr", "Voice IVR"),
    ("onboarding", "Onboarding bot"),
]

COMMENTS = {
    "custom_role": [
        "role Reviewers: may read dialogs and export reports",
        "role Operators: channel settings",
    ],
    "bot_project": [
        "greeting rewritten for the winter campaign",
        "fallback timeout raised to 30 s",
    ],
    "inbound_channel": ["Telegram channel for the support line", "WhatsApp Business webhook"],
    "masking_rule": [
        "masks card numbers in message logs",
        "masks e-mail addresses before analytics",
    ],
    "environment_variable": ["CRM_BASE_URL for production", "retry budget for the payment webhook"],
    "token": ["CI pipeline deploy token", "analytics export integration"],
}


def directory() -> dict[str, dict[str, Any]]:
    """The host's users: each belongs to one account, admins to both."""
    people: dict[str, dict[str, Any]] = {}
    for i, (username, full_name, admin) in enumerate(_PEOPLE):
        home = list(ACCOUNTS)[i % len(ACCOUNTS)]
        people[username] = {
            "id": f"u-{100 + i}",
            "name": username,
            "full_name": full_name,
            "email": f"{username}@example.com",
            "password": PASSWORD,
            "admin": admin,
            "accounts": list(ACCOUNTS) if admin else [home],
        }
    return people


@dataclass
class Client:
    """One browser: its own cookies, user agent and IP."""

    base: str
    account: str
    user_agent: str
    ip: str
    jar: CookieJar = field(default_factory=CookieJar)

    def __post_init__(self) -> None:
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def post(self, path: str, *, form: dict | None = None, json_body: dict | None = None) -> int:
        headers = {"User-Agent": self.user_agent, "X-Forwarded-For": self.ip}
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(json_body or {}).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(
            f"{self.base}/a/{self.account}{path}", data=data, headers=headers
        )
        try:
            with self._opener.open(req, timeout=30) as resp:
                resp.read()
                return resp.status
        except urllib.error.HTTPError as err:
            err.read()
            err.close()
            return err.code


def _ip(rnd: random.Random) -> str:
    if rnd.random() < 0.2:
        return f"2001:db8:{rnd.randrange(1, 0xFFFF):x}::{rnd.randrange(1, 0xFFFF):x}"
    return rnd.choice(
        [
            f"203.0.113.{rnd.randrange(1, 255)}",
            f"198.51.100.{rnd.randrange(1, 255)}",
            f"192.0.2.{rnd.randrange(1, 255)}",
            f"10.20.{rnd.randrange(256)}.{rnd.randrange(1, 255)}",
        ]
    )


def _details(code: str, rnd: random.Random, people: list[str], i: int) -> dict[str, Any]:
    action = CATALOG.get(code)
    assert action is not None
    head = code.split(".", 1)[0]
    body: dict[str, Any] = {}
    if action.product == "jaicp" or head in ("bot_project", "project_label"):
        body["project"], body["project_name"] = rnd.choice(PROJECTS)
    if action.targets_user:
        body["target_user"] = rnd.choice(people)
    if head == "token":
        body["token_id"] = f"tok-{rnd.randrange(1000, 9999)}"
    if head in COMMENTS:
        body["comments"] = rnd.choice(COMMENTS[head])
    if head in (
        "custom_role",
        "bot_project",
        "masking_rule",
        "environment_variable",
        "inbound_channel",
        "task",
    ):
        body["params"] = {
            "name": f"{head.replace('_', ' ')} {i % 17}",
            "enabled": rnd.random() < 0.7,
        }
        if head == "environment_variable":
            # What a careless form would send: masked before it leaves the host.
            body["params"]["api_key"] = "sk_demo_should_never_be_stored"
    if code == "user.roles_updated":
        # Everyday role changes; granting USER_ADMIN is the demo attack's business.
        body["params"] = {"roles": rnd.sample(["ANALYST", "EDITOR", "VIEWER", "OPERATOR"], 2)}
    if rnd.random() < 0.06:
        body["outcome"] = "failure"
        body["reason"] = rnd.choice(["permission denied", "validation failed", "quota exceeded"])
    return body


def plan(events: int, seed: int = 11) -> Iterator[tuple[str, Callable[[dict[str, Client]], int]]]:
    """(description, step) pairs; each step makes one HTTP request."""
    rnd = random.Random(seed)
    people = directory()
    now = datetime.now(UTC)
    codes = [
        a.code
        for p in ("common", "jaicp")
        for a in CATALOG.actions(p)
        if a.code not in HOST_ACTIONS
    ]

    def client_key(username: str, account: str) -> str:
        return f"{username}@{account}"

    def login(
        username: str, account: str, password: str = PASSWORD
    ) -> Callable[[dict[str, Client]], int]:
        return lambda clients: clients[client_key(username, account)].post(
            "/login", form={"username": username, "password": password}
        )

    def act(
        username: str, account: str, code: str, body: dict
    ) -> Callable[[dict[str, Client]], int]:
        return lambda clients: clients[client_key(username, account)].post(
            f"/api/{code}", json_body=body
        )

    def post(username: str, account: str, path: str) -> Callable[[dict[str, Client]], int]:
        return lambda clients: clients[client_key(username, account)].post(path)

    members = {acc: [u for u, p in people.items() if acc in p["accounts"]] for acc in ACCOUNTS}
    # Every action at least once per account, then random ones, spread over 30 days.
    steps = 0
    order = [(acc, code) for acc in ACCOUNTS for code in codes]
    while len(order) < events:
        order.append((rnd.choice(list(ACCOUNTS)), rnd.choice(codes)))
    for acc in ACCOUNTS:
        for username in members[acc]:
            yield f"{username} signs in to {acc}", login(username, acc)
            steps += 1
    for i, (acc, code) in enumerate(order):
        username = rnd.choice(members[acc])
        body = _details(code, rnd, [u for u in members[acc] if u != username], i)
        body["occurred_at"] = (now - timedelta(minutes=rnd.randrange(0, 30 * 24 * 60))).isoformat()
        yield f"{username}: {code}", act(username, acc, code, body)
        steps += 1
    # An administrator acts on a user's behalf.
    admin = next(u for u, p in people.items() if p["admin"])
    victim = members["acme"][1]
    yield f"{admin} impersonates {victim}", post(admin, "acme", f"/impersonate/{victim}")
    for code in ("bot_project.settings_updated", "token.created", "masking_rule.disabled"):
        body = _details(code, rnd, members["acme"], 0)
        body["comments"] = f"done by support on {victim}'s behalf: {body.get('comments', code)}"
        yield f"{admin} as {victim}: {code}", act(admin, "acme", code, body)
    # In each account one user forgets their password: failed sign-ins end in
    # a block (the host records it), and one more attempt is refused.
    targets = {acc: next(u for u in members[acc][2:] if not people[u]["admin"]) for acc in ACCOUNTS}
    for acc, target in targets.items():
        for n in range(6):
            yield (
                f"wrong password for {target} in {acc} #{n + 1}",
                login(target, acc, password=f"guess-{n}"),
            )
        yield f"{target} tries the right password while blocked", login(target, acc)
    yield "unknown user tries to sign in", login("mallory", "acme", password="letmein")
    for acc in ACCOUNTS:
        for username in members[acc][:4]:
            if username != targets[acc]:
                yield f"{username} signs out of {acc}", post(username, acc, "/logout")


def clients(base: str, seed: int = 11) -> dict[str, Client]:
    """One browser per (user, account), each with its own device and IP."""
    rnd = random.Random(seed)
    out: dict[str, Client] = {}
    for username, info in {**directory(), "mallory": {"accounts": list(ACCOUNTS)}}.items():
        for acc in info["accounts"]:
            out[f"{username}@{acc}"] = Client(base, acc, rnd.choice(AGENTS), _ip(rnd))
    return out
