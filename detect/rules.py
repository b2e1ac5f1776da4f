"""Detection rules: the built-in ones and the interface host apps use to add theirs.

A rule sees one event (an enriched, flat document) and its account's state,
and returns findings. Writing one::

    from useraudit.detect import Finding, Rule

    class LargeRefund(Rule):
        name = "large_refund"
        title = "Refund above the limit"
        severity = "high"
        actions = frozenset({"refund.issued"})       # None: every event
        defaults = {"limit": 1000}                    # parameters, overridable per account

        def evaluate(self, event, state, params):
            amount = float((event.get("audit.params") or {}).get("amount", 0))
            if amount <= params["limit"]:
                return []
            return [Finding(subject=user_of(event), event_ids=[event["event.id"]])]

    engine = DetectionEngine(store, rules=[*BUILTIN_RULES, LargeRefund()])

A rule that keeps state names the keys it reads or writes for an event in
``keys()`` (loaded for the whole batch in one store round trip) and reads
and adds entries through the :class:`~useraudit.detect.state.StateView`.
Entries are keyed by event id, so a replayed event adds nothing, and rules
compare an event only with entries *before* it, so a replay decides the
same. Alert ids come from rule, subject and window: a finding on an event
already seen merges into the alert it made the first time.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from .state import DAY_MS, StateView

SIGN_IN = "user.signed_in"
BLOCKED = "user_account.blocked_failed_sign_ins"
# the host product's tokens, and useraudit's own API tokens (admin UI and CLI)
TOKEN_ACTIONS = frozenset({"token.created", "token.refreshed", "audit_api_token.created"})
DOWNLOAD_ACTIONS = frozenset(
    {
        "bot_project.exported",
        "message_log.downloaded",
        "session_log.downloaded",
        "client_report.downloaded",
        "audit_log.downloaded",
    }
)
CUSTOM_ROLE_ACTIONS = frozenset(
    {"custom_role.created", "custom_role.updated", "custom_role.renamed", "custom_role.deleted"}
)
MINUTE = 60


@dataclass
class Finding:
    """What a rule saw: the alert's subject and the events behind it.

    ``severity``/``title`` default to the rule's; ``window_s`` (default the
    rule's ``dedup_s`` parameter, else one hour) is the width of the time
    window whose findings merge into one alert.
    """

    subject: str
    event_ids: Sequence[str]
    title: str | None = None
    severity: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    user_id: str | None = None
    window_s: int | None = None


class Rule:
    """Base class of every rule; see the module doc."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    severity: ClassVar[str] = "medium"
    # Event actions the rule looks at; None: every event (then ``wants`` decides).
    actions: ClassVar[frozenset[str] | None] = None
    defaults: ClassVar[Mapping[str, Any]] = {}
    # Needs source.geo.* (a GeoIP database); "city" needs locations too.
    needs_geo: ClassVar[str | None] = None

    def wants(self, event: dict, params: Mapping[str, Any]) -> bool:
        return True

    def keys(self, event: dict, params: Mapping[str, Any]) -> list[str]:
        return []

    def evaluate(self, event: dict, state: StateView, params: Mapping[str, Any]) -> list[Finding]:
        raise NotImplementedError


# -- helpers rules share ---------------------------------------------------------


def user_of(event: dict) -> str:
    return str(event.get("user.id") or event.get("user.name") or event.get("user.email") or "")


def ts_ms(event: dict) -> int:
    return _ts_ms(str(event["@timestamp"]))


@lru_cache(maxsize=4096)
def _ts_ms(text: str) -> int:
    # Every rule of an event asks; a batch holds few distinct timestamps per ms.
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(ts.timestamp() * 1000)


def network_of(ip: str | None, v4_prefix: int = 24, v6_prefix: int = 48) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of an address, as text."""
    if not ip:
        return None
    return _network(ip, v4_prefix, v6_prefix)


@lru_cache(maxsize=65_536)
def _network(ip: str, v4_prefix: int, v6_prefix: int) -> str | None:
    # ipaddress costs ~10 us an address; users come back from the same few.
    if v4_prefix == 24 and ip.count(".") == 3 and ":" not in ip:
        # The enricher wrote source.ip in canonical dotted-quad form.
        return ip[: ip.rindex(".")] + ".0/24"
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = v4_prefix if addr.version == 4 else v6_prefix
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def device_of(event: dict) -> str | None:
    """Browser family + OS: what a person's device looks like across upgrades."""
    browser, os_ = event.get("user_agent.name"), event.get("user_agent.os.name")
    if not browser and not os_:
        return None
    return f"{browser or '?'} / {os_ or '?'}"


def failed(event: dict) -> bool:
    return event.get("event.outcome") == "failure"


def succeeded(event: dict) -> bool:
    return event.get("event.outcome") == "success"


def _before(entry: list, ts: int, event_id: str) -> bool:
    """Entries strictly before the event (ties broken by id): what a replay also sees."""
    return (entry[0], entry[1]) < (ts, event_id)


def _in_window(entry: list, ts: int, event_id: str, window_ms: int) -> bool:
    return ts - window_ms < entry[0] and (entry[0], entry[1]) <= (ts, event_id)


def _known_members(
    value: Mapping[str, list], prefix: str, since: int, ts: int, eid: str, member: str
) -> list[str]:
    """What a sign-in's <thing> is new against: the members with ``prefix`` seen in the
    look-back window before the event (sorted, prefix cut off); [] when there are none
    or ``member`` is among them. One pass over the user's value, no copies."""
    seen: list[str] = []
    for m, entries in value.items():
        if not m.startswith(prefix):
            continue
        for e in entries:
            if since <= e[0] and (e[0] < ts or (e[0] == ts and e[1] < eid)):
                if m == member:
                    return []
                seen.append(m[len(prefix) :])
                break
    return sorted(seen)


def _haversine_km(a: Sequence[float], b: Sequence[float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))


# -- failed sign-ins --------------------------------------------------------------


def user_key(event: dict) -> str:
    """One state key per user for everything sign-in rules remember about them.

    Members carry a prefix per kind: ``f:<event id>`` failed sign-ins,
    ``d:<device>``, ``n:<network>``, ``c:<country>``, ``l:<event id>``
    sign-in locations. One key per user means one read and one write per
    user and batch, whichever rules are on.
    """
    return f"user:{user_of(event)}"


class BruteForce(Rule):
    """N failed sign-ins of one user within T."""

    name = "brute_force"
    title = "Repeated failed sign-ins for one user"
    severity = "medium"
    actions = frozenset({SIGN_IN})
    defaults = {"threshold": 5, "window_s": 10 * MINUTE, "dedup_s": 3600}

    def wants(self, event: dict, params: Mapping[str, Any]) -> bool:
        return failed(event) and bool(user_of(event))

    def keys(self, event: dict, params: Mapping[str, Any]) -> list[str]:
        return [user_key(event)]

    def evaluate(self, event: dict, state: StateView, params: Mapping[str, Any]) -> list[Finding]:
        ts, eid, key = ts_ms(event), event["event.id"], user_key(event)
        state.add(key, f"f:{eid}", ts, eid)
        window = int(params["window_s"]) * 1000
        recent = sorted(
            e[1] for _m, e in state.entries(key, prefix="f:") if _in_window(e, ts, eid, window)
        )
        if len(recent) < int(params["threshold"]):
            return []
        return [
            Finding(
                subject=user_of(event),
                user_id=user_of(event),
                event_ids=recent,
                details={"failures": len(recent), "window_s": params["window_s"]},
            )
        ]


class PasswordSpraying(Rule):
    """Failed sign-ins for many users from one network within T."""

    name = "password_spraying"
    title = "Failed sign-ins for many users from one network"
    severity = "high"
    actions = frozenset({SIGN_IN})
    defaults = {
        "users": 5,
        "window_s": 10 * MINUTE,
        "dedup_s": 3600,
        "ipv4_prefix": 24,
        "ipv6_prefix": 48,
    }

    def _network(self, event: dict, params: Mapping[str, Any]) -> str | None:
        return network_of(event.get("source.ip"), params["ipv4_prefix"], params["ipv6_prefix"])

    def wants(self, event: dict, params: Mapping[str, Any]) -> bool:
        return failed(event) and self._network(event, params) is not None

    def keys(self, event: dict, params: Mapping[str, Any]) -> list[str]:
        return [f"fail:net:{self._network(event, params)}"]

    def evaluate(self, event: dict, state: StateView, params: Mapping[str, Any]) -> list[Finding]:
        ts, eid = ts_ms(event), event["event.id"]
        net = self._network(event, params)
        key = f"fail:net:{net}"
        state.add(key, user_of(event) or "?", ts, eid)
        window = int(params["window_s"]) * 1000
        users: dict[str, list[str]] = {}
        for member, e in state.entries(key):
            if _in_window(e, ts, eid, window):
                users.setdefault(member, []).append(e[1])
        if len(users) < int(params["users"]):
            return []
        return [
            Finding(
                subject=str(net),
                event_ids=sorted(i for ids in users.values() for i in ids),
                details={"network": net, "users": sorted(users)},
            )
        ]


class AccountBlocked(Rule):
    """The host app blocked an account for too many failed sign-ins."""

    name = "account_blocked"
    title = "Account blocked after too many failed sign-ins"
    severity = "medium"
    actions = frozenset({BLOCKED})
    defaults = {"dedup_s": 3600}

    def evaluate(self, event: dict, state: StateView, params: Mapping[str, Any]) -> list[Finding]:
        who = str(event.get("user.target.id") or user_of(event))
        return [Finding(subject=who, user_id=who, event_ids=[event["event.id"]])]


class Takeover(Rule):
    """A successful sign-in right after a burst of failures: possibly guessed."""

    name = "takeover"
    title = "Successful sign-in right after failed ones"
    severity = "high"
    actions = frozenset({SIGN_IN})
    defaults = {"failures": 3, "window_s": 15 * MINUTE, "dedup_s": 3600}

    def wants(self, event: dict, params: Mapping[str, Any]) -> bool:
        return bool(user_of(event)) and event.get("event.outcome") in ("success", "failure")

    def keys(self, event: dict, params: Mapping[str, Any]) -> list[str]:
        return [user_key(event)]

    def evaluate(self, event: dict, state: StateView, params: Mapping[str, Any]) -> list[Finding]:
        ts, eid, key = ts_ms(event), event["event.id"], user_key(event)
        if failed(event):
            state.add(key, f"f:{eid}", ts, eid)  # the same entry BruteForce adds: a no-op twice
            return []
        window = int(params["window_s"]) * 1000
        burst = sorted(
            e[1] for _m, e in state.entries(key, prefix="f:") if _in_window(e, ts, eid, window)
        )
        if len(burst) < int(params["failures"]):
            return []
        return [
            Finding(
                subject=user_of(event),
                user_id=user_of(event),
                event_ids=[*burst, eid],
                details={
                    "failures_before": len(burst),
                    "window_s": params["window_s"],
                    "source.ip": event.get("source.ip"),
                },
            )
        ]


# -- new things seen at sign-in ------------------------------------------------------


class _NewForUser(Rule):
    """Shared logic: a successful sign-in whose <thing> this user has not used lately.

    A user with no earlier sign-in in the look-back window is still being
    learnt: nothing is new for them yet.
    """

    severity = "low"
    actions = frozenset({SIGN_IN})
    defaults = {"lookback_days": 30, "dedup_s": 86_400}
    prefix = ""
    what = ""

    def thing(self, event: dict, params: Mapping[str, Any]) -> str | None:
        raise NotImplementedError

    def wants(self, event: dict, params: Mapping[str, Any]) -> bool:
        return succeeded(event) and bool(user_of(event)) and self.thing(event, params) is not None

    def keys(self, event: dict, params: Mapping[str, Any]) -> list[str]:
        return [user_key(event)]

    def evaluate(self, event: dict, state: StateView, params: Mapping[str, Any]) -> list[Finding]:
        ts, eid = ts_ms(event), event["event.id"]
        key, prefix = user_key(event), f"{self.prefix}:"
        thing = str(self.thing(event, params))
        member = prefix + thing
        since = ts - int(params["lookback_days"]) * DAY_MS
        known = _known_members(state.value(key), prefix, since, ts, eid, member)
        state.add(key, member, ts, eid)
        if not known:  # still learning this user, or the thing is known
            return []
        return [
            Finding(
                subject=f"{user_of(event)}|{thing}",
                user_id=user_of(event),
                event_ids=[eid],
                title=f"Sign-in from a new {self.what}: {thing}",
                details={self.what: thing, "known": known[:20]},
            )
        ]


class NewDevice(_NewForUser):
    name = "new_device"
    title = "Sign-in from a new device"
    prefix = "d"
    what = "device"

    def thing(self, event: dict, params: Mapping[str, Any]) -> str | None:
        return device_of(event)


class NewNetwork(_NewForUser):
    name = "new_network"
    title = "Sign-in from a new network"
    prefix = "n"
    what = "network"
    defaults = {**_NewForUser.defaults, "ipv4_prefix": 24, "ipv6_prefix": 48}

    def thing(self, event: dict, params: Mapping[str, Any]) -> str | None:
        return network_of(event.get("source.ip"), params["ipv4_prefix"], params["ipv6_prefix"])


class NewCountry(_NewForUser):
    name = "new_country"
    title = "Sign-in from a new country"
    severity = "medium"
    prefix = "c"
    what = "country"
    needs_geo = "country"
    defaults = {"lookback_days": 90, "dedup_s": 86_400}

    def thing(self, event: dict, params: Mapping[str, Any]) -> str | None:
        return event.get("source.geo.country_iso_code")


class ImpossibleTravel(Rule):
    """Two sign-ins of one user further apart than anyone could travel in between."""

    name = "impossible_travel"
    title = "Impossible travel between sign-ins"
    severity = "high"
    actions = frozenset({SIGN_IN})
    needs_geo = "city"
    defaults = {"max_kmh": 900, "min_km": 300, "dedup_s": 3600}

    def wants(self, event: dict, params: Mapping[str, Any]) -> bool:
        return succeeded(event) and bool(user_of(event)) and _location(event) is not None

    def keys(self, event: dict, params: Mapping[str, Any]) -> list[str]:
        return [user_key(event)]

    def evaluate(self, event: dict, state: StateView, params: Mapping[str, Any]) -> list[Finding]:
        ts, eid = ts_ms(event), event["event.id"]
        key = user_key(event)
        here = _location(event)
        assert here is not None
        last: list | None = None  # the latest sign-in location before this event
        for m, entries in state.value(key).items():
            if m.startswith("l:"):
                for e in entries:
                    if _before(e, ts, eid) and (last is None or (e[0], e[1]) > (last[0], last[1])):
                        last = e
        state.add(key, f"l:{eid}", ts, eid, here)
        if last is None:
            return []
        km = _haversine_km(last[2], here)
        hours = max((ts - last[0]) / 3_600_000, 1 / 60)  # a minute at least: clocks differ
        speed = km / hours
        if km < float(params["min_km"]) or speed <= float(params["max_kmh"]):
            return []
        return [
            Finding(
                subject=user_of(event),
                user_id=user_of(event),
                event_ids=[last[1], eid],
                details={
                    "from": last[2][2] or last[2][3],
                    "to": here[2] or here[3],
                    "km": round(km),
                    "kmh": round(speed),
                },
            )
        ]


def _location(event: dict) -> list | None:
    lat, lon = event.get("source.geo.location.lat"), event.get("source.geo.location.lon")
    if lat is None or lon is None:
        return None
    return [
        float(lat),
        float(lon),
        event.get("source.geo.city_name") or "",
        event.get("source.geo.country_iso_code") or "",
    ]


# -- privileges, impersonation, tokens ---------------------------------------------


def _roles(event: dict) -> list[str]:
    params = event.get("audit.params") or {}
    roles: Any = []
    if isinstance(params, dict):
        for name in ("roles_added", "added", "roles"):
            if params.get(name):
                roles = params[name]
                break
    if isinstance(roles, str):
        roles = [roles]
    return [str(r) for r in roles] if isinstance(roles, list) else []


class AdminGranted(Rule):
    """A user's roles updated to include an admin role (USER_ADMIN by default)."""

    name = "admin_granted"
    title = "Admin role granted"
    severity = "high"
    actions = frozenset({"user.roles_updated"})
    defaults = {"admin_roles": ["USER_ADMIN"], "dedup_s": 3600}

    def evaluate(self, event: dict, state: StateView, params: Mapping[str, Any]) -> list[Finding]:
        wanted = {str(r).upper() for r in params["admin_roles"]}
        granted = sorted(r for r in _roles(event) if r.upper() in wanted)
        if not granted or not succeeded(event) and event.get("event.outcome") != "unknown":
            return []
        target = str(event.get("user.target.id") or event.get("user.target.name") or "?")
        return [
            Finding(
                subject=target,
                user_id=target,
                event_ids=[event["event.id"]],
                title=f"Admin role granted: {', '.join(granted)}",
                details={"roles": granted, "by": user_of(event)},
            )
        ]


class CustomRoleChanged(Rule):
    """A custom role created, changed, renamed or deleted."""

    name = "custom_role_changed"
    title = "Custom role changed"
    severity = "low"
    actions = CUSTOM_ROLE_ACTIONS
    defaults = {"dedup_s": 3600}

    def evaluate(self, event: dict, state: StateView, params: Mapping[str, Any]) -> list[Finding]:
        return [
            Finding(
                subject=user_of(event) or "?",
                user_id=user_of(event) or None,
                event_ids=[event["event.id"]],
                details={"action": event.get("event.action")},
            )
        ]


class Impersonation(Rule):
    """Actions performed on someone's behalf: one alert per impersonation session."""

    name = "impersonation"
    title = "Actions performed on a user's behalf"
    severity = "low"
    defaults = {"dedup_s": 3600}

    def wants(self, event: dict, params: Mapping[str, Any]) -> bool:
        return bool(event.get("audit.impersonator.id") or event.get("audit.impersonator.name"))

    def evaluate(self, event: dict, state: StateView, params: Mapping[str, Any]) -> list[Finding]:
        who = str(event.get("audit.impersonator.id") or event.get("audit.impersonator.name"))
        return [
            Finding(
                subject=f"{who}->{user_of(event)}",
                user_id=user_of(event) or None,
                event_ids=[event["event.id"]],
                title=f"{event.get('audit.impersonator.name') or who} acted as "
                f"{event.get('user.name') or user_of(event)}",
                details={"impersonator": who},
            )
        ]


class TokenFromNewNetwork(Rule):
    """An API token created or refreshed from a network the user has not used lately."""

    name = "token_new_network"
    title = "API token created from a new network"
    severity = "medium"
    actions = TOKEN_ACTIONS | {SIGN_IN}
    defaults = {"lookback_days": 30, "dedup_s": 86_400, "ipv4_prefix": 24, "ipv6_prefix": 48}

    def _net(self, event: dict, params: Mapping[str, Any]) -> str | None:
        return network_of(event.get("source.ip"), params["ipv4_prefix"], params["ipv6_prefix"])

    def wants(self, event: dict, params: Mapping[str, Any]) -> bool:
        return succeeded(event) and bool(user_of(event)) and self._net(event, params) is not None

    def keys(self, event: dict, params: Mapping[str, Any]) -> list[str]:
        return [user_key(event)]

    def evaluate(self, event: dict, state: StateView, params: Mapping[str, Any]) -> list[Finding]:
        ts, eid = ts_ms(event), event["event.id"]
        key, net = user_key(event), str(self._net(event, params))
        if event.get("event.action") == SIGN_IN:
            state.add(key, f"n:{net}", ts, eid)  # the same entry NewNetwork adds
            return []
        since = ts - int(params["lookback_days"]) * DAY_MS
        known = _known_members(state.value(key), "n:", since, ts, eid, f"n:{net}")
        state.add(key, f"n:{net}", ts, eid)
        if not known:
            return []
        return [
            Finding(
                subject=f"{user_of(event)}|{net}",
                user_id=user_of(event),
                event_ids=[eid],
                details={
                    "network": net,
                    "token": event.get("audit.token.id"),
                    "action": event.get("event.action"),
                },
            )
        ]


class BulkDownload(Rule):
    """Exports and log downloads in 24 hours well above the user's own daily average."""

    name = "bulk_download"
    title = "Unusually many exports and downloads"
    severity = "medium"
    actions = DOWNLOAD_ACTIONS
    defaults = {"min_count": 20, "factor": 3.0, "baseline_days": 14, "dedup_s": 86_400}

    def wants(self, event: dict, params: Mapping[str, Any]) -> bool:
        return succeeded(event) and bool(user_of(event))

    def keys(self, event: dict, params: Mapping[str, Any]) -> list[str]:
        return [f"dl:{user_of(event)}"]

    def evaluate(self, event: dict, state: StateView, params: Mapping[str, Any]) -> list[Finding]:
        ts, eid = ts_ms(event), event["event.id"]
        key = f"dl:{user_of(event)}"
        state.add(key, eid, ts, eid)
        day_start = ts - DAY_MS
        base_start = day_start - int(params["baseline_days"]) * DAY_MS
        today, before, earliest = [], 0, day_start
        for _m, e in state.entries(key):
            if (e[0], e[1]) > (ts, eid):
                continue
            if e[0] > day_start:
                today.append(e[1])
            elif e[0] >= base_start:
                before += 1
                earliest = min(earliest, e[0])
        # Averaged over the days the user has history for (a new user's
        # first busy day is compared with min_count only).
        days = min(int(params["baseline_days"]), max(1, -(-(day_start - earliest) // DAY_MS)))
        average = before / days
        limit = max(float(params["min_count"]), float(params["factor"]) * average)
        if len(today) <= limit:
            return []
        return [
            Finding(
                subject=user_of(event),
                user_id=user_of(event),
                event_ids=sorted(today),
                details={
                    "last_24h": len(today),
                    "daily_average": round(average, 2),
                    "window_s": DAY_MS // 1000,
                },
            )
        ]


class OffHoursAdmin(Rule):
    """Administrative actions outside the account's working hours (when it sets them)."""

    name = "off_hours_admin"
    title = "Admin action outside working hours"
    severity = "low"
    defaults = {"dedup_s": 3600}

    def wants(self, event: dict, params: Mapping[str, Any]) -> bool:
        hours = params.get("working_hours")
        if not hours:
            return False
        if "iam" not in (event.get("event.category") or ()):
            roles = event.get("user.roles")
            if not roles:  # most events: nothing more to look at
                return False
            admin = _upper_set(tuple(params.get("admin_roles") or ("USER_ADMIN",)))
            if not any(str(r).upper() in admin for r in roles):
                return False
        # An admin action: only one outside the working hours is the rule's
        # (the hours are looked up per minute, cached).
        return _local_off_hours(event, hours) is not None

    def evaluate(self, event: dict, state: StateView, params: Mapping[str, Any]) -> list[Finding]:
        local = _local_off_hours(event, params["working_hours"])
        if local is None:
            return []
        return [
            Finding(
                subject=user_of(event) or "?",
                user_id=user_of(event) or None,
                event_ids=[event["event.id"]],
                details={"local_time": local},
            )
        ]


# Each working-hours setting's answers by minute: (the setting, {minute: local
# time or None}). Keyed by id and checked by identity: the engine hands every
# event of an account the same parameters, so this is one dict lookup a minute.
_HOURS_MEMO: dict[int, tuple[Mapping[str, Any], dict[int, str | None]]] = {}
_NOT_YET = "?"


def _local_off_hours(event: dict, hours: Mapping[str, Any]) -> str | None:
    """The event's local time when outside ``hours`` (the working_hours setting), else None."""
    minute = ts_ms(event) // 60_000
    memo = _HOURS_MEMO.get(id(hours))
    if memo is None or memo[0] is not hours:
        if len(_HOURS_MEMO) > 1024:
            _HOURS_MEMO.clear()
        memo = _HOURS_MEMO[id(hours)] = (hours, {})
    minutes = memo[1]
    local = minutes.get(minute, _NOT_YET)
    if local is _NOT_YET:
        local = _off_hours(
            minute,
            str(hours.get("timezone", "UTC")),
            str(hours.get("start", "09:00")),
            str(hours.get("end", "18:00")),
            tuple(hours.get("days", [0, 1, 2, 3, 4])),
        )
        if len(minutes) > 4096:
            minutes.clear()
        minutes[minute] = local
    return local


@lru_cache(maxsize=64)
def _upper_set(roles: tuple) -> frozenset[str]:
    return frozenset(str(r).upper() for r in roles)


@lru_cache(maxsize=4096)
def _off_hours(
    minute: int, timezone: str, start: str, end: str, days: tuple[int, ...]
) -> str | None:
    """The local time (ISO, to the minute) when outside working hours, else None.

    Keyed by the minute: a batch's events share a few, and zone conversion
    is the rule's whole cost.
    """
    local = datetime.fromtimestamp(minute * 60, UTC).astimezone(ZoneInfo(timezone))
    clock = local.strftime("%H:%M")
    if local.weekday() in days and start <= clock < end:
        return None
    return local.isoformat(timespec="minutes")


BUILTIN_RULES: tuple[Rule, ...] = (
    BruteForce(),
    PasswordSpraying(),
    AccountBlocked(),
    Takeover(),
    NewDevice(),
    NewNetwork(),
    NewCountry(),
    ImpossibleTravel(),
    AdminGranted(),
    CustomRoleChanged(),
    Impersonation(),
    TokenFromNewNetwork(),
    BulkDownload(),
    OffHoursAdmin(),
)
