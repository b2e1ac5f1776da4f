"""The demo's one attack, so the Security tab has something to show on first start.

From one network (185.220.101.0/24) an attacker tries a common password
against several acme users (password spraying), then guesses one user's
password after a few tries and signs in (possible takeover) from a device
and network that user never used. Everything else the demo does is normal
work and raises no high-severity alert.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from . import traffic
from .traffic import PASSWORD, Client

ATTACKER_IP = "185.220.101.{}"
ATTACKER_UA = "python-requests/2.32.3"


def plan(base: str) -> Iterator[tuple[str, Callable[[dict[str, Client]], int]]]:
    """(description, step) pairs like :func:`traffic.plan`'s, the attacker's own browser."""
    people = traffic.directory()
    members = [u for u, p in people.items() if "acme" in p["accounts"]]
    victim = [u for u in members if not people[u]["admin"]][-1]
    for i, username in enumerate(members):
        attacker = Client(base, "acme", ATTACKER_UA, ATTACKER_IP.format(10 + i))
        yield (
            f"attacker sprays 'Spring2026!' at {username}",
            _login(attacker, username, "Spring2026!"),
        )
    attacker = Client(base, "acme", ATTACKER_UA, ATTACKER_IP.format(77))
    for guess in ("123456", "qwerty"):
        yield f"attacker guesses {victim}'s password", _login(attacker, victim, guess)
    yield f"attacker signs in as {victim}", _login(attacker, victim, PASSWORD)


def _login(client: Client, username: str, password: str) -> Callable[[dict[str, Client]], int]:
    return lambda _browsers: client.post(
        "/login", form={"username": username, "password": password}
    )
